import Foundation
import Layerwise
import XCTest

final class LayerwiseTrainerTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    func testGreedyTrainingLowersLossAndKeepsLowerStageFrozen() throws {
        let f = TwoStageFixture(steps: 40, stepsPerEpoch: 10)
        let trainer = try f.trainer()
        XCTAssertEqual(trainer.patchSizes, [5, 9])
        let stage1 = f.stages[0].parameters
        let stage2 = f.stages[1].parameters
        let stage2Before = snapshot(stage2)
        var stage1AtStage2Start: [Tensor]?
        var frozenDuringStage2: [Bool] = []
        var events: [TrainingEvent] = []
        let report = try trainer.pretrain { event in
            events.append(event)
            if case .stageStarted(stage: 2, _) = event { stage1AtStage2Start = snapshot(stage1) }
            if case let .step(e) = event, e.stage == 2 { frozenDuringStage2.append(stage1.allSatisfy(\.isFrozen)) }
        }
        // Stage 1 is bit-identical from the moment stage 2 starts to the end.
        let s1 = try XCTUnwrap(stage1AtStage2Start)
        XCTAssertTrue(bitIdentical(s1, snapshot(stage1)), "stage-1 weights changed while stage 2 trained")
        XCTAssertFalse(bitIdentical(stage2Before, snapshot(stage2)), "stage 2 did not train")
        XCTAssertEqual(frozenDuringStage2.count, 40)
        XCTAssertTrue(frozenDuringStage2.allSatisfy { $0 })

        // The triplet loss falls in both stages.
        XCTAssertEqual(report.mode, .layerwise)
        XCTAssertEqual(report.stages.map(\.stage), [1, 2])
        XCTAssertEqual(report.stages.map(\.patchSize), [5, 9])
        for s in report.stages {
            XCTAssertEqual(s.epochLosses.count, 4)
            XCTAssertEqual(s.steps, 40)
            XCTAssertLessThan(
                s.epochLosses.last!, s.epochLosses.first! * 0.8, "stage \(s.stage) loss did not fall: \(s.epochLosses)")
            XCTAssertEqual(s.finalLoss, s.epochLosses.last!)
            XCTAssertGreaterThan(s.seconds, 0)
        }
        // After training nothing stays frozen.
        XCTAssertFalse(stage1.contains { $0.isFrozen })
        _ = events
    }

    func testEventStream() throws {
        let f = TwoStageFixture(steps: 4, stepsPerEpoch: 2)
        let trainer = try f.trainer()
        var events: [TrainingEvent] = []
        try trainer.pretrain { events.append($0) }
        // stageStarted, 2 × (2 steps, epochEnded), stageFinished — per stage.
        func kind(_ e: TrainingEvent) -> String {
            switch e {
            case let .stageStarted(s, p): return "start\(s)@\(p)"
            case let .step(e): return "step\(e.stage).\(e.epoch).\(e.step)/\(e.totalSteps)"
            case let .epochEnded(s, ep, _, acc): return "epoch\(s).\(ep)\(acc == nil ? "" : "+eval")"
            case let .stageFinished(s, _, _): return "finish\(s)"
            case .checkpointSaved: return "ckpt"
            case .resumed: return "resumed"
            }
        }
        XCTAssertEqual(
            events.map(kind),
            [
                "start1@5", "step1.1.1/4", "step1.1.2/4", "epoch1.1", "step1.2.3/4", "step1.2.4/4", "epoch1.2",
                "finish1",
                "start2@9", "step2.1.1/4", "step2.1.2/4", "epoch2.1", "step2.2.3/4", "step2.2.4/4", "epoch2.2",
                "finish2",
            ])
        for case let .step(e) in events {
            XCTAssertTrue(e.loss.isFinite)
            XCTAssertNotNil(e.activeFraction)
            XCTAssertNotNil(e.meanPositiveDistance)
            XCTAssertGreaterThan(e.samplesPerSecond, 0)
            XCTAssertGreaterThanOrEqual(e.etaSeconds, 0)
            XCTAssertEqual(e.learningRate, 0.01)
        }
        // Epoch means are the means of their steps.
        var losses: [Float] = []
        for event in events {
            if case let .step(e) = event { losses.append(e.loss) }
            if case let .epochEnded(_, _, mean, _) = event {
                XCTAssertEqual(mean, (losses[0] + losses[1]) / 2, accuracy: 1e-6)
                losses = []
            }
        }
        if case let .stageFinished(_, seconds, finalLoss) = events[7] {
            XCTAssertGreaterThan(seconds, 0)
            if case let .epochEnded(_, _, mean, _) = events[6] { XCTAssertEqual(finalLoss, mean) }
        } else {
            XCTFail("expected stageFinished")
        }
    }

    func testEvaluationHookRunsEveryNEpochs() throws {
        let f = TwoStageFixture(steps: 6, stepsPerEpoch: 2, stage2: false)
        let trainer = try f.trainer()
        trainer.evaluateEvery = 2
        var calls: [(Int, Int)] = []
        trainer.evaluation = { stage, features in
            calls.append((stage, features.layers.count))
            return 0.5
        }
        var evaluated: [Int] = []
        let report = try trainer.pretrain { e in
            if case let .epochEnded(_, epoch, _, acc) = e, acc != nil { evaluated.append(epoch) }
        }
        XCTAssertEqual(evaluated, [2])
        XCTAssertEqual(calls.count, 1)
        XCTAssertEqual(calls.first?.0, 1)
        XCTAssertEqual(calls.first?.1, 4)
        XCTAssertEqual(report.stages[0].evaluations, [EpochEvaluation(epoch: 2, accuracy: 0.5)])
    }

    func testSameSeedSameResult() throws {
        let a = TwoStageFixture(steps: 6, stepsPerEpoch: 3)
        let b = TwoStageFixture(steps: 6, stepsPerEpoch: 3)
        let ra = try a.trainer().pretrain()
        let rb = try b.trainer().pretrain()
        XCTAssertEqual(ra.stages.map(\.epochLosses), rb.stages.map(\.epochLosses))
        XCTAssertTrue(bitIdentical(snapshot(a.stages.flatMap(\.parameters)), snapshot(b.stages.flatMap(\.parameters))))
    }

    func testDivergenceNamesStageEpochAndStepAndAppliesNothing() throws {
        var f = TwoStageFixture(learningRate: 1e30, momentum: 0, steps: 10, stepsPerEpoch: 5, stage2: false)
        // No ReLU: a huge step must not simply kill every unit (which would freeze the loss
        // at the margin instead of diverging).
        f.stages[0].layers = [conv(3, 8, 4), pool(2)]
        let trainer = try f.trainer()
        let dir = try temporaryDirectory()
        trainer.checkpointDirectory = dir
        trainer.checkpointEvery = 1
        trainer.keepCheckpoints = 100
        var lastGood: [Tensor] = []
        var steps = 0
        XCTAssertThrowsError(
            try trainer.pretrain { e in
                if case .step = e { lastGood = snapshot(f.stages[0].parameters); steps += 1 }
            }
        ) { error in
            guard case let TrainerError.nonFinite(stage, epoch, step, what) = error else {
                return XCTFail("expected nonFinite, got \(error)")
            }
            XCTAssertEqual(stage, 1)
            XCTAssertEqual(step, steps + 1)
            XCTAssertEqual(epoch, steps / 5 + 1)
            XCTAssertFalse(what.isEmpty)
            XCTAssertTrue("\(error)".contains("stage 1, epoch \(epoch), step \(step)"), "\(error)")
        }
        XCTAssertGreaterThan(steps, 0, "a 1e30 learning rate should survive one step and then diverge")
        // The failing update was not applied …
        XCTAssertTrue(bitIdentical(lastGood, snapshot(f.stages[0].parameters)))
        // … and the last good checkpoint is intact and loadable.
        let latest = try XCTUnwrap(trainer.latestCheckpoint(mode: .layerwise))
        XCTAssertTrue(latest.hasSuffix("layerwise-stage1-step\(String(format: "%09d", steps)).safetensors"), latest)
        var fresh = TwoStageFixture(seed: 5, stage2: false)
        fresh.stages[0].layers = [conv(3, 8, 4, seed: 5), pool(2)]
        let other = try fresh.trainer()
        try other.loadWeights(from: latest)
        XCTAssertTrue(bitIdentical(lastGood, snapshot(other.stages[0].parameters)))
    }

    func testEndToEndTrainsAllStagesOnTheLargestPatch() throws {
        let f = TwoStageFixture(steps: 20, stepsPerEpoch: 10)
        let trainer = try f.trainer()
        let before = snapshot(f.stages.flatMap(\.parameters))
        var started: [TrainingEvent] = []
        let report = try trainer.pretrainEndToEnd { e in if case .stageStarted = e { started.append(e) } }
        XCTAssertEqual(started, [.stageStarted(stage: 0, patchSize: 9)])
        XCTAssertEqual(report.mode, .endToEnd)
        XCTAssertEqual(report.stages.count, 1)
        XCTAssertEqual(report.stages[0].patchSize, 9)
        XCTAssertEqual(report.stages[0].steps, 20)
        XCTAssertTrue(report.finalLoss!.isFinite)
        let after = snapshot(f.stages.flatMap(\.parameters))
        for (b, a) in zip(before, after) { XCTAssertFalse(b.isBitIdentical(to: a), "every stage trains end to end") }
    }

    func testProjectionHeadTrainsOnlyDuringItsStage() throws {
        var f = TwoStageFixture(steps: 4, stepsPerEpoch: 2)
        let head = linear(8, 4, seed: 3)
        f.stages[0].projectionHead = head
        let trainer = try f.trainer()
        let headBefore = snapshot(head.parameters)
        var headAtStage2: [Tensor] = []
        try trainer.pretrain { e in if case .stageStarted(stage: 2, _) = e { headAtStage2 = snapshot(head.parameters) }
        }
        XCTAssertFalse(bitIdentical(headBefore, headAtStage2), "the head trains with stage 1")
        XCTAssertTrue(bitIdentical(headAtStage2, snapshot(head.parameters)), "the head is unused afterwards")
        XCTAssertEqual(
            trainer.namedState().map(\.name),
            [
                "stage1.0.weight", "stage1.0.bias", "stage1.3.running_mean", "stage1.head.weight", "stage1.head.bias",
                "stage2.0.weight", "stage2.0.bias",
            ])
        XCTAssertEqual(
            trainer.stateTensors().keys.sorted(),
            ["stage1.0.bias", "stage1.0.weight", "stage1.3.running_mean", "stage2.0.bias", "stage2.0.weight"])
    }

    func testHeadThatDoesNotFitIsRejected() throws {
        var f = TwoStageFixture(stage2: false)
        f.stages[0].projectionHead = linear(7, 4, seed: 3)
        XCTAssertThrowsError(try f.trainer()) { error in
            guard case let TrainerError.incompatibleStage(stage, layer, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(stage, 1)
            XCTAssertEqual(layer, "projectionHead")
        }
    }

    // MARK: - Configuration errors

    func testInvalidOptionsAreNamed() throws {
        func option(_ make: (inout TwoStageFixture) -> Void) -> (Int?, String)? {
            var f = TwoStageFixture(steps: 2, stepsPerEpoch: 1)
            make(&f)
            do {
                _ = try f.trainer()
                return nil
            } catch let TrainerError.invalidOption(stage, option, _, _) {
                return (stage, option)
            } catch {
                XCTFail("unexpected \(error)")
                return nil
            }
        }
        XCTAssertTrue(option { $0.stages[1].batchSize = 0 }! == (2, "batchSize"))
        XCTAssertTrue(option { $0.optimizers[0].learningRate = -1 }! == (1, "optimizer.learningRate"))
        XCTAssertTrue(option { $0.stages[0].schedule = ConstantSchedule(-0.1) }! == (1, "schedule"))
        XCTAssertTrue(option { $0.stages[0].budget = .steps(0) }! == (1, "budget"))
        XCTAssertTrue(option { $0.stages[1].layers = [] }! == (2, "layers"))
        let margin = option { f in
            f.stages[1].objective = ContrastiveObjective(
                sampler: neighborSampler(f.data), loss: TripletMarginLoss(distance: CosineDistance(), margin: -1))
        }
        XCTAssertTrue(margin! == (2, "loss.margin"))
        XCTAssertThrowsError(try LayerwiseTrainer(stages: [], inputChannels: 3, firstPatchSize: 5, seed: 1))
        let f = TwoStageFixture()
        XCTAssertThrowsError(try LayerwiseTrainer(stages: f.stages, inputChannels: 1, firstPatchSize: 5, seed: 1)) {
            error in
            // The sampler delivers 3 channels.
            guard case let TrainerError.invalidOption(_, option, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(option, "objective.inputChannels")
        }
    }
}
