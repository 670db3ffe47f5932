import ArgumentParser
import Foundation
import Layerwise

/// `--layers 3`: a wide three-stage stack (96 → 384 → 1,536, SoftHebb's block form),
/// pretrained stage by stage without labels on the CIFAR-10 training images, then a
/// linear probe of every stage's own features and of each stage's calibrated untrained
/// control (random weights, batch-norm statistics fitted by the same data pass).
struct DeepExperiment {
    var out: String
    var seed: UInt64
    var probeEpochs: Int
    var threads: Int
    var commandLine: String
    /// Per-stage width multiplier (1 = 96/384/1,536); for quick runs.
    var widthScale: Double = 1
    /// How every stage learns.
    var objective: DeepObjective = .softhebb
    /// A `deep_stages.safetensors` of an earlier run: load it instead of pretraining.
    var weightsPath: String?
    /// How `--deep-objective infonce` trains each stage.
    var contrastive = WideContrastiveOptions()
    /// Stages of the stack to train and probe (the first 1, 2 or 3).
    var stageCount = 3
    /// Train every stage at once with the top stage's objective and optimizer, back-propagating
    /// through the whole stack, instead of stage by stage (`--deep-objective infonce` only).
    var endToEnd = false

    var specs: [WideStageSpec] {
        WideStack.softHebbCIFAR.prefix(stageCount).map { s in
            var s = s
            s.width = max(4, Int((Double(s.width) * widthScale).rounded()))
            return s
        }
    }

    func run(data: DataSources) throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let started = Date(), cpuStart = Self.cpuSeconds()
        log("Layerwise reproduce-paper │ deep stack \(specs.map(\.width)) │ threads \(threads)")
        log(
            "pretraining: the \(data.train.count) CIFAR-10 training images without labels; probe on them; "
                + "evaluation: \(data.test.count) images — \(data.testSource)")
        var results = Results(
            preset: "deep", recipe: objective.rawValue, command: commandLine,
            data: .init(
                pretrainImages: data.train.count, trainImages: data.train.count, testImages: data.test.count,
                testSource: data.testSource))
        var g = SeededGenerator(seed: seed)
        let layers = try WideStack.layers(specs, inputChannels: 3, using: &g)
        let probe = WideProbe(epochs: probeEpochs, seed: seed)
        for k in 1...layers.count {  // fail before training if a probe cannot run
            _ = try probe.validate(
                stages: layers, taps: [ProbeTap(stage: k)], imageShape: data.train.imageShape,
                rows: data.train.count + data.test.count)
        }
        let report = try weightsPath.map { try load($0, into: layers) } ?? pretrain(layers, data: data)
        for r in report.stages {
            results.pretraining[r.stage == LayerwiseTrainer.endToEndStage ? "end_to_end" : "stage\(r.stage)"] = .init(
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
        var metadata = ["kind": "deep-stack", "objective": objective.rawValue]
        for r in report.stages { metadata["stage\(r.stage)_seconds"] = "\(r.seconds)" }
        try SafeTensors.write(
            weights, metadata: metadata,
            to: out + "/deep_stages.safetensors")
        try writeFilters(layers)

        // Each stage, then its untrained control: the same initial weights (same seed), with
        // statistics calibrated. The deepest stage first: it is the one the study is about.
        var fresh = SeededGenerator(seed: seed)
        let initial = try WideStack.layers(specs, inputChannels: 3, using: &fresh)
        for k in (1...layers.count).reversed() {
            let r = try probe.evaluate(
                stages: layers, taps: [ProbeTap(stage: k)], train: data.train, test: data.test, log: log)
            results.linearProbe["stage\(k)"] = Double(r.testAccuracy)
            log(
                "probe stage\(k): \(percent(Double(r.testAccuracy))) (\(r.featureCount) features; "
                    + "features \(Int(r.featureSeconds)) s, classifier \(Int(r.trainingSeconds)) s)")
            try results.write(to: out)
            var calibration = SeededGenerator(seed: seed &+ UInt64(k))
            let below = FrozenStack(layers: layers[..<(k - 1)].flatMap { $0 })
            try StatisticsCalibration.calibrate(initial[k - 1], below: below, dataset: data.train, using: &calibration)
            let control = Array(layers[..<(k - 1)]) + [initial[k - 1]]
            let c = try probe.evaluate(
                stages: control, taps: [ProbeTap(stage: k)], train: data.train, test: data.test, log: log)
            results.linearProbe["stage\(k)_untrained"] = Double(c.testAccuracy)
            log("probe stage\(k)_untrained: \(percent(Double(c.testAccuracy)))")
            try results.write(to: out)
        }
        results.totalSeconds = Date().timeIntervalSince(started)
        try results.write(to: out)
        log(
            "done in \(elapsed(since: started)) wall, "
                + "\(String(format: "%.0f", Self.cpuSeconds() - cpuStart)) s CPU → \(out)/results.json"
        )
    }

    /// Loads the stage weights and statistics of an earlier run (and the pretraining
    /// seconds it recorded).
    func load(_ path: String, into layers: [[any Layer]]) throws -> (stages: [StageTime], totalSeconds: Double) {
        let file = try SafeTensors.read(path: path)
        for (k, stage) in layers.enumerated() {
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
        log("loaded the stage weights of \(path) (objective \(file.metadata["objective"] ?? "?"))")
        let stages = layers.indices.compactMap { k -> StageTime? in
            file.metadata["stage\(k + 1)_seconds"].flatMap(Double.init).map {
                StageTime(stage: k + 1, seconds: $0, finalLoss: .nan, epochLosses: [])
            }
        }
        return (stages, stages.reduce(0) { $0 + $1.seconds })
    }

    /// Trains the stages bottom-up with ``objective``.
    func pretrain(_ layers: [[any Layer]], data: DataSources) throws -> (stages: [StageTime], totalSeconds: Double) {
        let begin = Date()
        if objective == .kmeans {
            var stages: [StageTime] = []
            var g = SeededGenerator(seed: seed)
            let start = try DeepKMeansStart(dataset: data.train)
            for k in layers.indices {
                let t = Date()
                try start.fit(
                    stage: k + 1, layers: layers[k], below: FrozenStack(layers: layers[..<k].flatMap { $0 }), using: &g)
                let seconds = Date().timeIntervalSince(t)
                log("stage \(k + 1): k-means fitted in \(String(format: "%.1f", seconds)) s")
                stages.append(StageTime(stage: k + 1, seconds: seconds, finalLoss: .nan, epochLosses: []))
            }
            return (stages, Date().timeIntervalSince(begin))
        }
        var generator = SeededGenerator(seed: seed &+ 100)
        var stages =
            objective == .infonce
            ? try WideStack.contrastiveStages(
                layers: layers, dataset: data.train, options: contrastive, using: &generator)
            : try WideStack.softHebbStages(layers: layers, specs: specs, dataset: data.train)
        if objective == .kmeansSofthebb {
            let start = try DeepKMeansStart(dataset: data.train)
            for k in stages.indices { stages[k].preparation = start }
        }
        let patch = ReceptiveField.smallestPatch([layers[0]], channels: 3) ?? 1
        let trainer = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: patch, seed: seed)
        let measure = objective == .infonce ? "NT-Xent" : "mean |‖W‖ − 1|"
        let events: (TrainingEvent) -> Void = { event in
            switch event {
            case let .stageFinished(stage, seconds, loss):
                log("stage \(stage) trained in \(String(format: "%.1f", seconds)) s; \(measure) \(loss)")
            case let .step(e) where e.step % 400 == 0 || (objective == .infonce && e.step % 50 == 0):
                log("stage \(e.stage) step \(e.step)/\(e.totalSteps) │ \(measure) \(e.loss)")
            default: break
            }
        }
        let report = try endToEnd ? trainer.pretrainEndToEnd(events: events) : trainer.pretrain(events: events)
        let times = report.stages.map {
            StageTime(stage: $0.stage, seconds: $0.seconds, finalLoss: $0.finalLoss, epochLosses: $0.epochLosses)
        }
        return (times, Date().timeIntervalSince(begin))
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
enum DeepObjective: String, ExpressibleByArgument, CaseIterable {
    /// SoftHebb (soft winner-take-all Hebbian), one epoch per stage.
    case softhebb
    /// k-means of whitened windows at every stage (Coates & Ng 2011).
    case kmeans
    /// k-means start, then one SoftHebb epoch.
    case kmeansSofthebb = "kmeans-softhebb"
    /// Two augmented views of every image, NT-Xent over the batch (`WideStack.contrastiveStages`).
    case infonce
}
