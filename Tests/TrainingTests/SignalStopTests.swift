import Foundation
import Layerwise
import XCTest

/// The first SIGINT / SIGTERM asks the trainer to stop after the current step (the second,
/// which exits the process at once, is exercised by Scripts/kill_resume_test.sh).
final class SignalStopTests: XCTestCase {
    override func setUp() { BLAS.threadCount = 1 }

    func waitUntil(_ condition: () -> Bool, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() && Date() < deadline { usleep(1000) }
        return condition()
    }

    func testASignalSetsTheStopRequest() {
        for signo in [SIGTERM, SIGINT] {
            let stop = SignalStop(message: { "test saw \($0)" })
            XCTAssertNil(stop.receivedSignal)
            kill(getpid(), signo)
            XCTAssertTrue(waitUntil { stop.stopRequest.isRequested }, "\(SignalStop.name(of: signo)) was not seen")
            XCTAssertEqual(stop.receivedSignal, signo)
            stop.cancel()
            // Cancelled: the default action is back (checked without raising the signal).
            let previous = signal(signo, SIG_DFL)
            XCTAssertEqual(unsafeBitCast(previous, to: Int.self), unsafeBitCast(SIG_DFL, to: Int.self))
        }
    }

    func testTrainingStopsAtTheNextStepWithACheckpoint() throws {
        let dir = try temporaryDirectory()
        let t = try TwoStageFixture(steps: 6, stepsPerEpoch: 3, stage2: false).trainer()
        t.checkpointDirectory = dir
        let stop = SignalStop(stopRequest: t.stopRequest, message: { "test saw \($0)" })
        defer { stop.cancel() }
        var saved: [String] = []
        XCTAssertThrowsError(
            try t.pretrain { event in
                if case let .step(s) = event, s.step == 2 {
                    kill(getpid(), SIGTERM)
                    XCTAssertTrue(self.waitUntil { t.stopRequest.isRequested })
                }
                if case let .checkpointSaved(path) = event { saved.append((path as NSString).lastPathComponent) }
            }
        ) { error in
            XCTAssertEqual(error as? TrainerError, .stopped(stage: 1, step: 2))
        }
        XCTAssertEqual(saved, ["layerwise-stage1-step000000002.safetensors"])
        XCTAssertEqual(SignalStop.stoppedExitStatus, 75)
    }
}
