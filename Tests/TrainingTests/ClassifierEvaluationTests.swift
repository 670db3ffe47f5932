import Foundation
import Layerwise
import XCTest

/// Classifier metrics and the trainer's evaluation hook (driven by a linear probe).
final class ClassifierEvaluationTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    func testMetricsKnownAnswer() {
        let m = ClassificationMetrics(predictions: [0, 1, 1, 2, 2, 0], labels: [0, 1, 2, 2, 2, 1], classCount: 4)
        XCTAssertEqual(m.accuracy, 4.0 / 6.0)
        XCTAssertEqual(m.count, 6)
        XCTAssertEqual(m.confusion, [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]])
        XCTAssertEqual(m.perClassAccuracy[0], 1)
        XCTAssertEqual(m.perClassAccuracy[1], 0.5)
        XCTAssertEqual(m.perClassAccuracy[2], 2.0 / 3.0)
        XCTAssertTrue(m.perClassAccuracy[3].isNaN)
        XCTAssertEqual(
            Evaluation.predictions(logits: try! Tensor(shape: [2, 3], values: [0, 2, 1, 5, -1, 4])), [1, 0])
    }

    func testProbeAsTrainerEvaluationHook() throws {
        let f = TwoStageFixture(steps: 4, stepsPerEpoch: 2, stage2: false)
        let t = try f.trainer()
        t.evaluateEvery = 1
        t.evaluation = LinearProbe(epochs: 5, learningRate: 0.01, batchSize: 32).hook(
            train: SyntheticImages(count: 32, seed: 51), test: SyntheticImages(count: 32, seed: 52))
        let report = try t.pretrain()
        XCTAssertEqual(report.stages[0].evaluations.map(\.epoch), [1, 2])
        for e in report.stages[0].evaluations { XCTAssertTrue((0...1).contains(e.accuracy)) }
    }
}
