import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class AdaptiveAveragePoolTests: XCTestCase {
    func testGlobalMeanOfAMapOrAFlattenedMap() throws {
        let pool = try AdaptiveAveragePool(channels: 2)
        // N = 1, C = 2, 2x2: channel 0 = 1, 2, 3, 4; channel 1 = −4, 0, 0, 8.
        let x = try Tensor(shape: [1, 2, 2, 2], values: [1, 2, 3, 4, -4, 0, 0, 8])
        XCTAssertEqual(pool.forward(x, mode: .inference).scalars, [2.5, 1])
        XCTAssertEqual(pool.forward(x.unsafeReshaped([1, 8]), mode: .inference).scalars, [2.5, 1])
        XCTAssertEqual(try pool.outputShape(for: [3, 2, 5, 7]), [3, 2])
        XCTAssertEqual(try pool.outputShape(for: [3, 18]), [3, 2])
    }

    func testGridCellsFollowPyTorchsAdaptivePooling() throws {
        // One 3x3 channel 0…8 to 2x2: cells cover rows/columns [0, 2) and [1, 3) (overlapping).
        let x = try Tensor(shape: [1, 1, 3, 3], values: (0..<9).map(Float.init))
        let pool = try AdaptiveAveragePool(channels: 1, grid: 2)
        XCTAssertEqual(pool.forward(x, mode: .inference).scalars, [2, 3, 5, 6])
        // A 1x1 map smaller than the grid repeats its value.
        let one = try Tensor(shape: [1, 1, 1, 1], values: [7])
        XCTAssertEqual(pool.forward(one, mode: .inference).scalars, [7, 7, 7, 7])
        XCTAssertEqual(try pool.outputShape(for: [5, 1]), [5, 4])
    }

    func testRejectsShapesItCannotPool() throws {
        let pool = try AdaptiveAveragePool(channels: 3, grid: 2)
        for shape in [[2, 4, 2, 2], [2, 7], [2, 0], [2, 3, 2], [2, 6]] {
            XCTAssertThrowsError(try pool.outputShape(for: shape), "\(shape)") { error in
                guard case LayerError.incompatibleInput = error else { return XCTFail("\(error)") }
            }
        }
        for (channels, grid, option) in [(0, 1, "channels"), (1, 0, "grid")] {
            XCTAssertThrowsError(try AdaptiveAveragePool(channels: channels, grid: grid)) { error in
                guard case LayerError.invalidConfiguration(_, option, "0", _) = error else {
                    return XCTFail("\(error)")
                }
            }
        }
    }

    func testGradientsMatchFiniteDifferences() throws {
        var rng = SeededGenerator(seed: 3)
        for grid in [1, 2, 3] {
            let pool = try AdaptiveAveragePool(channels: 3, grid: grid)
            assertGradientsMatch(pool, input: Tensor.uniform([2, 3, 5, 4], low: -1, high: 1, using: &rng))
            assertGradientsMatch(pool, input: Tensor.uniform([2, 12], low: -1, high: 1, using: &rng))
        }
    }
}
