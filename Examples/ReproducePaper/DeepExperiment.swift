import ArgumentParser
import Foundation
import Layerwise

/// `--layers 3`: a wide three-stage stack (96 → 384 → 1,536, SoftHebb's block form),
/// pretrained stage by stage without labels on the CIFAR-10 training images, then a
/// linear probe of every stage's own features and of each stage's calibrated untrained
/// control (random weights, batch-norm statistics fitted by the same data pass), then
/// (without `--probe-only`) the stack fine-tuned with a linear head beside the same
/// classifier from scratch (DeepArms.swift).
struct DeepExperiment {
    var out: String
    var seed: UInt64
    var probeEpochs: Int
    var threads: Int
    var commandLine: String
    /// Per-stage width multiplier (1 = 96/384/1,536); for quick runs.
    var widthScale: Double = 1
    /// How each stage learns, and for how long.
    var recipe = DeepRecipe.standard
    /// How many of the three stages to build (1…3).
    var stageCount = 3
    /// A `deep_stages.safetensors` of an earlier run: load it instead of pretraining.
    var weightsPath: String?
    /// With ``weightsPath``: load only the stages below this one (1-based) and train the rest.
    var trainFrom: Int?
    /// The stages to probe (1-based; nil = all).
    var probeStages: [Int]?
    /// Also probe these taps' features concatenated (nil: none).
    var concatenatedTaps: [ProbeTap]?
    /// Probe each stage's calibrated untrained control too.
    var probeControls = true
    /// Train the probes on each training image mirrored left–right too (the test images are not).
    var probeFlips = false
    /// The most bytes the probe's feature matrices may take (checked before any training).
    var probeMemoryLimitBytes = WideProbe().memoryLimitBytes
    /// How `--deep-objective infonce` trains each stage.
    var contrastive = WideContrastiveOptions()
    /// Train every stage at once with the top stage's objective and optimizer, back-propagating
    /// through the whole stack, instead of stage by stage (`--deep-objective infonce` only).
    var endToEnd = false
    /// The images the stages pretrain on, without their labels.
    var pretrainImages = DeepPretrainImages.cifar10
    /// The finetuned and scratch arms' budget (nil: probes only).
    var transfer: DeepTransfer?

    var specs: [WideStageSpec] { Array(recipe.specs(widthScale: widthScale).prefix(stageCount)) }

    func run(data: DataSources) throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let started = Date(), cpuStart = Self.cpuSeconds()
        log("Layerwise reproduce-paper │ deep stack \(specs.map(\.width)) │ threads \(threads)")
        let unlabelled = try pretrainImages.images(of: data)
        log(
            "pretraining: \(unlabelled.count) images without labels (\(pretrainImages.description(of: data))); "
                + "probe: the \(data.train.count) CIFAR-10 training images; "
                + "evaluation: \(data.test.count) images — \(data.testSource)")
        var results = Results(
            preset: "deep", recipe: recipe.description, command: commandLine,
            data: .init(
                pretrainImages: unlabelled.count, trainImages: data.train.count, testImages: data.test.count,
                testSource: data.testSource))
        var g = SeededGenerator(seed: seed)
        let layers = try WideStack.layers(specs, inputChannels: 3, using: &g)
        let probe = WideProbe(
            epochs: probeEpochs, memoryLimitBytes: probeMemoryLimitBytes, seed: seed,
            trainingViews: probeFlips ? [try HorizontalFlip(probability: 1)] : [])
        // Fail before training if a probe cannot run.
        for taps in (1...layers.count).map({ [ProbeTap(stage: $0)] }) + [concatenatedTaps].compactMap({ $0 }) {
            _ = try probe.validate(
                stages: layers, taps: taps, imageShape: data.train.imageShape,
                rows: data.train.count * (1 + probe.trainingViews.count) + data.test.count)
        }
        try validateArms(layers, data: data)
        var report: (stages: [StageTime], totalSeconds: Double) = ([], 0)
        if let weightsPath { report = try load(weightsPath, into: layers, below: trainFrom) }
        if weightsPath == nil || trainFrom != nil {
            let trained = try pretrain(layers, from: trainFrom ?? 1, images: unlabelled)
            report = (report.stages + trained.stages, report.totalSeconds + trained.totalSeconds)
        }
        for r in report.stages {
            let name = r.stage == LayerwiseTrainer.endToEndStage ? "end_to_end" : "stage\(r.stage)"
            results.pretraining[name] = .init(
                seconds: r.seconds, finalLoss: r.finalLoss, secondsToLayerwiseLoss: nil, lossPerEpoch: r.epochLosses)
        }
        log(
            "pretraining: \(String(format: "%.0f", report.totalSeconds)) s wall, "
                + "\(String(format: "%.0f", Self.cpuSeconds() - cpuStart)) s CPU")
        var weights: [String: Tensor] = [:]
        for (k, stage) in layers.enumerated() {
            for (i, l) in stage.enumerated() {
                for p in l.parameters + l.buffers { weights["stage\(k + 1).\(i).\(p.name)"] = p.value }
            }
        }
        var metadata = ["kind": "deep-stack", "recipe": recipe.description]
        for r in report.stages { metadata["stage\(r.stage)_seconds"] = "\(r.seconds)" }
        try SafeTensors.write(
            weights, metadata: metadata,
            to: out + "/deep_stages.safetensors")
        try writeFilters(layers)

        // Each stage, then its untrained control: the same initial weights (same seed), with
        // statistics calibrated. The deepest stage first: it is the one the study is about.
        var fresh = SeededGenerator(seed: seed)
        let initial = try WideStack.layers(specs, inputChannels: 3, using: &fresh)
        for k in (1...layers.count).reversed() where probeStages?.contains(k) ?? true {
            let r = try probe.evaluate(
                stages: layers, taps: [ProbeTap(stage: k)], train: data.train, test: data.test, log: log)
            results.linearProbe["stage\(k)"] = Double(r.testAccuracy)
            log(
                "probe stage\(k): \(percent(Double(r.testAccuracy))) (\(r.featureCount) features; "
                    + "features \(Int(r.featureSeconds)) s, classifier \(Int(r.trainingSeconds)) s)")
            try results.write(to: out)
            guard probeControls else { continue }
            var calibration = SeededGenerator(seed: seed &+ UInt64(k))
            let below = FrozenStack(layers: layers[..<(k - 1)].flatMap { $0 })
            try StatisticsCalibration.calibrate(initial[k - 1], below: below, dataset: unlabelled, using: &calibration)
            let control = Array(layers[..<(k - 1)]) + [initial[k - 1]]
            let c = try probe.evaluate(
                stages: control, taps: [ProbeTap(stage: k)], train: data.train, test: data.test, log: log)
            results.linearProbe["stage\(k)_untrained"] = Double(c.testAccuracy)
            log("probe stage\(k)_untrained: \(percent(Double(c.testAccuracy)))")
            try results.write(to: out)
        }
        if let taps = concatenatedTaps {
            let r = try probe.evaluate(stages: layers, taps: taps, train: data.train, test: data.test, log: log)
            let name = taps.map(\.label).joined(separator: "+")
            results.linearProbe[name] = Double(r.testAccuracy)
            log("probe \(name): \(percent(Double(r.testAccuracy))) (\(r.featureCount) features)")
            try results.write(to: out)
        }
        try runArms(layers, data: data, results: &results)
        results.totalSeconds = Date().timeIntervalSince(started)
        try results.write(to: out)
        log(
            "done in \(elapsed(since: started)) wall, "
                + "\(String(format: "%.0f", Self.cpuSeconds() - cpuStart)) s CPU → \(out)/results.json"
        )
    }

    /// Loads the stage weights and statistics of an earlier run (and the pretraining
    /// seconds it recorded): every stage, or only those below `below` (1-based).
    func load(
        _ path: String, into layers: [[any Layer]], below: Int? = nil
    ) throws -> (
        stages: [StageTime], totalSeconds: Double
    ) {
        let file = try SafeTensors.read(path: path)
        let count = min(layers.count, (below ?? layers.count + 1) - 1)
        for (k, stage) in layers.prefix(count).enumerated() {
            for (i, l) in stage.enumerated() {
                for p in l.parameters + l.buffers {
                    let name = "stage\(k + 1).\(i).\(p.name)"
                    guard let t = file.tensors[name], t.shape == p.value.shape else {
                        throw ExperimentError.data("\(path): no tensor \(name) of shape \(p.value.shape)")
                    }
                    p.value = t
                }
            }
        }
        log("loaded stages 1…\(count) of \(path) (\(file.metadata["recipe"] ?? file.metadata["objective"] ?? "?"))")
        let stages = (0..<count).compactMap { k -> StageTime? in
            file.metadata["stage\(k + 1)_seconds"].flatMap(Double.init).map {
                StageTime(stage: k + 1, seconds: $0, finalLoss: .nan, epochLosses: [])
            }
        }
        return (stages, stages.reduce(0) { $0 + $1.seconds })
    }

    /// Trains stages `first…` bottom-up, each with its objective, on the frozen stages below.
    func pretrain(
        _ layers: [[any Layer]], from first: Int, images: InMemoryImageDataset
    ) throws -> (
        stages: [StageTime], totalSeconds: Double
    ) {
        let begin = Date()
        if recipe.objectives.prefix(layers.count).allSatisfy({ $0 == .infonce }) {
            let report = try pretrainContrastive(layers, from: first, images: images)
            let times = report.stages.map {
                StageTime(stage: $0.stage, seconds: $0.seconds, finalLoss: $0.finalLoss, epochLosses: $0.epochLosses)
            }
            return (times, Date().timeIntervalSince(begin))
        }
        var stages: [StageTime] = []
        for k in (first - 1)..<layers.count {
            let t = Date()
            var time = try train(stage: k, of: layers, images: images)
            time.seconds = Date().timeIntervalSince(t)
            let converged = WideStack.convolution(of: layers[k]).map {
                WideStack.fractionNearUnitNorm($0.weight.value, tolerance: 0.01)
            }
            log(
                "stage \(k + 1) (\(recipe.objectives[k].rawValue)) trained in "
                    + "\(String(format: "%.1f", time.seconds)) s; \(percent(Double(converged ?? .nan))) "
                    + "of the filters within 0.01 of unit norm")
            stages.append(time)
        }
        return (stages, Date().timeIntervalSince(begin))
    }

    /// Trains one stage (0-based `k`) on the frozen stages below it with its objective.
    func train(stage k: Int, of layers: [[any Layer]], images: InMemoryImageDataset) throws -> StageTime {
        let objective = recipe.objectives[k]
        if objective == .kmeans {
            var g = SeededGenerator(seed: seed &+ UInt64(k))
            let below = FrozenStack(layers: layers[..<k].flatMap { $0 })
            try DeepKMeansStart(dataset: images).fit(stage: k + 1, layers: layers[k], below: below, using: &g)
            return StageTime(stage: k + 1, seconds: 0, finalLoss: .nan, epochLosses: [])
        }
        var stages = try WideStack.softHebbStages(
            layers: Array(layers[...k]), specs: Array(specs[...k]), dataset: images, epochs: recipe.epochs[k])
        if objective == .kmeansSofthebb { stages[k].preparation = try DeepKMeansStart(dataset: images) }
        let patch = ReceptiveField.smallestPatch([layers[0]], channels: 3) ?? 1
        let trainer = try LayerwiseTrainer(
            stages: stages, inputChannels: 3, firstPatchSize: patch, seed: seed &+ UInt64(k))
        let report = try trainer.pretrainStages(from: k + 1) { event in
            if case let .step(e) = event, e.step % 400 == 0 {
                log("stage \(e.stage) step \(e.step)/\(e.totalSteps) │ mean |‖W‖ − 1| \(e.loss)")
            }
        }
        let r = report.stages[report.stages.count - 1]
        return StageTime(stage: k + 1, seconds: r.seconds, finalLoss: r.finalLoss, epochLosses: r.epochLosses)
    }

    /// `--deep-objective infonce`: every stage (from `first`) contrastive, stage by stage or end to end.
    func pretrainContrastive(
        _ layers: [[any Layer]], from first: Int, images: InMemoryImageDataset
    ) throws -> PretrainingReport {
        var generator = SeededGenerator(seed: seed &+ 100)
        let stages = try WideStack.contrastiveStages(
            layers: layers, dataset: images, options: contrastive, using: &generator)
        let patch = ReceptiveField.smallestPatch([layers[0]], channels: 3) ?? 1
        let trainer = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: patch, seed: seed)
        let events: (TrainingEvent) -> Void = { event in
            switch event {
            case let .stageFinished(stage, seconds, loss):
                log("stage \(stage) trained in \(String(format: "%.1f", seconds)) s; NT-Xent \(loss)")
            case let .step(e) where e.step % 50 == 0:
                log("stage \(e.stage) step \(e.step)/\(e.totalSteps) │ NT-Xent \(e.loss)")
            default: break
            }
        }
        return try endToEnd
            ? trainer.pretrainEndToEnd(events: events) : trainer.pretrainStages(from: first, events: events)
    }

    /// What one stage's pretraining took.
    struct StageTime {
        var stage: Int
        var seconds: Double
        var finalLoss: Float
        var epochLosses: [Float]
    }

    /// Filter images of every stage: stage 1 in colour; deeper stages show each filter's
    /// first input channel (their inputs are feature maps, not colours). 96 filters each.
    func writeFilters(_ layers: [[any Layer]]) throws {
        for (k, stage) in layers.enumerated() {
            guard let conv = WideStack.convolution(of: stage) else { continue }
            let w = conv.weight.value, s = w.shape, shown = min(96, s[0]), c = s[1] == 3 ? 3 : 1
            var values: [Float] = []
            let plane = s[2] * s[3]
            for f in 0..<shown {
                for ch in 0..<c { for i in 0..<plane { values.append(w[flat: (f * s[1] + ch) * plane + i]) } }
            }
            let png = try FilterGrid.png(try Tensor(shape: [shown, c, s[2], s[3]], values: values))
            try AtomicFile.write(Data(png), to: out + "/filters_stage\(k + 1).png")
        }
    }

    static func cpuSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}

/// How the stages of `--layers 3` learn.
enum DeepObjective: String, ExpressibleByArgument, CaseIterable, LosslessStringConvertible {
    /// SoftHebb (soft winner-take-all Hebbian).
    case softhebb
    /// k-means of whitened windows (Coates & Ng 2011).
    case kmeans
    /// k-means start, then SoftHebb.
    case kmeansSofthebb = "kmeans-softhebb"
    /// Two augmented views of every image, NT-Xent over the batch (`WideStack.contrastiveStages`).
    case infonce

    init?(_ description: String) { self.init(rawValue: description) }
    var description: String { rawValue }
}

/// The deep recipe: each stage's objective, SoftHebb epochs, learning rate and temperature.
struct DeepRecipe: CustomStringConvertible {
    var objectives: [DeepObjective]
    var epochs: [Int]
    var learningRates: [Float]
    var temperatures: [Float]

    /// SoftHebb's own settings (`WideStack.softHebbCIFAR`, one epoch per stage).
    static let softHebbPaper = DeepRecipe(
        objectives: [.softhebb, .softhebb, .softhebb], epochs: [1, 1, 1],
        learningRates: WideStack.softHebbCIFAR.map(\.learningRate),
        temperatures: WideStack.softHebbCIFAR.map(\.temperature))

    /// The default of `--layers 3`: SoftHebb's own settings. No other setting the study
    /// tried (higher η, more epochs, k-means, k-means start) probed better at stage 2 or 3
    /// (Docs/DeepStacks.md).
    static let standard = softHebbPaper

    func specs(widthScale: Double) -> [WideStageSpec] {
        WideStack.softHebbCIFAR.enumerated().map { k, s in
            var s = s
            s.width = max(4, Int((Double(s.width) * widthScale).rounded()))
            s.learningRate = learningRates[k]
            s.temperature = temperatures[k]
            return s
        }
    }

    var description: String {
        func list<T>(_ v: [T]) -> String { v.map { "\($0)" }.joined(separator: ",") }
        return "objective \(list(objectives)) epochs \(list(epochs)) lr \(list(learningRates)) "
            + "temperature \(list(temperatures))"
    }
}

/// What `--layers 3` pretrains on. The probe and the arms always train on the CIFAR-10
/// training images and are scored on the validation split, whichever this is.
enum DeepPretrainImages: String, ExpressibleByArgument, CaseIterable {
    /// The CIFAR-10 training images (the probe's own, without their labels).
    case cifar10
    /// Those, then the CIFAR-100 training images of `--cifar100` (both without labels).
    case cifar10AndCifar100 = "cifar10+cifar100"

    func images(of data: DataSources) throws -> InMemoryImageDataset {
        switch self {
        case .cifar10: return data.train.withoutLabels()
        case .cifar10AndCifar100:
            return try InMemoryImageDataset.concatenate([data.train.withoutLabels(), data.pretrain.withoutLabels()])
        }
    }

    func description(of data: DataSources) -> String {
        switch self {
        case .cifar10: return "the CIFAR-10 training images"
        case .cifar10AndCifar100: return "the CIFAR-10 training images, then \(data.pretrainSource)"
        }
    }
}
