import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class ReLUTests: XCTestCase {
    func testForwardAndBackward() throws {
        let relu = ReLU()
        let x = try Tensor(shape: [1, 4], values: [-2, 0, 0.5, 3])
        XCTAssertEqual(relu.forward(x, mode: .training).scalars, [0, 0, 0.5, 3])
        XCTAssertEqual(relu.backward(try Tensor(shape: [1, 4], values: [1, 2, 3, 4])).scalars, [0, 0, 3, 4])
    }

    /// Above 128 K elements forward and backward run on two workers with two threads: the
    /// same bits as one thread.
    func testTwoThreadsGiveTheSameBits() {
        var rng = SeededGenerator(seed: 5)
        let x = Tensor.uniform([3, 5, 100, 100], low: -1, high: 1, using: &rng)
        let g = Tensor.uniform(x.shape, low: -1, high: 1, using: &rng)
        func run(threads: Int) -> [[UInt32]] {
            let saved = BLAS.threadCount
            defer { BLAS.threadCount = saved }
            BLAS.threadCount = threads
            let relu = ReLU()
            let y = relu.forward(x, mode: .training)
            return [y.scalars.map(\.bitPattern), relu.backward(g).scalars.map(\.bitPattern)]
        }
        XCTAssertEqual(run(threads: 1), run(threads: 2))
    }

    func testGradients() {
        assertGradientsMatch(ReLU(), input: awayFromZero([3, 2, 3, 3], seed: 1))
    }
}
