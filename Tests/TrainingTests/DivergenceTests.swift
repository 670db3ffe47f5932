import Foundation
import Layerwise
import XCTest

/// Divergence beyond the stage-1 case of ``LayerwiseTrainerTests``: a blow-up in a later
/// stage, with Adam, with pruned checkpoints, and from non-finite data. Every time the run
/// stops at the first non-finite value with ``TrainerError/nonFinite(stage:epoch:step:what:)``
/// naming stage, epoch and step; the offending update is not applied; and the newest
/// checkpoint on disk is complete, finite and loadable, so the run can be resumed with a
/// saner learning rate.
final class DivergenceTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    /// Two stages without ReLU (a huge step must overflow, not just kill every unit):
    /// conv 4 (3→8) + pool 2 on 5×5 patches, conv 2 (8→8) + pool 2 on 9×9 patches.
    private struct Run {
        var data: any ImageDataset = SyntheticImages(count: 24, seed: 99)
        var learningRates: [Float] = [0.01, 0.01]
        var adam = [false, false]
        var epochs = 2, stepsPerEpoch = 3
        var stages: [Stage] = []

        mutating func trainer(seed: UInt64 = 7, layerSeed: UInt64 = 1) throws -> LayerwiseTrainer {
            stages = try (0..<2).map { k in
                let layers: [any Layer] =
                    k == 0
                    ? [conv(3, 8, 4, seed: layerSeed), pool(2)] : [conv(8, 8, 2, seed: layerSeed + 1), pool(2)]
                let lr = learningRates[k]
                return Stage(
                    layers: layers,
                    objective: ContrastiveObjective(
                        sampler: try NeighborPatchSampler(dataset: data, maxOffset: 1),
                        loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5)),
                    optimizer: adam[k] ? Adam(learningRate: lr) : SGD(learningRate: lr),
                    schedule: ConstantSchedule(lr), batchSize: 16,
                    budget: .epochs(epochs, stepsPerEpoch: stepsPerEpoch))
            }
            return try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: 5, seed: seed)
        }
    }

    /// Asserts `error` is a non-finite error at `stage` and one step after the last completed
    /// step, with the position in the message; returns the step.
    @discardableResult
    private func assertNonFinite(
        _ error: Error, stage: Int, completedSteps: Int, stepsPerEpoch: Int,
        file: StaticString = #filePath, line: UInt = #line
    ) -> Int? {
        guard case let TrainerError.nonFinite(s, epoch, step, what) = error else {
            XCTFail("expected TrainerError.nonFinite, got \(type(of: error)): \(error)", file: file, line: line)
            return nil
        }
        XCTAssertEqual(s, stage, file: file, line: line)
        XCTAssertEqual(step, completedSteps + 1, "the first non-finite step", file: file, line: line)
        XCTAssertEqual(epoch, (step - 1) / stepsPerEpoch + 1, file: file, line: line)
        XCTAssertFalse(what.isEmpty, file: file, line: line)
        let text = "\(error)"
        print("DivergenceTests: after \(completedSteps) good steps: \(text)")
        XCTAssertTrue(text.contains("stage \(stage), epoch \(epoch), step \(step)"), text, file: file, line: line)
        XCTAssertTrue(
            text.contains("learning rate"), "the message should suggest the fix: \(text)", file: file, line: line)
        return step
    }

    /// Every tensor of a checkpoint file is finite, and the file holds the stack's weights.
    private func assertFiniteCheckpoint(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let contents = try SafeTensors.read(path: path)
        XCTAssertFalse(contents.tensors.isEmpty, file: file, line: line)
        for (name, t) in contents.tensors {
            XCTAssertTrue(t.isFinite, "\(name) in \(path) is not finite", file: file, line: line)
        }
        for name in ["stage1.0.weight", "stage1.0.bias", "stage2.0.weight", "stage2.0.bias"] {
            XCTAssertNotNil(contents.tensors[name], "\(name) missing from \(path)", file: file, line: line)
        }
    }

    func testDivergenceInStageTwoKeepsTheStageOneCheckpointAndTheRunResumes() throws {
        var run = Run()
        run.learningRates = [0.01, 1e30]
        let trainer = try run.trainer()
        let dir = try temporaryDirectory()
        trainer.checkpointDirectory = dir  // checkpointEvery 0: only when a stage ends
        let stage1 = run.stages[0].parameters, stage2 = run.stages[1].parameters
        var stage1Final: [Tensor] = [], stage2LastGood: [Tensor] = []
        var stage2Steps = 0
        var saved: [String] = []
        XCTAssertThrowsError(
            try trainer.pretrain { e in
                if case .stageFinished(stage: 1, _, _) = e { stage1Final = snapshot(stage1) }
                if case .stageStarted(stage: 2, _) = e { stage2LastGood = snapshot(stage2) }
                if case let .step(s) = e, s.stage == 2 { stage2Steps += 1; stage2LastGood = snapshot(stage2) }
                if case let .checkpointSaved(path) = e { saved.append(path) }
            }
        ) { error in
            assertNonFinite(error, stage: 2, completedSteps: stage2Steps, stepsPerEpoch: 3)
        }
        XCTAssertGreaterThanOrEqual(stage2Steps, 1, "1e30 should survive one step and overflow on the next")
        // The failing update was not applied; stage 1 is untouched.
        XCTAssertTrue(bitIdentical(stage2LastGood, snapshot(stage2)))
        XCTAssertTrue(bitIdentical(stage1Final, snapshot(stage1)))

        // The last good checkpoint is the end of stage 1: finite, loadable, exact.
        let latest = try XCTUnwrap(trainer.latestCheckpoint(mode: .layerwise))
        XCTAssertEqual(saved, [latest])
        XCTAssertTrue(latest.hasSuffix("layerwise-stage1-step000000006.safetensors"), latest)
        try assertFiniteCheckpoint(latest)
        var other = Run()
        let fresh = try other.trainer(layerSeed: 50)
        try fresh.loadWeights(from: latest)
        XCTAssertTrue(bitIdentical(stage1Final, snapshot(other.stages[0].parameters)))
        XCTAssertTrue(snapshot(other.stages[1].parameters).allSatisfy(\.isFinite))

        // Recovery: the same stack with a sane stage-2 rate resumes after stage 1 and finishes.
        var saner = Run()
        let resumed = try saner.trainer(layerSeed: 50)
        resumed.checkpointDirectory = dir
        var resumedAt: (Int, Int)?
        let report = try resumed.pretrain(resume: true) { e in
            if case let .resumed(_, stage, step) = e { resumedAt = (stage, step) }
        }
        XCTAssertEqual(resumedAt?.0, 1)
        XCTAssertEqual(resumedAt?.1, 6)
        XCTAssertEqual(report.stages.map(\.stage), [2])
        XCTAssertTrue(report.stages[0].epochLosses.allSatisfy(\.isFinite))
        XCTAssertTrue(bitIdentical(stage1Final, snapshot(saner.stages[0].parameters)))
    }

    func testAdamBlowUpWithPrunedCheckpointsLeavesOneFiniteLoadableCheckpoint() throws {
        var run = Run()
        run.learningRates = [1e30, 0.01]
        run.adam = [true, false]
        let trainer = try run.trainer()
        let dir = try temporaryDirectory()
        trainer.checkpointDirectory = dir
        trainer.checkpointEvery = 1
        trainer.keepCheckpoints = 1
        var steps = 0
        var lastGood: [Tensor] = []
        XCTAssertThrowsError(
            try trainer.pretrain { e in
                if case let .step(s) = e, s.stage == 1 { steps += 1; lastGood = snapshot(run.stages[0].parameters) }
            }
        ) { error in
            assertNonFinite(error, stage: 1, completedSteps: steps, stepsPerEpoch: 3)
        }
        XCTAssertGreaterThanOrEqual(steps, 1)
        XCTAssertTrue(bitIdentical(lastGood, snapshot(run.stages[0].parameters)), "the failing Adam update was applied")
        // Exactly one checkpoint (pruning kept the newest) and no temporary files (the run's
        // released lock file stays).
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertEqual(
            files, [DirectoryLock.fileName, "layerwise-stage1-step\(String(format: "%09d", steps)).safetensors"])
        let latest = try XCTUnwrap(trainer.latestCheckpoint(mode: .layerwise))
        try assertFiniteCheckpoint(latest)
        // Adam's moments travel in the checkpoint and are finite too.
        let contents = try SafeTensors.read(path: latest)
        XCTAssertTrue(
            contents.tensors.keys.contains { $0.hasPrefix("optimizer.stage1.0.weight") },
            "\(contents.tensors.keys.sorted())")
        var other = Run()
        let fresh = try other.trainer(layerSeed: 50)
        try fresh.loadWeights(from: latest)
        XCTAssertTrue(bitIdentical(lastGood, snapshot(other.stages[0].parameters)))
    }

    /// Images with NaN pixels: the first step that samples one stops with the stage, epoch
    /// and step, and nothing is applied.
    func testNonFiniteDataStopsAtTheFirstStepThatSeesIt() throws {
        struct PoisonedImages: ImageDataset {
            let base: SyntheticImages
            let poisoned: Set<Int>
            var count: Int { base.count }
            var imageShape: ImageShape { base.imageShape }
            var classCount: Int? { base.classCount }
            func label(at index: Int) -> Int? { base.label(at: index) }
            func copyPixels(of index: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
                base.copyPixels(of: index, into: buffer)
                if poisoned.contains(index) { for i in 0..<imageShape.elementCount { buffer[i] = .nan } }
            }
        }
        for value: Set<Int> in [[0], Set(0..<24)] {
            var run = Run()
            run.data = PoisonedImages(base: SyntheticImages(count: 24, seed: 99), poisoned: value)
            let trainer = try run.trainer()
            let before = snapshot(run.stages.flatMap(\.parameters))
            var lastGood = before
            var steps = 0
            XCTAssertThrowsError(
                try trainer.pretrain { e in
                    if case .step = e { steps += 1; lastGood = snapshot(run.stages.flatMap(\.parameters)) }
                }
            ) { error in
                assertNonFinite(error, stage: 1, completedSteps: steps, stepsPerEpoch: 3)
                if case let TrainerError.nonFinite(_, _, _, what) = error {
                    XCTAssertTrue(what.contains("embeddings"), what)
                }
            }
            if value.count == 24 { XCTAssertEqual(steps, 0, "every patch is poisoned: the very first step must stop") }
            XCTAssertTrue(bitIdentical(lastGood, snapshot(run.stages.flatMap(\.parameters))))
        }
    }
}
