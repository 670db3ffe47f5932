import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class FlattenTests: XCTestCase {
    func testShapeAndGradients() throws {
        let flatten = Flatten()
        XCTAssertEqual(try flatten.outputShape(for: [5, 64, 1, 1]), [5, 64])
        XCTAssertThrowsError(try flatten.outputShape(for: [5]))
        var rng = SeededGenerator(seed: 1)
        let x = Tensor.uniform([2, 3, 2, 2], low: -1, high: 1, using: &rng)
        let y = flatten.forward(x, mode: .training)
        XCTAssertEqual(y.shape, [2, 12])
        XCTAssertEqual(y.scalars, x.scalars)
        XCTAssertEqual(flatten.backward(y).shape, [2, 3, 2, 2])
        assertGradientsMatch(flatten, input: x)
    }
}
