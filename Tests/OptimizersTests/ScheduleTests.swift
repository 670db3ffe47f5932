import Optimizers
import XCTest

final class ScheduleTests: XCTestCase {
    func testConstant() {
        XCTAssertEqual(ConstantSchedule(0.1).learningRate(atStep: 17, totalSteps: 20), 0.1)
    }

    func testStepDecayAtTwoThirds() {
        let s = StepDecaySchedule(initial: 0.1)
        XCTAssertEqual(s.learningRate(atStep: 0, totalSteps: 300), 0.1)
        XCTAssertEqual(s.learningRate(atStep: 199, totalSteps: 300), 0.1)
        XCTAssertEqual(s.learningRate(atStep: 200, totalSteps: 300), 0.01, accuracy: 1e-9)
        XCTAssertEqual(s.learningRate(atStep: 299, totalSteps: 300), 0.01, accuracy: 1e-9)
        let two = StepDecaySchedule(initial: 1, factor: 0.5, milestones: [0.5, 0.75])
        XCTAssertEqual(
            [0, 49, 50, 74, 75, 99].map { two.learningRate(atStep: $0, totalSteps: 100) }, [1, 1, 0.5, 0.5, 0.25, 0.25])
        XCTAssertThrowsError(try StepDecaySchedule(initial: 1, milestones: [1.5]).validate())
    }

    func testCosineWithWarmup() {
        let s = CosineSchedule(initial: 1, minimum: 0.1, warmupSteps: 4)
        XCTAssertEqual(s.learningRate(atStep: 0, totalSteps: 104), 0.25)
        XCTAssertEqual(s.learningRate(atStep: 3, totalSteps: 104), 1)
        XCTAssertEqual(s.learningRate(atStep: 4, totalSteps: 104), 1)
        XCTAssertEqual(s.learningRate(atStep: 54, totalSteps: 104), 0.55, accuracy: 1e-6)  // halfway: mean of 1 and 0.1
        XCTAssertEqual(s.learningRate(atStep: 103, totalSteps: 104), 0.1, accuracy: 1e-3)
        XCTAssertGreaterThan(s.learningRate(atStep: 103, totalSteps: 104), 0.1)
        XCTAssertThrowsError(try CosineSchedule(initial: 0.1, minimum: 1).validate())
    }
}
