import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class GlobalAveragePoolTests: XCTestCase {
    func testMeansEveryChannelOfAMapOrAFlattenedMap() throws {
        let pool = try GlobalAveragePool(channels: 2)
        // N = 1, C = 2, 2x2: channel 0 = 1, 2, 3, 4; channel 1 = −4, 0, 0, 8.
        let x = try Tensor(shape: [1, 2, 2, 2], values: [1, 2, 3, 4, -4, 0, 0, 8])
        XCTAssertEqual(pool.forward(x, mode: .inference).scalars, [2.5, 1])
        XCTAssertEqual(pool.forward(x.unsafeReshaped([1, 8]), mode: .inference).scalars, [2.5, 1])
        XCTAssertEqual(try pool.outputShape(for: [3, 2, 5, 7]), [3, 2])
        XCTAssertEqual(try pool.outputShape(for: [3, 70]), [3, 2])
    }

    func testRejectsShapesItCannotPool() throws {
        let pool = try GlobalAveragePool(channels: 3)
        for shape in [[2, 4, 2, 2], [2, 7], [2, 0], [2, 3, 2]] {
            XCTAssertThrowsError(try pool.outputShape(for: shape), "\(shape)") { error in
                guard case LayerError.incompatibleInput = error else { return XCTFail("\(error)") }
            }
        }
        XCTAssertThrowsError(try GlobalAveragePool(channels: 0)) { error in
            guard case LayerError.invalidConfiguration(_, "channels", "0", _) = error else {
                return XCTFail("\(error)")
            }
        }
    }

    func testGradientsMatchFiniteDifferences() throws {
        var rng = SeededGenerator(seed: 3)
        let pool = try GlobalAveragePool(channels: 3)
        assertGradientsMatch(pool, input: Tensor.uniform([2, 3, 3, 2], low: -1, high: 1, using: &rng))
        assertGradientsMatch(pool, input: Tensor.uniform([2, 12], low: -1, high: 1, using: &rng))
    }
}
