import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class LinearTests: XCTestCase {
    func testForwardIsXWTransposePlusBias() throws {
        var rng = SeededGenerator(seed: 1)
        let linear = try Linear(inputFeatures: 3, outputFeatures: 2, using: &rng)
        linear.weight.value = try Tensor(shape: [2, 3], values: [1, 2, 3, -1, 0, 1])
        linear.bias!.value = try Tensor(shape: [2], values: [0.5, -0.5])
        let y = linear.forward(try Tensor(shape: [2, 3], values: [1, 1, 1, 2, 0, -1]), mode: .inference)
        XCTAssertEqual(y.scalars, [6.5, -0.5, -0.5, -3.5])
    }

    func testGradients() throws {
        var rng = SeededGenerator(seed: 2)
        let linear = try Linear(inputFeatures: 5, outputFeatures: 4, using: &rng)
        linear.bias!.value = .uniform([4], low: -1, high: 1, using: &rng)
        assertGradientsMatch(linear, input: .uniform([3, 5], low: -1, high: 1, using: &rng))
        let noBias = try Linear(inputFeatures: 2, outputFeatures: 3, bias: false, using: &rng)
        XCTAssertEqual(noBias.parameters.map(\.name), ["weight"])
        assertGradientsMatch(noBias, input: .uniform([4, 2], low: -1, high: 1, using: &rng))
    }

    func testShapesAndErrors() throws {
        var rng = SeededGenerator(seed: 1)
        let linear = try Linear(inputFeatures: 64, outputFeatures: 10, using: &rng)
        XCTAssertEqual(linear.weight.value.shape, [10, 64])
        XCTAssertEqual(try linear.outputShape(for: [7, 64]), [7, 10])
        XCTAssertThrowsError(try linear.outputShape(for: [7, 64, 1, 1])) { error in
            guard case let .incompatibleInput(layer, shape, reason)? = error as? LayerError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(layer.hasPrefix("Linear"))
            XCTAssertEqual(shape, [7, 64, 1, 1])
            XCTAssertTrue(reason.contains("Flatten"))
        }
        XCTAssertThrowsError(try linear.outputShape(for: [7, 63]))
        XCTAssertThrowsError(try Linear(inputFeatures: 3, outputFeatures: 0, using: &rng))
    }
}
