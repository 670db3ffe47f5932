import Layerwise

/// The l1 / l2 training step and its timing, as bench_torch.py's `bench_triplet`:
///
/// sample (incl) or take a pre-sampled batch (excl) → frozen stage forward (inference, l2
/// only) → trained stage forward → cosine triplet loss, margin 0.5, mean over the B
/// triplets → backward → SGD(lr 0.01, momentum 0.9). Gradients are zeroed before the
/// backward pass, as the reference's `zero_grad`.
///
/// With `--trim on` (the default) the batch is first cropped to the top-left window the
/// network reads (``InputTrimming``): for l2 that is 13×13 of the 16×16 patches, because
/// the floor-mode poolings drop the last conv rows and columns. The embedding and every
/// parameter gradient are the same as on the whole patch (checked in
/// `Tests/LayersTests/InputTrimmingTests.swift`); the crop is inside the timing. l1 reads
/// its whole 7×7 patch, so trimming changes nothing there. `--trim off` runs the full
/// patch, as the reference does.
final class TripletWorkload {
    static let margin: Float = 0.5
    static let learningRate: Float = 0.01
    static let momentum: Float = 0.9

    let name: String
    let patch: Int
    let frozen: Sequential?
    let trained: Sequential
    let flops: FlopModel
    let options: BenchOptions
    let loss: TripletMarginLoss
    let optimizer: SGD
    let layout: TripletLayout
    let parameters: [Parameter]
    /// The top-left window of each patch that the network reads, when smaller than the patch
    /// and trimming is on.
    let readExtent: (height: Int, width: Int)?
    private(set) var lastLoss: Float = .nan

    init(
        name: String, patch: Int, frozen: Sequential?, trained: Sequential, flops: FlopModel, options: BenchOptions
    ) throws {
        self.name = name
        self.patch = patch
        self.frozen = frozen
        self.trained = trained
        self.flops = flops
        self.options = options
        loss = TripletMarginLoss(distance: CosineDistance(), margin: Self.margin)
        try loss.validate()
        optimizer = SGD(learningRate: Self.learningRate, momentum: Self.momentum)
        try optimizer.validate()
        layout = TripletLayout(batchSize: options.batch, negativesPerAnchor: 1)
        parameters = trained.parameters
        // Shapes are checked once here, so the hot loop's preconditions never fire.
        let inputShape = [layout.rowCount, BenchData.channels, patch, patch]
        let featureShape = try frozen?.outputShape(for: inputShape) ?? inputShape
        let embeddingShape = try trained.outputShape(for: featureShape)
        guard embeddingShape.count == 2, embeddingShape[0] == layout.rowCount else {
            throw BenchError.failed(
                workload: name, reason: "embedding shape \(embeddingShape) is not [\(layout.rowCount), D]")
        }
        let layers: [any Layer] = (frozen.map { [$0] } ?? []) + [trained]
        if options.trim, let extent = try InputTrimming.readExtent(of: layers, inputShape: inputShape),
            extent.height < patch || extent.width < patch
        {
            readExtent = extent
        } else {
            readExtent = nil
        }
    }

    /// One training step on a `[3B, 3, P, P]` batch.
    func step(_ patches: Tensor) throws {
        let batch = readExtent.map { InputTrimming.crop(patches, height: $0.height, width: $0.width) } ?? patches
        let features = frozen?.forward(batch, mode: .inference) ?? batch
        let embeddings = trained.forward(features, mode: .training)
        let result = try loss.evaluate(TripletEmbeddings(embeddings, layout: layout))
        for p in parameters { p.zeroGradient() }
        _ = trained.backward(result.gradient)
        optimizer.update(parameters)
        lastLoss = result.value
    }

    func run(images: Tensor) throws -> [JSONLine] {
        var sampler = BenchTripletSampler(
            images: images, patch: patch, batch: options.batch, seed: UInt64(options.seed) &+ 1)
        var out: [JSONLine] = []
        for mode in options.modes {
            var pre: [Tensor] = []
            if mode == .excl { pre = (0..<options.steps).map { _ in sampler.sample() } }
            let summary = try timedRuns(
                warmup: options.warmup, steps: options.steps, runs: options.runs,
                itemsPerStep: options.batch, preCount: mode == .excl ? pre.count : nil
            ) { index in
                if let index { try step(pre[index]) } else { try step(sampler.sample()) }
            }
            guard lastLoss.isFinite else {
                throw BenchError.failed(workload: name, reason: "loss is \(lastLoss) after training")
            }
            let median = summary.median
            let gflops = median * Double(flops.flopPerItem) / 1e9
            var line = JSONLine()
            line.set("workload", name)
            line.set("mode", "train_\(mode.rawValue)_sampling")
            line.set("threads", options.threads)
            line.set("batch", options.batch)
            line.set("steps", options.steps)
            line.set("runs", options.runs)
            line.set("warmup", options.warmup)
            line.set("triplets_per_s", median, places: 1)
            line.set("min", summary.min, places: 1)
            line.set("max", summary.max, places: 1)
            line.set("per_run", summary.rates, places: 2)
            line.set("ms_per_step", 1000 * Double(options.batch) / median, places: 3)
            line.set("flop_per_triplet", flops.flopPerItem)
            line.set("train_gflop_per_step", Double(flops.trainFlopPerStep) / 1e9, places: 4)
            line.set("achieved_gflops", gflops, places: 2)
            line.set("gemm_fraction", gflops / options.gemmPeakGFLOPS, places: 4)
            line.set("minflt_per_step", summary.minorFaultsPerStep, places: 1)
            line.set("cpu_ms_per_step", summary.cpuMillisecondsPerStep, places: 3)
            line.set("trim", options.trim ? "on" : "off")
            line.set("input_read", "\(readExtent?.height ?? patch)x\(readExtent?.width ?? patch) of \(patch)x\(patch)")
            if let executed = executedFlopPerItem {
                line.set("executed_gflops", median * Double(executed) / 1e9, places: 2)
            }
            line.set("malloc", options.malloc.rawValue)
            line.set("last_loss", Double(lastLoss), places: 5)
            line.set("peak_rss_mb", ProcessStats.peakResidentMiB(), places: 1)
            out.append(line)
        }
        return out
    }
}

extension TripletWorkload {
    /// FLOPs per triplet actually computed when the input is trimmed (the FLOP model's
    /// conv terms at the trimmed sizes); `nil` when nothing is trimmed.
    var executedFlopPerItem: Int? {
        guard let e = readExtent, name == "l2" else { return nil }
        let c1 = (e.height - 6 + 1), p1 = c1 / 2, c2 = p1 - 3 + 1
        let l1f = FlopModel.convMACs(3, 64, 6, c1, c1)
        let l2f = FlopModel.convMACs(64, 128, 3, c2, c2)
        return 2 * 3 * (l1f + l2f + l2f)
    }
}

/// The workloads that need layers, losses and an optimizer.
enum NeuralWorkloads {
    static func triplet(_ which: Workload, options: BenchOptions, images: Tensor) throws -> [JSONLine] {
        let workload = which == .l1 ? try L1Workload.make(options: options) : try L2Workload.make(options: options)
        return try workload.run(images: images)
    }
}
