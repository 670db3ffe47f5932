import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

/// The SIMD inference path of the 4×4, stride-2, padding-1 max pool against the window
/// loop of the training path: maxima are exact, so the two agree bit for bit.
final class PoolingFastPathTests: XCTestCase {
    func testPaddedMaxPoolInferenceMatchesTheWindowLoop() throws {
        let pool = try MaxPool2D(kernelSize: 4, stride: 2, padding: 1)
        for (h, w) in [(32, 32), (16, 16), (8, 8), (7, 9), (4, 4), (5, 22)] {
            var rng = SeededGenerator(seed: UInt64(h * 100 + w))
            var x = Tensor.uniform([2, 3, h, w], low: -2, high: 1, using: &rng)
            x[flat: 5] = -.infinity
            let fast = pool.forward(x, mode: .inference), loop = pool.forward(x, mode: .training)
            XCTAssertEqual(fast.shape, loop.shape, "\(h)×\(w)")
            XCTAssertEqual(fast.scalars.map(\.bitPattern), loop.scalars.map(\.bitPattern), "\(h)×\(w)")
        }
    }
}
