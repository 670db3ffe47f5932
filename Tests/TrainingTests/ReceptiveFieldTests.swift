import Layerwise
import XCTest

final class ReceptiveFieldTests: XCTestCase {
    /// Shape-only arithmetic: the layers are never run.

    func testReferenceStackStageOneAndTwo() throws {
        // 7x7 → conv 6x6 → 2x2 → max-pool 2 → 1x1.
        let s1: [any Layer] = [conv(3, 64, 6), pool(2), ReLU()]
        XCTAssertEqual(try ReceptiveField.patchSizes(stages: [s1], inputChannels: 3, firstPatchSize: 7), [7])
        // Stage 2 (conv 3x3 + pool 2) needs a 4x4 stage-1 map: 13 → 8 → 4 → 2 → 1.
        let s2: [any Layer] = [conv(64, 64, 3), pool(2)]
        let sizes = try ReceptiveField.patchSizes(stages: [s1, s2], inputChannels: 3, firstPatchSize: 7)
        XCTAssertEqual(sizes, [7, 13])
        XCTAssertTrue(ReceptiveField.reducesToOne([s1, s2], channels: 3, size: 13))
        XCTAssertFalse(ReceptiveField.reducesToOne([s1, s2], channels: 3, size: 12))
        // 16 also reduces to 1x1 (16 → 11 → 5 → 3 → 1), but 13 is the smallest.
        XCTAssertTrue(ReceptiveField.reducesToOne([s1, s2], channels: 3, size: 16))
        // A third stage with the same shape: needs a 4x4 stage-2 map → 10x10 stage-1 map → 25.
        let s3: [any Layer] = [conv(64, 64, 3), pool(2)]
        XCTAssertEqual(
            try ReceptiveField.patchSizes(stages: [s1, s2, s3], inputChannels: 3, firstPatchSize: 7), [7, 13, 25])
    }

    func testStridedAndSingleLayerStacks() throws {
        // A stride-2 3x3 conv: 5 → 2 … the smallest 1x1 input is 3; with a second one, 7 (7 → 3 → 1).
        let a: [any Layer] = [conv(1, 4, 3, stride: 2)]
        let b: [any Layer] = [conv(4, 4, 3, stride: 2)]
        XCTAssertEqual(try ReceptiveField.patchSizes(stages: [a, b], inputChannels: 1, firstPatchSize: 3), [3, 7])
        // Pool-only second stage: 3x3 conv gives 1x1 from 3; pool 2 on top needs 2x2 → 4.
        let c: [any Layer] = [conv(1, 4, 3)]
        XCTAssertEqual(
            try ReceptiveField.patchSizes(stages: [c, [pool(2)]], inputChannels: 1, firstPatchSize: 3), [3, 4])
        // A trailing Linear after the 1x1 map is fine.
        XCTAssertEqual(
            try ReceptiveField.patchSizes(
                stages: [[conv(1, 4, 3), Flatten(), linear(4, 2, seed: 1)]], inputChannels: 1, firstPatchSize: 3), [3])
    }

    func testPatchThatDoesNotReduceToOneIsRejected() {
        let s1: [any Layer] = [conv(3, 8, 6), pool(2)]
        // 9 → 4 → 2: not 1x1.
        XCTAssertThrowsError(try ReceptiveField.patchSizes(stages: [s1], inputChannels: 3, firstPatchSize: 9)) {
            error in
            guard case let TrainerError.receptiveField(stage, patch, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(stage, 1)
            XCTAssertEqual(patch, 9)
            XCTAssertTrue(reason.contains("2x2"), reason)
            XCTAssertTrue(reason.contains("smallest patch that gives 1x1 is 7x7"), reason)
        }
        // 5 is smaller than the 6x6 kernel.
        XCTAssertThrowsError(try ReceptiveField.patchSizes(stages: [s1], inputChannels: 3, firstPatchSize: 5)) {
            error in
            guard case let TrainerError.receptiveField(stage, patch, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(stage, 1)
            XCTAssertEqual(patch, 5)
            XCTAssertTrue(reason.contains("too small"), reason)
        }
    }

    func testChannelMismatchBetweenStagesIsNamed() {
        let s1: [any Layer] = [conv(3, 8, 6), pool(2)]
        let s2: [any Layer] = [conv(16, 8, 3)]  // expects 16 channels, gets 8
        XCTAssertThrowsError(try ReceptiveField.patchSizes(stages: [s1, s2], inputChannels: 3, firstPatchSize: 7)) {
            error in
            guard case let TrainerError.incompatibleStage(stage, layer, reason) = error else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(stage, 2)
            XCTAssertTrue(layer.hasPrefix("0"), layer)
            XCTAssertTrue(reason.contains("16"), reason)
        }
        // The same through the trainer's initializer, before any training.
        let data = SyntheticImages(count: 4, seed: 1)
        func stage(_ layers: [any Layer]) -> Stage {
            Stage(
                layers: layers,
                objective: ContrastiveObjective(
                    sampler: neighborSampler(data), loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5)),
                optimizer: SGD(learningRate: 0.1), schedule: ConstantSchedule(0.1), batchSize: 2, budget: .steps(1))
        }
        XCTAssertThrowsError(
            try LayerwiseTrainer(stages: [stage(s1), stage(s2)], inputChannels: 3, firstPatchSize: 7, seed: 1)
        ) {
            guard case TrainerError.incompatibleStage(stage: 2, _, _) = $0 else { return XCTFail("\($0)") }
        }
    }

    func testStackThatNeverReachesOneByOne() {
        // A ReLU-only stage keeps any size: nothing but 1x1 input gives 1x1, so a stage on top
        // of a 2x2 map… use a conv whose output never shrinks: 1x1 kernel on a 2x2 map.
        let s1: [any Layer] = [conv(1, 4, 2)]  // 2 → 1
        let s2: [any Layer] = [ReLU()]
        XCTAssertEqual(try ReceptiveField.patchSizes(stages: [s1, s2], inputChannels: 1, firstPatchSize: 2), [2, 2])
        let bad: [any Layer] = [conv(1, 4, 1)]  // 1x1 conv: p → p, 1x1 only for p = 1
        XCTAssertThrowsError(try ReceptiveField.patchSizes(stages: [bad], inputChannels: 1, firstPatchSize: 4)) {
            guard case TrainerError.receptiveField(stage: 1, patchSize: 4, _) = $0 else { return XCTFail("\($0)") }
        }
    }
}
