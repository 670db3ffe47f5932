import Foundation
import Layerwise
import XCTest

final class TransferTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    let shape = ImageShape(channels: 3, height: 16, width: 16)

    /// Pretrained weights of the two-stage fixture after a short layer-wise run.
    func pretrainedWeights() throws -> [String: Tensor] {
        let f = TwoStageFixture(steps: 6, stepsPerEpoch: 3)
        let t = try f.trainer()
        try t.pretrain()
        return t.stateTensors()
    }

    /// Fresh layers of the fixture's architecture (different initial weights).
    func freshStages(seed: UInt64) -> [[any Layer]] { TwoStageFixture(seed: seed).stages.map(\.layers) }

    /// 16 → conv4 → 13 → pool2 → 6 → conv2 → 5 → pool2 → 2: [N, 8, 2, 2] → 2 classes.
    func head(seed: UInt64 = 4) -> [any Layer] { [Flatten(), linear(32, 2, seed: seed)] }

    func configuration(epochs: Int = 2, learningRate: Float = 0.05, seed: UInt64 = 3) throws -> ClassifierConfiguration
    {
        ClassifierConfiguration(
            epochs: epochs, batchSize: 16, optimizer: SGD(learningRate: learningRate, momentum: 0.9),
            schedule: StepDecaySchedule(initial: learningRate, factor: 0.1, milestones: [0.75]),
            augmentation: try ClassifierConfiguration.standardAugmentation(imageSize: 16), seed: seed)
    }

    func values(_ stages: [[any Layer]]) -> [Tensor] {
        stages.flatMap { $0.flatMap { $0.parameters + $0.buffers } }.map(\.value)
    }

    func testFrozenStagesStayBitIdenticalWhileTheHeadTrains() throws {
        let weights = try pretrainedWeights()
        let stages = freshStages(seed: 5)
        let h = head()
        let classifier = try TransferClassifier(
            stages: stages, mode: .frozen, head: h, inputShape: shape, pretrained: weights, seed: 1)
        // Loaded: every stage tensor equals the pretrained one.
        for (name, p) in classifier.namedState where name.hasPrefix("stage") {
            XCTAssertTrue(p.value.isBitIdentical(to: weights[name]!), name)
        }
        XCTAssertEqual(classifier.trainableParameters.map(\.name), ["head.1.weight", "head.1.bias"])
        let before = values(stages), headBefore = snapshot(h.flatMap(\.parameters))
        let trainer = try ClassifierTrainer(classifier: classifier, configuration: configuration())
        let report = try trainer.train(
            on: SyntheticImages(count: 48, seed: 11), validation: SyntheticImages(count: 24, seed: 12))
        XCTAssertTrue(bitIdentical(before, values(stages)), "a frozen stage (or its running statistics) changed")
        XCTAssertFalse(bitIdentical(headBefore, snapshot(h.flatMap(\.parameters))), "the head did not train")
        XCTAssertEqual(report.epochs.count, 2)
        XCTAssertNotNil(report.finalValidationAccuracy)
    }

    func testFineTunedStagesStartPretrainedAndChange() throws {
        let weights = try pretrainedWeights()
        let stages = freshStages(seed: 5)
        let classifier = try TransferClassifier(
            stages: stages, mode: .fineTuned, head: head(), inputShape: shape, pretrained: weights, seed: 1)
        let start = values(stages)
        XCTAssertTrue(
            bitIdentical(
                start,
                stages.flatMap { $0.flatMap { $0.parameters + $0.buffers } }.map {
                    weights[name(of: $0, in: classifier)]!
                }))
        XCTAssertEqual(classifier.trainableParameters.count, 4 + 2)
        try ClassifierTrainer(classifier: classifier, configuration: configuration(epochs: 1)).train(
            on: SyntheticImages(count: 32, seed: 11))
        let after = values(stages)
        // Every trained tensor changed (the custom running-mean buffer too: training mode).
        for (a, b) in zip(start, after) { XCTAssertFalse(a.isBitIdentical(to: b)) }
    }

    func name(of p: Parameter, in classifier: TransferClassifier) -> String {
        classifier.namedState.first { $0.parameter === p }!.name
    }

    func testScratchStagesAreReinitialisedDeterministically() throws {
        let weights = try pretrainedWeights()
        let a = freshStages(seed: 5), b = freshStages(seed: 6)
        let original = values(a)
        _ = try TransferClassifier(
            stages: a, mode: .scratch, head: head(), inputShape: shape, pretrained: weights, seed: 9)
        _ = try TransferClassifier(
            stages: b, mode: .scratch, head: head(), inputShape: shape, pretrained: weights, seed: 9)
        XCTAssertTrue(bitIdentical(values(a), values(b)), "same seed, same re-initialisation")
        XCTAssertFalse(bitIdentical(values(a), original))
        let conv1 = a[0][0] as! Conv2D
        XCTAssertFalse(
            conv1.weight.value.isBitIdentical(to: weights["stage1.0.weight"]!), "scratch ignores pretrained weights")
        XCTAssertTrue(conv1.bias!.value.scalars.allSatisfy { $0 == 0 })
        // Kaiming-uniform bound √(6 / fanIn), fanIn = 3·4·4.
        let bound = (6 / Float(48)).squareRoot()
        XCTAssertTrue(conv1.weight.value.scalars.allSatisfy { abs($0) <= bound })
        let c = try TransferClassifier(
            stages: freshStages(seed: 5), mode: .scratch, head: head(), inputShape: shape, seed: 10)
        XCTAssertFalse(bitIdentical(values(a), values(c.stages)), "another seed, other weights")
    }

    func testMixedModesAndErrors() throws {
        let weights = try pretrainedWeights()
        let stages = freshStages(seed: 5)
        let classifier = try TransferClassifier(
            stages: stages, modes: [.frozen, .fineTuned], head: head(), inputShape: shape, pretrained: weights, seed: 1)
        XCTAssertEqual(
            classifier.trainableParameters.map(\.name),
            ["stage2.0.weight", "stage2.0.bias", "head.1.weight", "head.1.bias"])
        XCTAssertEqual(classifier.classCount, 2)

        func option(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let TrainerError.invalidOption(_, option, _, _) { return option } catch
            {
                return "\(error)"
            }
        }
        XCTAssertEqual(
            option {
                _ = try TransferClassifier(
                    stages: self.freshStages(seed: 1), modes: [.fineTuned, .frozen], head: self.head(),
                    inputShape: self.shape, seed: 1)
            }, "modes")
        XCTAssertEqual(
            option {
                _ = try TransferClassifier(
                    stages: self.freshStages(seed: 1), modes: [.frozen, .frozen, .frozen], head: self.head(),
                    inputShape: self.shape, seed: 1)
            }, "modes")
        XCTAssertEqual(
            option {
                _ = try TransferClassifier(
                    stages: self.freshStages(seed: 1), mode: .frozen, head: [ReLU()], inputShape: self.shape, seed: 1)
            }, "head")
        var missing = weights
        missing["stage2.0.bias"] = nil
        XCTAssertThrowsError(
            try TransferClassifier(
                stages: freshStages(seed: 1), mode: .fineTuned, head: head(), inputShape: shape, pretrained: missing,
                seed: 1)
        ) {
            guard case let TrainerError.checkpoint(_, reason) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("stage2.0.bias"), reason)
        }
        // A head that does not fit the stage output.
        XCTAssertThrowsError(
            try TransferClassifier(
                stages: freshStages(seed: 1), mode: .frozen, head: [Flatten(), linear(30, 2)], inputShape: shape,
                seed: 1)
        ) {
            guard case TrainerError.incompatibleStage(stage: 3, _, _) = $0 else { return XCTFail("\($0)") }
        }
        // Images of another size.
        let trainer = try ClassifierTrainer(classifier: classifier, configuration: configuration())
        XCTAssertEqual(option { try trainer.train(on: SyntheticImages(count: 4, size: 12, seed: 1)) }, "training data")
        XCTAssertEqual(
            option {
                var c = try self.configuration()
                c.batchSize = 0
                _ = try ClassifierTrainer(classifier: classifier, configuration: c)
            }, "batchSize")
    }

    func testClassifierLearnsTheSyntheticTaskAndReportsPerEpoch() throws {
        let classifier = try TransferClassifier(
            stages: freshStages(seed: 5), mode: .scratch, head: head(), inputShape: shape, seed: 2)
        var stepEvents = 0
        var epochEvents: [EpochRecord] = []
        let trainer = try ClassifierTrainer(
            classifier: classifier, configuration: configuration(epochs: 4, learningRate: 0.05))
        let report = try trainer.train(
            on: SyntheticImages(count: 96, seed: 21), validation: SyntheticImages(count: 64, seed: 22)
        ) { e in
            switch e {
            case .step: stepEvents += 1
            case let .epochEnded(r): epochEvents.append(r)
            }
        }
        XCTAssertEqual(stepEvents, 4 * 6)
        XCTAssertEqual(epochEvents, report.epochs)
        XCTAssertEqual(report.epochs.map(\.epoch), [1, 2, 3, 4])
        XCTAssertEqual(
            report.epochs.last?.learningRate ?? 0, 0.005, accuracy: 1e-7, "step decay after 3/4 of the steps")
        for r in report.epochs { XCTAssertGreaterThan(r.seconds, 0) }
        XCTAssertLessThan(report.epochs.last!.trainingLoss, report.epochs.first!.trainingLoss)
        let accuracy = try XCTUnwrap(report.finalValidationAccuracy)
        XCTAssertGreaterThan(accuracy, 0.75, "stripe orientation is an easy task: \(report.epochs)")
        // Evaluation agrees with the report.
        let m = try Evaluation.evaluate(classifier, on: SyntheticImages(count: 64, seed: 22))
        XCTAssertEqual(m.accuracy, accuracy)
        XCTAssertEqual(m.confusion.flatMap { $0 }.reduce(0, +), 64)
    }

    func testSameSeedSameClassifierRun() throws {
        func run() throws -> (ClassifierReport, [Tensor]) {
            let c = try TransferClassifier(
                stages: freshStages(seed: 5), mode: .scratch, head: head(), inputShape: shape, seed: 2)
            let r = try ClassifierTrainer(classifier: c, configuration: configuration(epochs: 1)).train(
                on: SyntheticImages(count: 32, seed: 21))
            return (r, c.namedState.map(\.parameter.value))
        }
        let (a, wa) = try run(), (b, wb) = try run()
        XCTAssertEqual(a.epochs.map(\.trainingLoss), b.epochs.map(\.trainingLoss))
        XCTAssertTrue(bitIdentical(wa, wb))
    }

    func testSupervisedPretrainingProducesTransferableWeights() throws {
        let stages = freshStages(seed: 5)
        let before = values(stages)
        let (weights, report) = try SupervisedPretraining.run(
            stages: stages, head: head(), data: SyntheticImages(count: 48, seed: 31),
            configuration: configuration(epochs: 2))
        XCTAssertEqual(report.epochs.count, 2)
        XCTAssertEqual(
            weights.keys.sorted(),
            ["stage1.0.bias", "stage1.0.weight", "stage1.3.running_mean", "stage2.0.bias", "stage2.0.weight"])
        XCTAssertFalse(bitIdentical(before, values(stages)))
        // Loads into a new classifier with a new head, frozen.
        let target = freshStages(seed: 8)
        _ = try TransferClassifier(
            stages: target, mode: .frozen, head: head(seed: 9), inputShape: shape, pretrained: weights, seed: 1)
        XCTAssertTrue(bitIdentical(values(stages), values(target)))
    }

    /// A classifier with a frozen first stage makes stage 2's conv skip its input
    /// gradient; a later classifier fine-tuning both stages must train stage 1 again.
    func testInputGradientFlagsDoNotLeakBetweenClassifiers() throws {
        let stages = freshStages(seed: 5)
        _ = try TransferClassifier(
            stages: stages, modes: [.frozen, .fineTuned], head: head(), inputShape: shape, seed: 1)
        XCTAssertFalse((stages[1][0] as! Conv2D).needsInputGradient)
        let both = try TransferClassifier(stages: stages, mode: .fineTuned, head: head(), inputShape: shape, seed: 1)
        XCTAssertTrue((stages[1][0] as! Conv2D).needsInputGradient)
        XCTAssertFalse((stages[0][0] as! Conv2D).needsInputGradient)
        let stage1 = snapshot(stages[0].flatMap(\.parameters))
        try ClassifierTrainer(classifier: both, configuration: configuration(epochs: 1)).train(
            on: SyntheticImages(count: 32, seed: 11))
        XCTAssertFalse(bitIdentical(stage1, snapshot(stages[0].flatMap(\.parameters))))
    }

    func testDivergingClassifierNamesEpochAndStep() throws {
        let classifier = try TransferClassifier(
            stages: freshStages(seed: 5), mode: .scratch, head: head(), inputShape: shape, seed: 2)
        let trainer = try ClassifierTrainer(
            classifier: classifier, configuration: configuration(epochs: 3, learningRate: 1e30))
        XCTAssertThrowsError(try trainer.train(on: SyntheticImages(count: 32, seed: 21))) { error in
            guard case let TrainerError.nonFinite(stage, epoch, step, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(stage, 0)
            XCTAssertGreaterThanOrEqual(epoch, 1)
            XCTAssertGreaterThanOrEqual(step, 1)
        }
    }
}
