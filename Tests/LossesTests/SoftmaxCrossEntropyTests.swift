import Foundation
import LayerwiseTestSupport
import Losses
import TensorCore
import XCTest

final class SoftmaxCrossEntropyTests: XCTestCase {
    func testMatchesNaiveAndFiniteDifferences() throws {
        var rng = SeededGenerator(seed: 3)
        let logits = Tensor.normal([6, 4], standardDeviation: 2, using: &rng)
        let labels = [0, 3, 1, 2, 2, 0]
        let (loss, gradient) = try SoftmaxCrossEntropy().evaluate(logits: logits, labels: labels)
        let naive = Naive.crossEntropy(logits: Naive.rows(logits), labels: labels)
        XCTAssertEqual(Double(loss), naive.loss, accuracy: 1e-5)
        assertClose(gradient, naive.gradient, accuracy: 1e-6, "cross-entropy")
        let report = try GradientCheck.check(crossEntropy: SoftmaxCrossEntropy(), logits: logits, labels: labels)
        XCTAssertTrue(report.passes(tolerance: 1e-3), "\(report)")
        let numeric = try GradientCheck.numericGradient(at: logits, epsilon: 1e-3) {
            Double(try SoftmaxCrossEntropy().evaluate(logits: $0, labels: labels).loss)
        }
        XCTAssertLessThan(relativeError(gradient, numeric), 1e-2)
    }

    func testKnownAnswersAndStability() throws {
        // Uniform logits over 4 classes: log 4.
        let uniform = Tensor(shape: [2, 4], repeating: 7)
        XCTAssertEqual(
            try SoftmaxCrossEntropy().evaluate(logits: uniform, labels: [1, 3]).loss, log(4), accuracy: 1e-6)
        // Huge logits do not overflow.
        let huge = try Tensor(shape: [1, 2], values: [1000, 0])
        let right = try SoftmaxCrossEntropy().evaluate(logits: huge, labels: [0])
        XCTAssertEqual(right.loss, 0, accuracy: 1e-6)
        let wrong = try SoftmaxCrossEntropy().evaluate(logits: huge, labels: [1])
        XCTAssertEqual(wrong.loss, 1000, accuracy: 1e-3)
        XCTAssertEqual(wrong.gradient.scalars, [1, -1])
    }

    func testAccuracy() throws {
        let logits = try Tensor(shape: [3, 3], values: [0, 1, 0, 2, 1, 0, 0, 0, 5])
        XCTAssertEqual(try SoftmaxCrossEntropy.accuracy(logits: logits, labels: [1, 1, 2]), 2.0 / 3.0, accuracy: 1e-6)
    }

    func testBadInputIsATypedError() throws {
        let logits = Tensor.zeros([2, 3])
        let ce = SoftmaxCrossEntropy()
        XCTAssertThrowsError(try ce.evaluate(logits: logits, labels: [0, 3])) {
            XCTAssertEqual($0 as? LossError, .labelOutOfRange(index: 1, label: 3, classCount: 3))
        }
        XCTAssertThrowsError(try ce.evaluate(logits: logits, labels: [-1, 0])) {
            XCTAssertEqual($0 as? LossError, .labelOutOfRange(index: 0, label: -1, classCount: 3))
        }
        XCTAssertThrowsError(try ce.evaluate(logits: logits, labels: [0])) {
            XCTAssertEqual($0 as? LossError, .labelCountMismatch(expected: 2, got: 1))
        }
        XCTAssertThrowsError(try ce.evaluate(logits: Tensor.zeros([0, 3]), labels: [])) {
            XCTAssertEqual($0 as? LossError, .emptyBatch)
        }
        XCTAssertThrowsError(try ce.evaluate(logits: Tensor.zeros([6]), labels: [0])) {
            XCTAssertEqual($0 as? LossError, .invalidLogitShape(shape: [6]))
        }
        var nan = logits
        nan[flat: 4] = .nan
        XCTAssertThrowsError(try ce.evaluate(logits: nan, labels: [0, 0])) {
            XCTAssertEqual($0 as? LossError, .nonFinite(what: "logits", row: 1))
        }
        XCTAssertThrowsError(try SoftmaxCrossEntropy.accuracy(logits: logits, labels: [5, 0]))
    }
}
