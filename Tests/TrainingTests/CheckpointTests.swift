import Foundation
import Layerwise
import XCTest

final class CheckpointTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    /// Every parameter and buffer of the stack, heads included.
    func state(_ t: LayerwiseTrainer) -> [Tensor] { t.namedState().map(\.parameter.value) }

    func testWeightsRoundTripBitExact() throws {
        let a = TwoStageFixture(steps: 4, stepsPerEpoch: 2)
        let trainer = try a.trainer()
        try trainer.pretrain()
        let dir = try temporaryDirectory()
        let path = (dir as NSString).appendingPathComponent("weights.safetensors")
        try trainer.saveWeights(to: path)

        let b = try TwoStageFixture(seed: 77).trainer()
        XCTAssertFalse(bitIdentical(state(trainer), state(b)))
        try b.loadWeights(from: path)
        XCTAssertTrue(bitIdentical(state(trainer), state(b)))
        // The buffer (running statistics) travelled too, and it is not all zeros.
        let mean = try XCTUnwrap(b.stateTensors()["stage1.3.running_mean"])
        XCTAssertTrue(mean.isBitIdentical(to: trainer.stateTensors()["stage1.3.running_mean"]!))
        XCTAssertTrue(mean.scalars.contains { $0 != 0 })
    }

    func testResumeAfterInterruptEqualsUninterruptedRun() throws {
        // Uninterrupted reference, momentum SGD so optimizer state matters.
        let reference = TwoStageFixture(momentum: 0.9, steps: 12, stepsPerEpoch: 4)
        let full = try reference.trainer(seed: 11)
        let fullReport = try full.pretrain()

        for stopAt in [(stage: 1, step: 6), (stage: 2, step: 7), (stage: 2, step: 12)] {
            let dir = try temporaryDirectory("resume\(stopAt.stage)x\(stopAt.step)")
            // The interrupted run: same configuration, stopped mid-way.
            let first = try TwoStageFixture(momentum: 0.9, steps: 12, stepsPerEpoch: 4).trainer(seed: 11)
            first.checkpointDirectory = dir
            first.checkpointEvery = 5
            var saved: [String] = []
            XCTAssertThrowsError(
                try first.pretrain { e in
                    if case let .step(s) = e, s.stage == stopAt.stage, s.step == stopAt.step { first.requestStop() }
                    if case let .checkpointSaved(path) = e { saved.append(path) }
                }
            ) { error in
                XCTAssertEqual(error as? TrainerError, .stopped(stage: stopAt.stage, step: stopAt.step))
            }
            XCTAssertTrue(
                saved.last!.hasSuffix(
                    "layerwise-stage\(stopAt.stage)-step\(String(format: "%09d", stopAt.step)).safetensors"))

            // A new process: different initial weights and trainer seed; everything comes
            // back from the checkpoint.
            let resumed = try TwoStageFixture(seed: 123, momentum: 0.9, steps: 12, stepsPerEpoch: 4).trainer(seed: 999)
            resumed.checkpointDirectory = dir
            resumed.checkpointEvery = 5
            var resumedEvents: [TrainingEvent] = []
            let report = try resumed.pretrain(resume: true) { e in if case .resumed = e { resumedEvents.append(e) } }
            XCTAssertEqual(resumedEvents.count, 1)
            XCTAssertTrue(
                bitIdentical(state(full), state(resumed)), "resume after \(stopAt) differs from the uninterrupted run")
            // Epoch means survive the interruption too.
            if stopAt.step < 12 {
                XCTAssertEqual(report.stages.last?.epochLosses.last, fullReport.stages.last?.epochLosses.last)
            } else {
                XCTAssertTrue(report.stages.isEmpty, "nothing left to train")
            }
            XCTAssertEqual(report.stages.first?.resumedAfterStep, stopAt.step == 12 ? nil : stopAt.step)
        }
    }

    /// A loss whose miner draws from its own generator: the checkpoint carries that
    /// generator, so the resumed run picks the same negatives as the uninterrupted one.
    func testResumeRestoresTheMinersOwnGenerator() throws {
        func fixture(minerSeed: UInt64, weightsSeed: UInt64 = 1) -> TwoStageFixture {
            var f = TwoStageFixture(seed: weightsSeed, momentum: 0.9, steps: 10, stepsPerEpoch: 5, stage2: false)
            f.stages[0].objective = ContrastiveObjective(
                sampler: neighborSampler(f.data),
                loss: TripletMarginLoss(
                    distance: CosineDistance(), margin: 0.5, miner: RandomNegativeMiner(seed: minerSeed)))
            return f
        }
        let full = try fixture(minerSeed: 5).trainer(seed: 11)
        try full.pretrain()
        // The miner matters: another miner seed trains other weights.
        let other = try fixture(minerSeed: 6).trainer(seed: 11)
        try other.pretrain()
        XCTAssertFalse(bitIdentical(state(full), state(other)))

        let dir = try temporaryDirectory()
        let first = try fixture(minerSeed: 5).trainer(seed: 11)
        first.checkpointDirectory = dir
        first.checkpointEvery = 3
        XCTAssertThrowsError(try first.pretrain { e in if case let .step(s) = e, s.step == 6 { first.requestStop() } })
        // A new process whose miner starts from another seed: the checkpoint restores it.
        let resumed = try fixture(minerSeed: 99, weightsSeed: 123).trainer(seed: 999)
        resumed.checkpointDirectory = dir
        try resumed.pretrain(resume: true)
        XCTAssertTrue(bitIdentical(state(full), state(resumed)), "the resumed run drew other negatives")
    }

    func testResumeWithAuxiliaryObjectiveParameters() throws {
        func make(seed: UInt64) -> [Stage] {
            let data = SyntheticImages(count: 24, seed: 99)
            return [
                Stage(
                    layers: [conv(3, 8, 4, seed: seed), pool(2), ReLU()],
                    objective: TestSurrogateObjective(sampler: neighborSampler(data), classes: 2),
                    optimizer: SGD(learningRate: 0.05, momentum: 0.9), schedule: ConstantSchedule(0.05),
                    batchSize: 8, budget: .epochs(5, stepsPerEpoch: 4))
            ]
        }
        let fullStages = make(seed: 1)
        let full = try LayerwiseTrainer(stages: fullStages, inputChannels: 3, firstPatchSize: 5, seed: 3)
        let report = try full.pretrain()
        XCTAssertLessThan(report.stages[0].epochLosses.last!, report.stages[0].epochLosses.first!)
        let fullAux = snapshot(fullStages[0].objective.auxiliaryParameters)
        XCTAssertEqual(fullAux.map(\.shape), [[2, 8], [2]])

        let dir = try temporaryDirectory()
        let firstStages = make(seed: 1)
        let first = try LayerwiseTrainer(stages: firstStages, inputChannels: 3, firstPatchSize: 5, seed: 3)
        first.checkpointDirectory = dir
        XCTAssertThrowsError(try first.pretrain { e in if case let .step(s) = e, s.step == 9 { first.requestStop() } })
        let resumedStages = make(seed: 2)
        let resumed = try LayerwiseTrainer(stages: resumedStages, inputChannels: 3, firstPatchSize: 5, seed: 4)
        resumed.checkpointDirectory = dir
        try resumed.pretrain(resume: true)
        XCTAssertTrue(bitIdentical(snapshot(fullStages[0].parameters), snapshot(resumedStages[0].parameters)))
        XCTAssertTrue(bitIdentical(fullAux, snapshot(resumedStages[0].objective.auxiliaryParameters)))
    }

    func testResumeWithoutCheckpointStartsFresh() throws {
        let f = TwoStageFixture(steps: 2, stepsPerEpoch: 1)
        let t = try f.trainer()
        t.checkpointDirectory = try temporaryDirectory()
        let report = try t.pretrain(resume: true)
        XCTAssertEqual(report.stages.map(\.steps), [2, 2])
        // One checkpoint per stage end is kept (keepCheckpoints = 2).
        let files = try FileManager.default.contentsOfDirectory(atPath: t.checkpointDirectory!).filter {
            $0.hasSuffix(".safetensors")
        }
        XCTAssertEqual(
            files.sorted(),
            ["layerwise-stage1-step000000002.safetensors", "layerwise-stage2-step000000002.safetensors"])
        // A finished run resumes to nothing.
        let again = try t.pretrain(resume: true)
        XCTAssertEqual(again.stages.count, 0)
    }

    func testCorruptCheckpointIsRejectedNamingFileAndProblem() throws {
        let f = TwoStageFixture(steps: 2, stepsPerEpoch: 1)
        let t = try f.trainer()
        let dir = try temporaryDirectory()
        let path = (dir as NSString).appendingPathComponent("w.safetensors")
        try t.saveWeights(to: path)
        let good = state(t)

        // Truncated file.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let truncated = (dir as NSString).appendingPathComponent("truncated.safetensors")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        let other = try TwoStageFixture(seed: 9).trainer()
        let before = state(other)
        XCTAssertThrowsError(try other.loadWeights(from: truncated)) { error in
            guard case let TrainerError.checkpoint(p, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(p, truncated)
        }
        XCTAssertTrue(bitIdentical(before, state(other)), "a rejected file changes nothing")

        // Missing file.
        XCTAssertThrowsError(try other.loadWeights(from: dir + "/nope.safetensors")) {
            guard case TrainerError.checkpoint(path: dir + "/nope.safetensors", _) = $0 else { return XCTFail("\($0)") }
        }

        // A tensor removed from an otherwise valid file.
        var file = try SafeTensors.read(path: path)
        file.tensors["stage1.0.bias"] = nil
        let pruned = (dir as NSString).appendingPathComponent("pruned.safetensors")
        try SafeTensors.write(file.tensors, metadata: file.metadata, to: pruned)
        XCTAssertThrowsError(try other.loadWeights(from: pruned)) { error in
            XCTAssertEqual(
                error as? TrainerError, .checkpoint(path: pruned, reason: "missing tensor \"stage1.0.bias\""))
        }
        // A tensor that is not the stack's.
        file = try SafeTensors.read(path: path)
        file.tensors["stage9.0.weight"] = Tensor.zeros([1])
        try SafeTensors.write(file.tensors, metadata: file.metadata, to: pruned)
        XCTAssertThrowsError(try other.loadWeights(from: pruned)) { error in
            guard case let TrainerError.checkpoint(_, reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("unexpected tensor \"stage9.0.weight\""), reason)
        }
        XCTAssertTrue(bitIdentical(before, state(other)), "rejected files change nothing")

        // Same layer types, different width: a shape mismatch names the tensor.
        var wide = TwoStageFixture(steps: 2, stepsPerEpoch: 1)
        wide.stages[1].layers = [conv(8, 16, 2, seed: 3), pool(2)]
        let w = try LayerwiseTrainer(stages: wide.stages, inputChannels: 3, firstPatchSize: 5, seed: 1)
        XCTAssertThrowsError(try w.loadWeights(from: path)) { error in
            guard case let TrainerError.checkpoint(p, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(p, path)
            XCTAssertTrue(reason.contains("stage2.0.weight") && reason.contains("shape"), reason)
        }

        // A different stack altogether.
        let one = try TwoStageFixture(stage2: false).trainer()
        XCTAssertThrowsError(try one.loadWeights(from: path)) { error in
            guard case let TrainerError.checkpoint(_, reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("stages"), reason)
        }
        XCTAssertTrue(bitIdentical(good, state(t)))
    }

    func testCorruptLatestCheckpointStopsResume() throws {
        let f = TwoStageFixture(steps: 4, stepsPerEpoch: 2)
        let t = try f.trainer()
        let dir = try temporaryDirectory()
        t.checkpointDirectory = dir
        t.checkpointEvery = 1
        XCTAssertThrowsError(try t.pretrain { e in if case let .step(s) = e, s.step == 3 { t.requestStop() } })
        let latest = try XCTUnwrap(t.latestCheckpoint(mode: .layerwise))
        try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: latest))
        XCTAssertThrowsError(try TwoStageFixture(steps: 4, stepsPerEpoch: 2).trainer().pretrainResuming(dir)) { error in
            guard case let TrainerError.checkpoint(p, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(p, latest)
        }
    }
}

extension LayerwiseTrainer {
    func pretrainResuming(_ dir: String) throws {
        checkpointDirectory = dir
        try pretrain(resume: true)
    }
}

final class EndToEndResumeTests: XCTestCase {
    func testEndToEndResumeEqualsUninterruptedAndIgnoresLayerwiseFiles() throws {
        BLAS.threadCount = 1
        let full = try TwoStageFixture(steps: 8, stepsPerEpoch: 4).trainer()
        try full.pretrainEndToEnd()

        let dir = try temporaryDirectory()
        // A layer-wise checkpoint in the same directory must not be picked up.
        let other = try TwoStageFixture(steps: 2, stepsPerEpoch: 1).trainer()
        other.checkpointDirectory = dir
        try other.pretrain()

        let first = try TwoStageFixture(steps: 8, stepsPerEpoch: 4).trainer()
        first.checkpointDirectory = dir
        XCTAssertThrowsError(
            try first.pretrainEndToEnd { e in if case let .step(s) = e, s.step == 5 { first.requestStop() } }
        ) {
            XCTAssertEqual($0 as? TrainerError, .stopped(stage: 0, step: 5))
        }
        XCTAssertTrue(
            try first.latestCheckpoint(mode: .endToEnd)!.hasSuffix("endToEnd-stage0-step000000005.safetensors"))
        let resumed = try TwoStageFixture(seed: 42, steps: 8, stepsPerEpoch: 4).trainer(seed: 3)
        resumed.checkpointDirectory = dir
        let report = try resumed.pretrainEndToEnd(resume: true)
        XCTAssertEqual(report.stages.first?.resumedAfterStep, 5)
        XCTAssertEqual(report.stages.first?.steps, 3)
        XCTAssertTrue(
            bitIdentical(full.namedState().map(\.parameter.value), resumed.namedState().map(\.parameter.value)))
    }
}
