import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class DropoutTests: XCTestCase {
    func testInferenceIsIdentityAndTrainingDropsAndScales() throws {
        let dropout = try Dropout(probability: 0.25, seed: 1)
        var rng = SeededGenerator(seed: 2)
        let x = Tensor.uniform([100, 100], low: 1, high: 2, using: &rng)
        XCTAssertTrue(dropout.forward(x, mode: .inference).isBitIdentical(to: x))
        let y = dropout.forward(x, mode: .training)
        var dropped = 0
        for i in 0..<x.count {
            if y[flat: i] == 0 { dropped += 1 } else { XCTAssertEqual(y[flat: i], x[flat: i] / 0.75, accuracy: 1e-5) }
        }
        XCTAssertEqual(Double(dropped) / Double(x.count), 0.25, accuracy: 0.02)
        // Backward uses the same mask.
        let g = dropout.backward(Tensor(shape: x.shape, repeating: 1))
        for i in 0..<x.count { XCTAssertEqual(g[flat: i], y[flat: i] == 0 ? 0 : 1 / 0.75, accuracy: 1e-6) }
    }

    func testSameSeedSameMasksAndFreshMasksOtherwise() throws {
        let a = try Dropout(probability: 0.5, seed: 9), b = try Dropout(probability: 0.5, seed: 9)
        let x = Tensor(shape: [4, 16], repeating: 1)
        let first = a.forward(x, mode: .training)
        XCTAssertTrue(first.isBitIdentical(to: b.forward(x, mode: .training)))
        XCTAssertFalse(first.isBitIdentical(to: a.forward(x, mode: .training)), "a new mask per training forward")
        a.reusesMask = true
        let frozen = a.forward(x, mode: .training)
        XCTAssertTrue(frozen.isBitIdentical(to: a.forward(x, mode: .training)))
    }

    func testGradientsWithReusedMask() throws {
        let dropout = try Dropout(probability: 0.3, seed: 4)
        dropout.reusesMask = true
        var rng = SeededGenerator(seed: 5)
        assertGradientsMatch(dropout, input: .uniform([3, 2, 2, 2], low: -1, high: 1, using: &rng))
    }

    func testInvalidProbabilityThrows() {
        XCTAssertThrowsError(try Dropout(probability: 1, seed: 0)) {
            XCTAssertEqual(
                $0 as? LayerError,
                .invalidConfiguration(
                    layer: "Dropout", option: "probability", value: "1.0", reason: "must be in [0, 1)"))
        }
        XCTAssertThrowsError(try Dropout(probability: -0.1, seed: 0))
        XCTAssertThrowsError(try Dropout(probability: .nan, seed: 0))
    }
}
