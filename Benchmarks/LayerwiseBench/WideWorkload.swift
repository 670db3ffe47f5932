import Layerwise

/// Workload wide (bench_torch.py): the three-stage 96 → 384 → 1,536 stack on 32×32×3.
///
/// stage 1: conv(3→96, 5, p2) → BatchNorm(non-affine) → ReLU → MaxPool(4, s2, p1)   32 → 16
/// stage 2: conv(96→384, 3, p1) → BatchNorm(non-affine) → ReLU → MaxPool(4, s2, p1) 16 → 8
/// stage 3: conv(384→1536, 3, p1) → BatchNorm(non-affine) → ReLU → AvgPool(2, s2)   8 → 4
///
/// Running statistics come from four training-mode forwards of batches `k·B` first (as the
/// reference). `inference`: consecutive batches of B through all three stages, eval-mode
/// batch norm, images/s. `train_stage3`: stages 1–2 frozen in inference, two views per image
/// (the batch and its horizontal flip, 2B rows), stage 3 in training mode, embedding = the
/// global mean of its 1536×4×4 output, NT-Xent at temperature 0.1 over all 2B rows (both
/// directions), SGD(0.01, momentum 0.9); images/s counts an image with its two views.
final class WideWorkload {
    let options: BenchOptions
    let frozen: Sequential
    let stage3: Sequential
    /// Stage 3 followed by the global average (4×4 → 1×1) and flatten: the trained network.
    let trained: Sequential
    let optimizer: SGD
    /// NT-Xent over `[z₁; z₂]` in both directions (every row an anchor once, as torch's).
    let loss = SymmetricInfoNCELoss(temperature: 0.1)
    let flops: FlopModel

    init(options: BenchOptions) throws {
        self.options = options
        var generator = SeededGenerator(seed: UInt64(options.seed))
        func stage(_ cin: Int, _ cout: Int, _ k: Int, pool: any Layer) throws -> Sequential {
            Sequential([
                try Conv2D(
                    inputChannels: cin, outputChannels: cout, kernelSize: k, padding: k / 2,
                    algorithm: k == 3 ? options.convAlgorithm : .automatic, using: &generator),
                try BatchNorm(features: cout, affine: false), ReLU(), pool,
            ])
        }
        let s1 = try stage(3, 96, 5, pool: try MaxPool2D(kernelSize: 4, stride: 2, padding: 1))
        let s2 = try stage(96, 384, 3, pool: try MaxPool2D(kernelSize: 4, stride: 2, padding: 1))
        stage3 = try stage(384, 1536, 3, pool: try AvgPool2D(kernelSize: 2, stride: 2))
        (stage3.layers[0] as? Conv2D)?.needsInputGradient = false  // its input comes from frozen stages
        frozen = Sequential([s1, s2])
        trained = Sequential([stage3, try AvgPool2D(kernelSize: 4), Flatten()])
        optimizer = SGD(learningRate: TripletWorkload.learningRate, momentum: TripletWorkload.momentum)
        try optimizer.validate()
        try loss.validate()
        flops = FlopModel.wide(batch: options.wideBatch)
        let b = options.wideBatch
        let side = BenchData.imageSide
        let shape = try trained.outputShape(for: try frozen.outputShape(for: [2 * b, BenchData.channels, side, side]))
        guard shape == [2 * b, 1536] else {
            throw BenchError.failed(workload: "wide", reason: "embedding shape \(shape) is not [\(2 * b), 1536]")
        }
    }

    /// `[x; x flipped left–right]`.
    static func twoViews(_ x: Tensor) -> Tensor {
        let n = x.shape[0]
        let c = x.shape[1]
        let h = x.shape[2]
        let w = x.shape[3]
        var out = Tensor.uninitialized(shape: [2 * n, c, h, w])
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!
                let d = dst.baseAddress!
                d.update(from: s, count: x.count)
                let flipped = d + x.count
                for row in 0..<(n * c * h) {
                    for j in 0..<w { flipped[row * w + j] = s[row * w + w - 1 - j] }
                }
            }
        }
        return out
    }

    func run(images: Tensor) throws -> [JSONLine] {
        let n = images.shape[0]
        let b = options.wideBatch
        let batches = n / b
        guard batches >= 1 else {
            throw BenchError.failed(workload: "wide", reason: "--n-images \(n) < --wide-batch \(b)")
        }
        for k in 0..<4 {
            let first = (k * b) % n
            _ = stage3.forward(
                frozen.forward(CNNWorkload.gather(images, first..<Swift.min(n, first + b)), mode: .training),
                mode: .training)
        }
        var counter = 0
        func nextBatch() -> Tensor {
            let k = counter % batches
            counter += 1
            return CNNWorkload.gather(images, (k * b)..<((k + 1) * b))
        }
        var checksum: Float = 0
        let infer = timedRuns(
            warmup: options.wideWarmup, steps: options.wideSteps, runs: options.runs, itemsPerStep: b, preCount: nil
        ) { _ in
            let features = stage3.forward(frozen.forward(nextBatch(), mode: .inference), mode: .inference)
            checksum += features[flat: 0]
        }
        var out = [
            line(mode: "inference", summary: infer, steps: options.wideSteps, flopPerImage: flops.inferFlopPerItem ?? 0)
        ]
        out[0].set("first_feature_sum", Double(checksum), places: 4)

        let parameters = trained.parameters
        var lastLoss: Float = .nan
        let train = try timedRuns(
            warmup: options.wideWarmup, steps: options.wideTrainSteps, runs: options.runs, itemsPerStep: b,
            preCount: nil
        ) { _ in
            let h = frozen.forward(Self.twoViews(nextBatch()), mode: .inference)
            let z = trained.forward(h, mode: .training)
            let r = try loss.evaluate(TripletEmbeddings(z, layout: TripletLayout(batchSize: b, negativesPerAnchor: 0)))
            for p in parameters { p.zeroGradient() }
            _ = trained.backward(r.gradient)
            optimizer.update(parameters)
            lastLoss = r.value
        }
        guard lastLoss.isFinite else {
            throw BenchError.failed(workload: "wide", reason: "loss is \(lastLoss) after training")
        }
        var trainLine = line(
            mode: "train_stage3", summary: train, steps: options.wideTrainSteps, flopPerImage: flops.flopPerItem)
        trainLine.set("last_loss", Double(lastLoss), places: 5)
        out.append(trainLine)
        return out
    }

    private func line(mode: String, summary: RunSummary, steps: Int, flopPerImage: Int) -> JSONLine {
        var line = JSONLine()
        line.set("workload", "wide")
        line.set("mode", mode)
        line.set("threads", options.threads)
        line.set("batch", options.wideBatch)
        line.set("steps", steps)
        line.set("runs", options.runs)
        line.set("warmup", options.wideWarmup)
        line.set("images_per_s", summary.median, places: 2)
        line.set("min", summary.min, places: 2)
        line.set("max", summary.max, places: 2)
        line.set("per_run", summary.rates, places: 2)
        line.set("ms_per_step", 1000 * Double(options.wideBatch) / summary.median, places: 2)
        line.set("flop_per_image", flopPerImage)
        let gflops = summary.median * Double(flopPerImage) / 1e9
        line.set("achieved_gflops", gflops, places: 2)
        line.set("gemm_fraction", gflops / options.gemmPeakGFLOPS, places: 4)
        line.set("minflt_per_step", summary.minorFaultsPerStep, places: 1)
        line.set("cpu_ms_per_step", summary.cpuMillisecondsPerStep, places: 3)
        line.set("malloc", options.malloc.rawValue)
        line.set("peak_rss_mb", ProcessStats.peakResidentMiB(), places: 1)
        return line
    }
}

extension FlopModel {
    /// bench_torch.py's `wide`: inference = three stages forward; train_stage3 = two views
    /// through stages 1–2 forward and stage 3 forward + weight gradient.
    static func wide(batch: Int) -> FlopModel {
        let s1 = convMACs(3, 96, 5, 32, 32)
        let s2 = convMACs(96, 384, 3, 16, 16)
        let s3 = convMACs(384, 1536, 3, 8, 8)
        let train3 = 2 * (s1 + s2 + s3 + s3)
        return FlopModel(
            trainFlopPerStep: 2 * train3 * batch, flopPerItem: 2 * train3, inferFlopPerItem: 2 * (s1 + s2 + s3))
    }
}
