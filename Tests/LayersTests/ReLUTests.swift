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

    func testGradients() {
        assertGradientsMatch(ReLU(), input: awayFromZero([3, 2, 3, 3], seed: 1))
    }
}
