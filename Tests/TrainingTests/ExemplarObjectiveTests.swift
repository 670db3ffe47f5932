import Foundation
import Layerwise
import LayerwiseTestSupport
import XCTest

final class ExemplarObjectiveTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    let data = SyntheticImages(count: 24, seed: 99)

    /// Mild Exemplar-CNN distortions: rotation (edge fill), flip, brightness, noise.
    func distortion() throws -> any Augmentation {
        Compose([
            try RandomRotation(maxDegrees: 20, fill: .edge), try HorizontalFlip(),
            try ColorJitter(brightness: 0.1), try GaussianNoise(standardDeviation: 0.02),
        ])
    }

    func surrogates(
        classes: Int = 8, seedPatchSize: Int = 7, seed: UInt64 = 5, dataset: (any ImageDataset)? = nil
    ) throws
        -> SurrogateClassDataset
    {
        var g = SeededGenerator(seed: seed)
        let images = dataset ?? data
        return try SurrogateClassDataset(
            dataset: images, classCount: classes, seedPatchSize: seedPatchSize, augmentation: try distortion(),
            normalization: ChannelNormalization.fit(images), using: &g)
    }

    /// One stage conv 4x4 (3→8) → max-pool 2 → ReLU on 5x5 patches (D = 8), trained by
    /// surrogate classification.
    func exemplarStage(
        objective: ExemplarObjective, seed: UInt64 = 1, steps: Int = 40, stepsPerEpoch: Int = 10, batchSize: Int = 16
    ) -> Stage {
        Stage(
            layers: [conv(3, 8, 4, seed: seed), pool(2), ReLU()], objective: objective,
            optimizer: SGD(learningRate: 0.05, momentum: 0.9), schedule: ConstantSchedule(0.05), batchSize: batchSize,
            budget: .epochs(steps / stepsPerEpoch, stepsPerEpoch: stepsPerEpoch))
    }

    func testLossFallsAndTheClassifierIsAuxiliaryState() throws {
        let objective = ExemplarObjective(surrogates: try surrogates(), copiesPerClass: 2)
        XCTAssertEqual(objective.classes(forBatchSize: 16), 8)
        let stage = exemplarStage(objective: objective)
        let before = snapshot(stage.parameters)
        let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 5, seed: 3)
        var steps: [StepEvent] = []
        let report = try trainer.pretrain { if case let .step(e) = $0 { steps.append(e) } }

        // The classifier was built for D = 8 embeddings and N = 8 classes, outside the stage.
        XCTAssertEqual(objective.auxiliaryParameters.map(\.value.shape), [[8, 8], [8]])
        XCTAssertEqual(objective.auxiliaryParameters.map(\.name), ["classifier.weight", "classifier.bias"])
        XCTAssertEqual(objective.classifier?.inputFeatures, 8)
        XCTAssertFalse(trainer.stateTensors().keys.contains { $0.contains("objective") || $0.contains("classifier") })
        XCTAssertFalse(bitIdentical(before, snapshot(stage.parameters)), "the stage did not train")

        // Starts no better than chance (ln 8 ≈ 2.08) and falls.
        let losses = report.stages[0].epochLosses
        XCTAssertEqual(steps.count, 40)
        XCTAssertGreaterThan(steps[0].loss, 0.8 * log(8))
        XCTAssertLessThanOrEqual(steps[0].accuracy!, 0.25)
        XCTAssertLessThan(losses.last!, losses.first! * 0.7, "surrogate loss did not fall: \(losses)")
        let accuracies = steps.compactMap(\.accuracy)
        XCTAssertEqual(accuracies.count, 40)
        let lastEpochAccuracy = accuracies.suffix(10).reduce(0, +) / 10
        XCTAssertGreaterThan(lastEpochAccuracy, 0.4, "chance is 1/8; accuracies \(accuracies)")
        // Every step processed 8 classes × 2 copies.
        XCTAssertGreaterThan(steps.last!.samplesPerSecond, 0)
        XCTAssertEqual(steps.last!.sampleUnit, "img", "exemplar steps count images, not triplets")
    }

    func testGradientMatchesFiniteDifferencesThroughClassifierAndStage() throws {
        // conv 5x5 (3→4) on 5x5 patches → [rows, 4, 1, 1]; no pooling or ReLU kinks.
        let layer = conv(3, 4, 5, seed: 2)
        let objective = ExemplarObjective(surrogates: try surrogates(classes: 3), copiesPerClass: 2)
        var g = SeededGenerator(seed: 11)
        try objective.prepare(embeddingFeatures: 4, using: &g)
        let context = StageStepContext(
            stage: 1, patchSize: 5, batchSize: 6, frozen: FrozenStack(layers: []),
            trainable: TrainableBlock(layers: [layer], head: nil))
        let parameters = layer.parameters + objective.auxiliaryParameters
        let start = g
        for p in parameters { p.zeroGradient() }
        var g1 = start
        _ = try objective.step(context, using: &g1)
        let analytic = parameters.map(\.gradient)
        var reports: [GradientCheck.Report] = []
        for (p, a) in zip(parameters, analytic) {
            let saved = p.value
            let numeric = try GradientCheck.numericGradient(at: saved) { v in
                p.value = v
                var gc = start
                return Double(try objective.step(context, using: &gc).loss)
            }
            p.value = saved
            reports.append(GradientCheck.compare(analytic: a, numeric: numeric, label: p.name))
        }
        let report = GradientCheck.worst(reports)
        XCTAssertTrue(report.passes(tolerance: 2e-2), "\(report)")
        XCTAssertEqual(report.checked, 4 * 3 * 25 + 4 + 3 * 4 + 3)
    }

    func testSelectablePerStageBesideTheTripletLoss() throws {
        // Stage 1 contrastive (triplets), stage 2 surrogate classes on 9x9 patches.
        let exemplar = ExemplarObjective(surrogates: try surrogates(classes: 6, seedPatchSize: 12), copiesPerClass: 3)
        let stages = [
            Stage(
                layers: [conv(3, 8, 4, seed: 1), pool(2), ReLU()],
                objective: ContrastiveObjective(
                    sampler: neighborSampler(data), loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5)),
                optimizer: SGD(learningRate: 0.01, momentum: 0.9), schedule: ConstantSchedule(0.01), batchSize: 8,
                budget: .steps(5)),
            Stage(
                layers: [conv(8, 8, 2, seed: 2), pool(2)], objective: exemplar,
                optimizer: SGD(learningRate: 0.05, momentum: 0.9), schedule: ConstantSchedule(0.05), batchSize: 18,
                budget: .epochs(3, stepsPerEpoch: 10)),
        ]
        let trainer = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: 5, seed: 4)
        XCTAssertEqual(trainer.patchSizes, [5, 9])
        var stage1AtStage2: [Tensor]?
        let report = try trainer.pretrain { e in
            if case .stageStarted(stage: 2, _) = e { stage1AtStage2 = snapshot(stages[0].parameters) }
        }
        XCTAssertTrue(
            bitIdentical(try XCTUnwrap(stage1AtStage2), snapshot(stages[0].parameters)), "stage 1 moved in stage 2")
        XCTAssertEqual(exemplar.classifier?.inputFeatures, 8)
        XCTAssertEqual(exemplar.classifier?.outputFeatures, 6)
        let s2 = report.stages[1]
        XCTAssertEqual(s2.patchSize, 9)
        XCTAssertLessThan(s2.epochLosses.last!, s2.epochLosses.first!, "\(s2.epochLosses)")
    }

    func testEndToEndTrainingUsesTheTopStagesObjectiveOnTheWholeStack() throws {
        let exemplar = ExemplarObjective(surrogates: try surrogates(classes: 5, seedPatchSize: 10), copiesPerClass: 2)
        let stages = [
            Stage(
                layers: [conv(3, 8, 4, seed: 1), pool(2), ReLU()],
                objective: ContrastiveObjective(sampler: neighborSampler(data), loss: TripletMarginLoss()),
                optimizer: SGD(learningRate: 0.01), schedule: ConstantSchedule(0.01), batchSize: 4, budget: .steps(1)),
            Stage(
                layers: [conv(8, 8, 2, seed: 2), pool(2)], objective: exemplar,
                optimizer: SGD(learningRate: 0.05, momentum: 0.9), schedule: ConstantSchedule(0.05), batchSize: 10,
                budget: .epochs(3, stepsPerEpoch: 8)),
        ]
        let trainer = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: 5, seed: 2)
        let before = snapshot(stages[0].parameters)
        let report = try trainer.pretrainEndToEnd()
        XCTAssertEqual(report.stages.map(\.patchSize), [9])
        XCTAssertEqual(exemplar.classifier?.inputFeatures, 8)
        XCTAssertFalse(bitIdentical(before, snapshot(stages[0].parameters)), "end to end, stage 1 trains too")
        let losses = report.stages[0].epochLosses
        XCTAssertLessThan(losses.last!, losses.first!, "\(losses)")
    }

    func testTrainedStageTransfersLikeAnyOther() throws {
        let objective = ExemplarObjective(surrogates: try surrogates(), copiesPerClass: 2)
        let stage = exemplarStage(objective: objective, steps: 20)
        let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 5, seed: 3)
        try trainer.pretrain()

        // Features of whole images, through the trainer's extractor.
        let images = data.batch(Array(0..<4))
        let features = trainer.featureExtractor(throughStage: 1)(images)
        XCTAssertEqual(features.shape, [4, 8, 6, 6])
        XCTAssertTrue(features.isFinite)

        // A frozen transfer classifier on fresh layers, loaded from the pretrained weights.
        let fresh: [any Layer] = [conv(3, 8, 4, seed: 42), pool(2), ReLU()]
        let classifier = try TransferClassifier(
            stages: [fresh], mode: .frozen, head: [Flatten(), linear(8 * 6 * 6, 2, seed: 3)],
            inputShape: data.imageShape, pretrained: trainer.stateTensors(), seed: 1)
        XCTAssertTrue(bitIdentical(snapshot(fresh.flatMap(\.parameters)), snapshot(stage.parameters)))
        XCTAssertTrue(FeatureExtractor(layers: fresh)(images).isBitIdentical(to: features))
        let trainerRun = try ClassifierTrainer(
            classifier: classifier,
            configuration: ClassifierConfiguration(
                epochs: 4, batchSize: 8, optimizer: SGD(learningRate: 0.005, momentum: 0.9),
                schedule: ConstantSchedule(0.005), normalization: ChannelNormalization.fit(data), seed: 1))
        let result = try trainerRun.train(on: data)
        XCTAssertEqual(result.epochs.count, 4)
        XCTAssertLessThan(result.epochs.last!.trainingLoss, result.epochs.first!.trainingLoss, "\(result.epochs)")
        // Frozen: the transferred stage did not move.
        XCTAssertTrue(bitIdentical(snapshot(fresh.flatMap(\.parameters)), snapshot(stage.parameters)))
    }

    func testResumeRestoresTheClassifierAndEqualsTheUninterruptedRun() throws {
        func make(seed: UInt64) throws -> Stage {
            exemplarStage(
                objective: ExemplarObjective(surrogates: try surrogates(), copiesPerClass: 2), seed: seed, steps: 12,
                stepsPerEpoch: 4)
        }
        let fullStage = try make(seed: 1)
        let full = try LayerwiseTrainer(stages: [fullStage], inputChannels: 3, firstPatchSize: 5, seed: 3)
        try full.pretrain()

        let dir = try temporaryDirectory()
        let first = try LayerwiseTrainer(stages: [try make(seed: 1)], inputChannels: 3, firstPatchSize: 5, seed: 3)
        first.checkpointDirectory = dir
        first.checkpointEvery = 4
        XCTAssertThrowsError(try first.pretrain { e in if case let .step(s) = e, s.step == 6 { first.requestStop() } })
        let resumedStage = try make(seed: 2)
        let resumed = try LayerwiseTrainer(stages: [resumedStage], inputChannels: 3, firstPatchSize: 5, seed: 8)
        resumed.checkpointDirectory = dir
        try resumed.pretrain(resume: true)
        XCTAssertTrue(bitIdentical(snapshot(fullStage.parameters), snapshot(resumedStage.parameters)))
        XCTAssertTrue(
            bitIdentical(
                snapshot(fullStage.objective.auxiliaryParameters), snapshot(resumedStage.objective.auxiliaryParameters))
        )
    }

    func testInvalidOptionsAreNamedBeforeTraining() throws {
        func trainerError(_ objective: ExemplarObjective, inputChannels: Int = 3) -> TrainerError? {
            do {
                _ = try LayerwiseTrainer(
                    stages: [exemplarStage(objective: objective)], inputChannels: inputChannels, firstPatchSize: 5,
                    seed: 1)
                return nil
            } catch { return error as? TrainerError }
        }
        let s = try surrogates()
        guard
            case let .invalidOption(stage, option, _, reason)? = trainerError(
                ExemplarObjective(surrogates: s, copiesPerClass: 0))
        else { return XCTFail("copiesPerClass 0 accepted") }
        XCTAssertEqual(stage, 1)
        XCTAssertEqual(option, "objective")
        XCTAssertTrue(reason.contains("copiesPerClass"), reason)
        guard
            case let .invalidOption(_, _, _, reason2)? = trainerError(
                ExemplarObjective(surrogates: s, classesPerStep: 9))
        else { return XCTFail("classesPerStep 9 > 8 classes accepted") }
        XCTAssertTrue(reason2.contains("classesPerStep") && reason2.contains("1...8"), reason2)
        // One-channel surrogates for a three-channel stack.
        let gray = SyntheticImages(count: 6, channels: 1, seed: 1)
        guard
            case let .invalidOption(_, option3, _, _)? = trainerError(
                ExemplarObjective(surrogates: try surrogates(dataset: gray)))
        else { return XCTFail("channel mismatch accepted") }
        XCTAssertEqual(option3, "objective.inputChannels")
    }

    func testRuntimeErrorsAreTyped() throws {
        // Seed regions smaller than the stage's patch: a SamplerError on the first step.
        let small = ExemplarObjective(surrogates: try surrogates(seedPatchSize: 4))
        let trainer = try LayerwiseTrainer(
            stages: [exemplarStage(objective: small)], inputChannels: 3, firstPatchSize: 5, seed: 1)
        XCTAssertThrowsError(try trainer.pretrain()) { error in
            guard case let .invalidOption(name, value, _)? = error as? SamplerError else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "patchSize")
            XCTAssertEqual(value, "5")
        }

        // A step before prepare names the missing classifier.
        let unprepared = ExemplarObjective(surrogates: try surrogates())
        var g = SeededGenerator(seed: 1)
        let context = StageStepContext(
            stage: 1, patchSize: 5, batchSize: 4, frozen: FrozenStack(layers: []),
            trainable: TrainableBlock(layers: [conv(3, 8, 5)], head: nil))
        XCTAssertThrowsError(try unprepared.step(context, using: &g)) { error in
            guard case .invalidOption(stage: 1, option: "objective", _, _)? = error as? TrainerError else {
                return XCTFail("\(error)")
            }
        }
        // Prepared for another width: named, not a crash.
        try unprepared.prepare(embeddingFeatures: 5, using: &g)
        XCTAssertThrowsError(try unprepared.step(context, using: &g)) { error in
            guard case .incompatibleStage(stage: 1, _, _)? = error as? TrainerError else { return XCTFail("\(error)") }
        }

        // Divergence: NaN weights make the embeddings non-finite; nothing is applied.
        let objective = ExemplarObjective(surrogates: try surrogates())
        let stage = exemplarStage(objective: objective)
        stage.layers[0].parameters[0].value[flat: 0] = .nan
        let diverging = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 5, seed: 1)
        XCTAssertThrowsError(try diverging.pretrain()) { error in
            guard case .nonFinite(stage: 1, epoch: 1, step: 1, _)? = error as? TrainerError else {
                return XCTFail("\(error)")
            }
        }
    }
}
