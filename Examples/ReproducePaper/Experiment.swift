import Foundation
import Layerwise

/// The whole experiment: pretraining, transfer arms, linear probes, figures, results.
struct Experiment {
    var budget: Budget
    var recipe: Recipe
    var layers: Int
    var out: String
    var seed: UInt64
    var resume: Bool
    var pretrainOnly: Bool
    var probeOnly: Bool
    var skipSupervised: Bool = false
    var kmeansArms: Bool
    /// Arms to train (nil = the paper's arms plus the k-means arms when ``kmeansArms``).
    var selectedArms: [TransferArm]? = nil
    var threads: Int
    var commandLine: String
    /// The ranks of an MPI job (one process without a launcher): pretraining, the k-means
    /// baseline and the linear probes split their work; only rank 0 writes files.
    var communicator: any Communicator = SingleProcessCommunicator()
    /// Shards of every pretraining batch (nil: one per rank).
    var shards: Int? = nil
    /// SIGINT/SIGTERM handling from the start of the run until layer-wise pretraining ends
    /// (a signal before pretraining stops it after its first step, with a checkpoint).
    var signals: SignalStop? = nil

    var isRoot: Bool { communicator.isRoot }

    // MARK: - Layers

    /// Pretraining stage `k` (1-based): the paper's encoder, conv → max-pool 2 → ReLU; with
    /// a whitening, stage 1's conv sees ZCA-whitened windows.
    func pretrainingStageLayers(
        _ k: Int, whitening: ZCAWhitening?, kmeans: KMeansBaseline?, using g: inout SeededGenerator
    ) throws -> [any Layer] {
        if k == 1 {
            let conv: any Layer =
                if let whitening {
                    // U(±1/√fanIn) in whitened space, the `--init random` start; the default
                    // recipe replaces it below with the k-means filters. It is drawn even when
                    // replaced, so every variant gives stage 2 the same initial weights.
                    try initialize(
                        WhitenedConv2D(
                            inputChannels: 3, outputChannels: budget.conv1Filters, kernelSize: 6,
                            whiteningMean: whitening.mean, whiteningMatrix: whitening.matrix,
                            initializer: .fanInUniform, using: &g),
                        from: kmeans)
                } else {
                    try Conv2D(inputChannels: 3, outputChannels: budget.conv1Filters, kernelSize: 6, using: &g)
                }
            return [conv, try MaxPool2D(kernelSize: 2), ReLU()]
        }
        let inputs = budget.conv1Filters
        let conv: any Layer =
            if recipe.upperWhiteningEpsilon != nil {
                // Identity whitening until InputWhitening fits it to stage 1's trained output.
                try WhitenedConv2D(
                    inputChannels: inputs, outputChannels: budget.conv2Filters, kernelSize: 3,
                    initializer: .fanInUniform, using: &g)
            } else {
                try Conv2D(inputChannels: inputs, outputChannels: budget.conv2Filters, kernelSize: 3, using: &g)
            }
        return [conv, try MaxPool2D(kernelSize: 2), ReLU()]
    }

    /// Applies the recipe's stage-1 init to a freshly drawn whitened conv: k-means filters in
    /// its whitened coordinates (`KMeansStart`, applied right away: the stage-1 whitening is
    /// fitted before the trainer is built).
    func initialize(_ layer: WhitenedConv2D, from kmeans: KMeansBaseline?) throws -> WhitenedConv2D {
        let randomNorm = Self.meanRowNorm(layer.weight.value)
        guard recipe.stage1Init != .random else { return layer }
        guard let kmeans else {
            throw ExperimentError.data("--init \(recipe.stage1Init.rawValue) needs the k-means baseline")
        }
        var unused = SeededGenerator(seed: 0)  // KMeansStart draws nothing
        try KMeansStart(baseline: kmeans).prepare(
            stage: 1, layers: [layer], below: FrozenStack(layers: []), using: &unused)
        let kmeansNorm = Self.meanRowNorm(layer.weight.value)
        if recipe.stage1Init == .kmeansMatched {
            try KMeansStart(baseline: kmeans, scale: randomNorm / kmeansNorm)
                .prepare(stage: 1, layers: [layer], below: FrozenStack(layers: []), using: &unused)
        }
        log(
            String(
                format:
                    "stage-1 init %@: k-means filters in whitened coordinates, mean filter norm %.4f (random init "
                    + "%.4f) → %.4f",
                recipe.stage1Init.rawValue, kmeansNorm, randomNorm, Self.meanRowNorm(layer.weight.value)))
        return layer
    }

    /// Mean L2 norm of the rows (filters) of a weight tensor `[O, …]`.
    static func meanRowNorm(_ w: Tensor) -> Float {
        let o = w.shape[0], d = w.count / max(1, o)
        var total: Float = 0
        w.withUnsafeBufferPointer { b in
            for r in 0..<o {
                var s: Float = 0
                for i in 0..<d { s += b[r * d + i] * b[r * d + i] }
                total += s.squareRoot()
            }
        }
        return total / Float(max(1, o))
    }

    /// The paper's classifier at this budget's widths, with `layers` transferred stages.
    func paperClassifier() throws -> PaperClassifier {
        try PaperClassifier(
            conv1Filters: budget.conv1Filters, conv2Filters: budget.conv2Filters, hiddenUnits: budget.hiddenUnits,
            transferredStages: layers)
    }

    // MARK: - Run

    func run(data: DataSources) throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let started = Date()
        let ranks = communicator.size > 1 ? " │ \(communicator.size) MPI ranks" : ""
        log(
            "Layerwise reproduce-paper │ preset \(budget.name) │ recipe \(recipe.name) │ layers \(layers) │ "
                + "threads \(threads)\(ranks)")
        log(
            "pretraining data: \(data.pretrain.count) CIFAR-100 images (\(data.pretrainSource)), labels unused for "
                + "contrastive"
        )
        log("CIFAR-10: \(data.train.count) training images; evaluation: \(data.test.count) images — \(data.testSource)")

        let pretrainNorm = ChannelNormalization.fit(data.pretrain)
        let trainNorm = ChannelNormalization.fit(data.train)
        var results = Results(
            preset: budget.name, recipe: recipe.name, command: commandLine,
            data: .init(
                pretrainImages: data.pretrain.count, trainImages: data.train.count, testImages: data.test.count,
                testSource: data.testSource))

        // The k-means baseline (Coates et al. 2011) first: it can initialise stage 1.
        let kmeans = try fitKMeans(data: data, normalization: pretrainNorm, results: &results)
        if isRoot {
            try SafeTensors.write(
                kmeans.convolutionState(), metadata: ["kind": "kmeans-folded-conv"],
                to: out + "/kmeans_stage1.safetensors")
        }

        // 1. Layer-wise contrastive pretraining.
        let contrastive = try pretrainContrastive(
            data: data, normalization: pretrainNorm, kmeans: kmeans, endToEnd: false, results: &results)
        if isRoot {
            try contrastive.trainer.saveWeights(to: out + "/contrastive_stage\(layers == 1 ? "1" : "s1-2").safetensors")
        }
        if pretrainOnly {
            if isRoot { try results.write(to: out) }
            log("pretraining only: weights in \(out); \(elapsed(since: started))")
            return
        }
        // 2. End-to-end pretraining of the same stages (layer-wise vs end-to-end timing).
        let endToEnd =
            layers == 2
            ? try pretrainContrastive(
                data: data, normalization: pretrainNorm, kmeans: kmeans, endToEnd: true, results: &results)
            : nil
        let contrastiveWeights = PaperClassifier.transferableWeights(of: contrastive.trainer)

        // 3. Supervised pretraining on CIFAR-100 labels.
        let supervisedWeights =
            skipSupervised
            ? [:] : try pretrainSupervised(data: data, normalization: pretrainNorm, results: &results)

        // 4. Linear probes on frozen first-layer (and stage-2) features.
        try linearProbes(
            data: data, normalization: trainNorm, contrastive: contrastive.trainer, endToEnd: endToEnd?.trainer,
            supervised: supervisedWeights, kmeans: kmeans, results: &results)

        if probeOnly || !isRoot {
            // The transfer arms are not distributed: rank 0 trains them alone.
            guard isRoot else { return }
            try writeFigures(
                contrastive: contrastive.trainer, supervised: supervisedWeights, kmeans: kmeans, results: results)
            results.totalSeconds = Date().timeIntervalSince(started)
            try results.write(to: out)
            log("probes only: done in \(elapsed(since: started)); results in \(out)/results.md")
            return
        }

        // 5. Transfer arms.
        let extraArms = kmeansArms && layers == 1 ? TransferArm.kmeansArms : []
        for arm in selectedArms ?? (TransferArm.paperArms + extraArms) {
            let weights: [String: Tensor]? =
                switch arm.source {
                case .kmeans: kmeans.convolutionState()
                case .contrastive: contrastiveWeights
                case .supervised: supervisedWeights
                case nil: nil
                }
            results.arms[arm.rawValue] = try runArm(arm, weights: weights, data: data, normalization: trainNorm)
        }

        // 6. Figures and results.
        try writeFigures(
            contrastive: contrastive.trainer, supervised: supervisedWeights, kmeans: kmeans, results: results)
        results.totalSeconds = Date().timeIntervalSince(started)
        try results.write(to: out)
        log("done in \(elapsed(since: started)); results in \(out)/results.md")
        print(results.markdownTable())
    }

    // MARK: - Pretraining

    struct Pretrained {
        var trainer: LayerwiseTrainer
        var report: PretrainingReport
    }

    func pretrainContrastive(
        data: DataSources, normalization: ChannelNormalization, kmeans: KMeansBaseline?, endToEnd: Bool,
        results: inout Results
    ) throws -> Pretrained {
        var g = SeededGenerator(seed: seed &+ 1000)
        let whitening = try recipe.whiteningEpsilon.map {
            try fitWhitening(data: data, normalization: normalization, epsilon: $0)
        }
        let stepsPerEpoch = max(
            budget.minimumPretrainStepsPerEpoch,
            (data.pretrain.count + budget.pretrainBatchSize - 1) / budget.pretrainBatchSize)
        let stageLayers = try (1...layers).map {
            try pretrainingStageLayers($0, whitening: whitening, kmeans: kmeans, using: &g)
        }
        let patchSizes = try ReceptiveField.patchSizes(
            stages: stageLayers, inputChannels: 3, firstPatchSize: recipe.patchSize)
        var stages: [Stage] = []
        for k in 1...layers {
            let stageLayers = stageLayers[k - 1]
            // End to end, every objective works on the top stage's patch size.
            let patch = endToEnd ? patchSizes[layers - 1] : patchSizes[k - 1]
            let objective = try recipe.makeObjective(
                dataset: data.pretrain, normalization: normalization, patchSize: patch, using: &g)
            stages.append(
                Stage(
                    layers: stageLayers, objective: objective,
                    optimizer: try recipe.optimizer.make(
                        learningRate: recipe.learningRate, weightDecay: recipe.weightDecay),
                    schedule: try recipe.schedule.make(learningRate: recipe.learningRate),
                    batchSize: budget.pretrainBatchSize,
                    budget: .epochs(budget.pretrainEpochs, stepsPerEpoch: stepsPerEpoch),
                    preparation: try k > 1
                        ? recipe.upperWhiteningEpsilon.map {
                            try InputWhitening(
                                dataset: data.pretrain, normalization: normalization, relativeEpsilon: $0)
                        } : nil))
        }
        let trainer = try LayerwiseTrainer(
            stages: stages, inputChannels: 3, firstPatchSize: recipe.patchSize, seed: seed)
        trainer.communicator = communicator
        trainer.sampling = shards.map { ShardedSampling(shards: $0) }
        if !endToEnd {
            trainer.checkpointDirectory = out + "/checkpoints"
            trainer.checkpointEvery = max(1, stepsPerEpoch)
            try FileManager.default.createDirectory(atPath: out + "/checkpoints", withIntermediateDirectories: true)
        }
        log(
            endToEnd
                ? "end-to-end contrastive pretraining of \(layers) stages on "
                    + "\(trainer.patchSizes.last!)x\(trainer.patchSizes.last!) patches"
                : "layer-wise contrastive pretraining: patch sizes "
                    + "\(trainer.patchSizes.map { "\($0)x\($0)" }.joined(separator: ", "))"
        )
        let progress = ProgressLine(width: 150)
        let clock = Date()
        var lossTrace: [(seconds: Double, loss: Float)] = []
        // SIGINT/SIGTERM up to the end of layer-wise pretraining: finish the step, checkpoint,
        // stop (ReproducePaper.run prints how to resume); a second signal exits at once.
        // Afterwards the signals have their default action again.
        if !endToEnd, let signals { trainer.stopRequest = signals.stopRequest }
        defer { if !endToEnd { signals?.cancel() } }
        let report = try (endToEnd ? trainer.pretrainEndToEnd : trainer.pretrain)(resume && !endToEnd) { event in
            if case let .epochEnded(_, _, meanLoss, _) = event {
                lossTrace.append((Date().timeIntervalSince(clock), meanLoss))
            }
            if let line = progress.render(event) { status(line, final: Self.isFinal(event)) }
        }
        if endToEnd {
            let layerwiseTop = results.pretraining["contrastive_stage\(layers)"]?.finalLoss ?? .infinity
            let reached = lossTrace.first { $0.loss <= layerwiseTop }?.seconds
            results.pretraining["contrastive_end_to_end"] = .init(
                seconds: report.totalSeconds, finalLoss: report.finalLoss ?? .nan, secondsToLayerwiseLoss: reached,
                lossPerEpoch: lossTrace.map(\.loss))
        } else {
            for s in report.stages {
                results.pretraining["contrastive_stage\(s.stage)"] = .init(
                    seconds: s.seconds, finalLoss: s.finalLoss, secondsToLayerwiseLoss: nil, lossPerEpoch: s.epochLosses
                )
            }
            results.pretraining["contrastive_layerwise_total"] = .init(
                seconds: report.totalSeconds, finalLoss: report.finalLoss ?? .nan, secondsToLayerwiseLoss: nil,
                lossPerEpoch: [])
        }
        return Pretrained(trainer: trainer, report: report)
    }

    /// ZCA whitening of 6x6 windows of the (normalised) pretraining images.
    func fitWhitening(data: DataSources, normalization: ChannelNormalization, epsilon: Float) throws -> ZCAWhitening {
        var g = SeededGenerator(seed: seed &+ 5000)
        var patches = try PatchExtraction.extractRandomPatches(
            from: data.pretrain, count: min(100_000, data.pretrain.count * 40), size: 6, using: &g)
        // Windows are [C, 6, 6] flattened: normalise each channel block like the images. By
        // division, not `ChannelNormalization.apply` (a multiplication by 1/std): the two
        // differ in the last bit, which changes every whitened result downstream.
        let n = patches.shape[0], plane = 36
        patches.withUnsafeMutableBufferPointer { b in
            for r in 0..<n {
                for c in 0..<3 {
                    for j in 0..<plane {
                        let i = r * 3 * plane + c * plane + j
                        b[i] = (b[i] - normalization.mean[c]) / normalization.std[c]
                    }
                }
            }
        }
        return try ZCAWhitening.fit(patches: patches, epsilon: epsilon)
    }

    static func isFinal(_ event: TrainingEvent) -> Bool {
        if case .step = event { return false }
        return true
    }

    func pretrainSupervised(
        data: DataSources, normalization: ChannelNormalization, results: inout Results
    ) throws -> [String: Tensor] {
        guard let classes = data.pretrain.classCount else { throw ExperimentError.data("CIFAR-100 data has no labels") }
        let (stages, head) = try paperClassifier().layers(classes: classes, seed: seed &+ 2000)
        let config = try PaperClassifier.trainingConfiguration(
            epochs: budget.supervisedEpochs, batchSize: budget.batchSize, normalization: normalization,
            seed: seed &+ 2000)
        log("supervised pretraining on CIFAR-100 labels (\(classes) classes), \(budget.supervisedEpochs) epochs")
        let (weights, report) = try SupervisedPretraining.run(
            stages: stages, head: head, data: data.pretrain, configuration: config,
            events: classifierProgress("supervised"))
        results.pretraining["supervised"] = .init(
            seconds: report.totalSeconds, finalLoss: report.epochs.last?.trainingLoss ?? .nan,
            secondsToLayerwiseLoss: nil,
            lossPerEpoch: report.epochs.map(\.trainingLoss))
        if isRoot {
            try SafeTensors.write(
                weights.filter { $0.key.hasPrefix(StateKey.stagePrefix) }, metadata: ["kind": "supervised-stages"],
                to: out + "/supervised_stages.safetensors")
        }
        return weights
    }

    // MARK: - Arms

    func runArm(
        _ arm: TransferArm, weights: [String: Tensor]?, data: DataSources, normalization: ChannelNormalization
    ) throws -> Results.Arm {
        try trainArm(
            arm.rawValue, seeds: budget.seeds, epochs: budget.epochs, baseSeed: seed, data: data
        ) { armSeed in
            let classifier = try paperClassifier().transferClassifier(
                arm, classes: 10, pretrained: weights, inputShape: data.train.imageShape, seed: armSeed)
            let config = try PaperClassifier.trainingConfiguration(
                epochs: budget.epochs, batchSize: budget.batchSize, normalization: normalization, seed: armSeed)
            return try ClassifierTrainer(classifier: classifier, configuration: config)
        }
    }

    // MARK: - k-means baseline and linear probes

    /// Coates et al. 2011: per-patch contrast normalisation, ZCA whitening and k-means on
    /// 6x6 patches of the pretraining images; transferred as a conv whose filters are the
    /// centroids folded through the whitening.
    func fitKMeans(
        data: DataSources, normalization: ChannelNormalization, results: inout Results
    ) throws -> KMeansBaseline {
        var g = SeededGenerator(seed: seed &+ 4000)
        let clock = Date()
        let baseline = try KMeansBaseline.fit(
            dataset: data.pretrain, filters: budget.conv1Filters, kernelSize: 6,
            patches: min(50_000, data.pretrain.count * 20), normalization: normalization, communicator: communicator,
            using: &g)
        results.pretraining["kmeans"] = .init(
            seconds: Date().timeIntervalSince(clock), finalLoss: Float(baseline.inertia ?? .nan),
            secondsToLayerwiseLoss: nil, lossPerEpoch: [])
        log(
            "k-means baseline: \(budget.conv1Filters) centroids in "
                + "\(String(format: "%.1f", Date().timeIntervalSince(clock))) s"
        )
        return baseline
    }

    func linearProbes(
        data: DataSources, normalization: ChannelNormalization, contrastive: LayerwiseTrainer,
        endToEnd: LayerwiseTrainer?,
        supervised: [String: Tensor], kmeans: KMeansBaseline, results: inout Results
    ) throws {
        var probe = LinearProbe(epochs: budget.probeEpochs, learningRate: 1e-3, batchSize: 128, seed: seed)
        probe.communicator = communicator
        var g = SeededGenerator(seed: seed &+ 3000)
        let random = try Conv2D(inputChannels: 3, outputChannels: budget.conv1Filters, kernelSize: 6, using: &g)
        // Stage-2 control: an untrained stage-2 conv drawn like pretraining draws it.
        let randomStage2 = try Conv2D(
            inputChannels: budget.conv1Filters, outputChannels: budget.conv2Filters, kernelSize: 3, using: &g)
        let supervisedConv = try Conv2D(inputChannels: 3, outputChannels: budget.conv1Filters, kernelSize: 6, using: &g)
        if let w = supervised[PaperClassifier.conv1Weight] { supervisedConv.weight.value = w }
        if let b = supervised[PaperClassifier.conv1Bias], let bias = supervisedConv.bias { bias.value = b }
        let contrastiveConv = contrastive.stages[0].layers[0]
        var extractors: [(String, FeatureExtractor)] = [
            ("random", FeatureExtractor(layers: [random])),
            ("contrastive", FeatureExtractor(layers: [contrastiveConv])),
            ("kmeans", FeatureExtractor(layers: [try kmeans.convolution()])),
        ]
        if !supervised.isEmpty { extractors.insert(("supervised", FeatureExtractor(layers: [supervisedConv])), at: 2) }
        if layers == 2 {
            // Stage 1 (conv, pool, ReLU) then stage 2's conv: does the second stage add to the first?
            extractors.append(
                (
                    "contrastive_stages_1_2",
                    FeatureExtractor(layers: contrastive.stages[0].layers + [contrastive.stages[1].layers[0]])
                ))
            extractors.append(
                (
                    "contrastive_stage1_random_stage2",
                    FeatureExtractor(layers: contrastive.stages[0].layers + [randomStage2])
                ))
        }
        if let endToEnd, endToEnd.stages.count == 2 {
            // The same stack pretrained end to end with the same budget: which features are better?
            extractors.append(("end_to_end_stage1", FeatureExtractor(layers: [endToEnd.stages[0].layers[0]])))
            extractors.append(
                (
                    "end_to_end_stages_1_2",
                    FeatureExtractor(layers: endToEnd.stages[0].layers + [endToEnd.stages[1].layers[0]])
                ))
        }
        var pooled: [String: (train: Tensor, test: Tensor)] = [:]
        var trainLabels: [Int] = [], testLabels: [Int] = []
        for (name, extractor) in extractors {
            let tr = try Evaluation.pooledFeatures(
                extractor, of: data.train, normalization: normalization, communicator: communicator)
            let te = try Evaluation.pooledFeatures(
                extractor, of: data.test, normalization: normalization, communicator: communicator)
            (trainLabels, testLabels) = (tr.labels, te.labels)
            pooled[name] = (tr.features, te.features)
            let r = try probe.evaluate(
                train: tr.features, trainLabels: tr.labels, test: te.features, testLabels: te.labels,
                classCount: data.train.classCount ?? 10)
            results.linearProbe[name] = Double(r.testAccuracy)
            log("linear probe \(name): \(percent(Double(r.testAccuracy))) (\(r.featureCount) features)")
        }
        if layers == 2 {
            // Concatenated stage-1 and stage-2 features: does stage 2 add information over stage 1
            // alone? The control with an untrained stage 2 has the same feature count.
            for (name, stage1, stage2) in [
                ("contrastive_stage1_plus_stage2", "contrastive", "contrastive_stages_1_2"),
                ("contrastive_stage1_plus_random_stage2", "contrastive", "contrastive_stage1_random_stage2"),
                ("end_to_end_stage1_plus_stage2", "end_to_end_stage1", "end_to_end_stages_1_2"),
            ] {
                guard let s1 = pooled[stage1], let s2 = pooled[stage2] else { continue }
                let train = Self.concatenateColumns(s1.train, s2.train),
                    test = Self.concatenateColumns(s1.test, s2.test)
                let r = try probe.evaluate(
                    train: train, trainLabels: trainLabels, test: test, testLabels: testLabels,
                    classCount: data.train.classCount ?? 10)
                results.linearProbe[name] = Double(r.testAccuracy)
                log("linear probe \(name): \(percent(Double(r.testAccuracy))) (\(r.featureCount) features)")
            }
        }
    }

    /// `[N, A]` and `[N, B]` → `[N, A + B]`.
    static func concatenateColumns(_ a: Tensor, _ b: Tensor) -> Tensor {
        let n = a.shape[0], wa = a.shape[1], wb = b.shape[1]
        var out = Tensor.uninitialized(shape: [n, wa + wb])
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { o in
                    for r in 0..<n {
                        (o.baseAddress! + r * (wa + wb)).update(from: pa.baseAddress! + r * wa, count: wa)
                        (o.baseAddress! + r * (wa + wb) + wa).update(from: pb.baseAddress! + r * wb, count: wb)
                    }
                }
            }
        }
        return out
    }

    // MARK: - Figures

    func writeFigures(
        contrastive: LayerwiseTrainer, supervised: [String: Tensor], kmeans: KMeansBaseline, results: Results
    ) throws {
        var g = SeededGenerator(seed: seed &+ 3000)
        let random = try Conv2D(inputChannels: 3, outputChannels: budget.conv1Filters, kernelSize: 6, using: &g)
        let contrastiveWeights =
            PaperClassifier.transferableWeights(of: contrastive)[PaperClassifier.conv1Weight]
            ?? random.weight.value
        let figures: [(String, Tensor)] =
            [
                ("filters_contrastive.png", contrastiveWeights),
                ("filters_random.png", random.weight.value),
                ("filters_kmeans.png", try kmeans.convolution().weight.value),
            ]
            + (supervised.isEmpty
                ? [] : [("filters_supervised.png", supervised[PaperClassifier.conv1Weight] ?? random.weight.value)])
        for (file, weights) in figures {
            try AtomicFile.write(try FilterGrid.png(weights, columns: 16, scale: 8), to: out + "/" + file)
        }
        guard !results.arms.isEmpty else { return }
        let chart = LineChart(
            title: "CIFAR-10 validation accuracy per epoch (\(budget.name) preset, "
                + (budget.seeds > 1 ? "mean ± std of \(budget.seeds) seeds)" : "1 seed)"),
            xLabel: "epoch", yLabel: "accuracy (%)",
            series: TransferArm.allCases.compactMap { arm in
                results.arms[arm.rawValue].map {
                    .init(name: arm.rawValue, runs: $0.curvePerSeed.isEmpty ? [$0.curve] : $0.curvePerSeed)
                }
            })
        try AtomicFile.write(Data(try chart.svg().utf8), to: out + "/curves.svg")
    }

    // MARK: - Output helpers

    func classifierProgress(_ label: String) -> (ClassifierEvent) -> Void {
        ReproducePaperOutput.classifierProgress(label, epochs: budget.epochs)
    }
}

/// Trains one transfer arm once per seed (seed s of the arm is `baseSeed + s`: the same
/// head, data order and augmentation for every arm of a seed) on the training split,
/// scored on the evaluation split after every epoch; the last epoch's accuracy is the arm's.
func trainArm(
    _ name: String, seeds: Int, epochs: Int, baseSeed: UInt64, data: DataSources,
    makeTrainer: (UInt64) throws -> ClassifierTrainer
) throws -> Results.Arm {
    var accuracies: [Double] = [], curves: [[Double]] = [], seconds = 0.0
    for s in 0..<seeds {
        let report = try makeTrainer(baseSeed &+ UInt64(s))
            .train(
                on: data.train, validation: data.test,
                events: ReproducePaperOutput.classifierProgress("\(name) seed \(s + 1)/\(seeds)", epochs: epochs))
        let curve = report.epochs.map { Double($0.validationAccuracy ?? .nan) }
        curves.append(curve)
        accuracies.append(curve.last ?? .nan)
        seconds += report.totalSeconds
        log(
            "\(name) seed \(s + 1): test accuracy \(percent(curve.last ?? .nan)) "
                + "after epoch 1 \(percent(curve.first ?? .nan))")
    }
    let mean = accuracies.reduce(0, +) / Double(accuracies.count)
    let std =
        accuracies.count > 1
        ? (accuracies.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(accuracies.count - 1)).squareRoot()
        : 0
    let curve = (0..<epochs).map { e in curves.map { $0[e] }.reduce(0, +) / Double(curves.count) }
    return .init(
        testAccuracyMean: mean, testAccuracyStd: std, testAccuracyPerSeed: accuracies, curve: curve,
        curvePerSeed: curves, seconds: seconds)
}

/// Progress lines of the command.
enum ReproducePaperOutput {
    /// One overwritten line per classifier step, one kept line per epoch.
    static func classifierProgress(_ label: String, epochs: Int) -> (ClassifierEvent) -> Void {
        { event in
            switch event {
            case let .step(epoch, step, steps, loss, ips):
                status(
                    "\(label) │ epoch \(epoch)/\(epochs) │ step \(step)/\(steps) │ loss "
                        + "\(String(format: "%.3f", loss)) │ \(Int(ips)) img/s",
                    final: false)
            case let .epochEnded(r):
                status(
                    "\(label) │ epoch \(r.epoch) │ train loss \(String(format: "%.3f", r.trainingLoss)) │ val acc "
                        + "\(percent(Double(r.validationAccuracy ?? .nan))) │ \(String(format: "%.1f", r.seconds)) s",
                    final: true)
            }
        }
    }
}

func percent(_ v: Double) -> String { v.isFinite ? String(format: "%.1f%%", v * 100) : "n/a" }

func elapsed(since start: Date) -> String { String(format: "%.1f s", Date().timeIntervalSince(start)) }

func log(_ message: String) { status(message, final: true) }

/// Set on MPI ranks other than 0, which print nothing but errors.
nonisolated(unsafe) var isQuietRank = false

/// Progress lines overwrite each other on a terminal; final lines stay.
func status(_ line: String, final: Bool) {
    guard !isQuietRank else { return }
    let isTTY = isatty(STDERR_FILENO) != 0
    if final {
        FileHandle.standardError.write(Data(((isTTY ? "\r\u{1B}[K" : "") + line + "\n").utf8))
    } else if isTTY {
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    }
}
