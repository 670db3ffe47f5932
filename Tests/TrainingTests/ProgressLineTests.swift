import Layerwise
import XCTest

final class ProgressLineTests: XCTestCase {
    func testStepLine() {
        let e = StepEvent(
            stage: 2, epoch: 3, step: 42, totalSteps: 500, loss: 0.12345, activeFraction: 0.45,
            meanPositiveDistance: 0.12, meanNegativeDistance: 0.56, tripletsPerSecond: 1234.4, etaSeconds: 3725,
            learningRate: 0.01)
        XCTAssertEqual(
            ProgressLine().render(e),
            "stage 2 │ epoch 3 │ step  42/500 │ loss 0.1235"
                + " │ active 45% │ d+ 0.120 d− 0.560"
                + " │ 1234 trip/s │ eta 1:02:05"
        )
        XCTAssertEqual(ProgressLine(width: 20).render(e).count, 20)
        var collapsed = e
        collapsed.isCollapsed = true
        collapsed.stage = 0
        XCTAssertTrue(ProgressLine().render(collapsed).hasPrefix("end-to-end"))
        XCTAssertTrue(ProgressLine().render(collapsed).contains("COLLAPSED"))
    }

    func testOtherEvents() {
        let p = ProgressLine()
        XCTAssertEqual(p.render(.stageStarted(stage: 1, patchSize: 7)), "stage 1 │ training on 7x7 patches")
        XCTAssertEqual(
            p.render(.epochEnded(stage: 1, epoch: 2, meanLoss: 0.5, evaluationAccuracy: 0.625)),
            "stage 1 │ epoch 2 done │ mean loss 0.5000 │ eval acc 62.5%")
        XCTAssertEqual(
            p.render(.stageFinished(stage: 3, seconds: 75, finalLoss: 0.25)),
            "stage 3 │ finished in 1:15 │ final loss 0.2500")
        XCTAssertEqual(p.render(.checkpointSaved(path: "/tmp/a")), "checkpoint → /tmp/a")
        let r = EpochRecord(
            epoch: 4, trainingLoss: 1.5, trainingAccuracy: 0.5, validationAccuracy: 0.55, seconds: 9, learningRate: 0.1)
        XCTAssertEqual(
            p.render(.epochEnded(r)),
            "classifier │ epoch 4 done │ train loss 1.5000 │ train acc 50.0% │ val acc 55.0% │ 0:09")
    }
}
