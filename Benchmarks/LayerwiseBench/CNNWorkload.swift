import Layerwise

/// Workload cnn (bench_torch.py): the downstream CIFAR-sized classifier, 32×32×3 → 10.
///
/// conv(3→64, 5, p2) ReLU pool2 → conv(64→128, 5, p2) ReLU pool2 → conv(128→256, 3, p1)
/// ReLU pool2 → Flatten → Linear(4096→10), softmax cross-entropy, SGD(0.01, momentum 0.9).
///
/// Training: each step draws B image indices uniformly with replacement (seed + 1), gathers
/// them and their labels (inside the timing, as the reference), and trains one step.
/// Inference: consecutive batches `k·IB ..< (k+1)·IB` (k cycles over N / IB), forward in
/// inference mode and argmax per row.
final class CNNWorkload {
    let options: BenchOptions
    let network: Sequential
    let optimizer: SGD
    let loss = SoftmaxCrossEntropy()
    let flops: FlopModel

    init(options: BenchOptions) throws {
        self.options = options
        var generator = SeededGenerator(seed: UInt64(options.seed))
        let conv1 = try Conv2D(inputChannels: 3, outputChannels: 64, kernelSize: 5, stride: 1, padding: 2, using: &generator)
        conv1.needsInputGradient = false  // its input is data (the FLOP model counts no dgrad for conv1)
        network = Sequential([
            conv1, ReLU(), try MaxPool2D(kernelSize: 2, stride: 2),
            try Conv2D(inputChannels: 64, outputChannels: 128, kernelSize: 5, stride: 1, padding: 2, using: &generator),
            ReLU(), try MaxPool2D(kernelSize: 2, stride: 2),
            try Conv2D(inputChannels: 128, outputChannels: 256, kernelSize: 3, stride: 1, padding: 1,
                       algorithm: options.convAlgorithm, using: &generator),
            ReLU(), try MaxPool2D(kernelSize: 2, stride: 2),
            Flatten(),
            try Linear(inputFeatures: 256 * 4 * 4, outputFeatures: 10, using: &generator),
        ])
        optimizer = SGD(learningRate: TripletWorkload.learningRate, momentum: TripletWorkload.momentum)
        try optimizer.validate()
        flops = FlopModel.cnn(batch: options.cnnBatch)
        for batch in [options.cnnBatch, options.inferBatch] {
            let shape = try network.outputShape(for: [batch, BenchData.channels, BenchData.imageSide, BenchData.imageSide])
            guard shape == [batch, 10] else {
                throw BenchError.failed(workload: "cnn", reason: "logits shape \(shape) is not [\(batch), 10]")
            }
        }
    }

    /// Copies images `indices` into one `[count, 3, 32, 32]` batch.
    static func gather(_ images: Tensor, _ indices: some Collection<Int>) -> Tensor {
        let size = BenchData.channels * BenchData.imageSide * BenchData.imageSide
        var batch = Tensor.uninitialized(shape: [indices.count, BenchData.channels, BenchData.imageSide, BenchData.imageSide])
        images.withUnsafeBufferPointer { src in
            batch.withUnsafeMutableBufferPointer { dst in
                for (k, i) in indices.enumerated() {
                    (dst.baseAddress! + k * size).update(from: src.baseAddress! + i * size, count: size)
                }
            }
        }
        return batch
    }

    func run(images: Tensor) throws -> [JSONLine] {
        let n = images.shape[0]
        let labels = BenchData.labels(count: n, seed: UInt64(options.seed))
        var generator = SeededGenerator(seed: UInt64(options.seed) &+ 1)
        let b = options.cnnBatch
        let parameters = network.parameters
        var lastLoss: Float = .nan
        var indices = [Int](repeating: 0, count: b)
        var batchLabels = [Int](repeating: 0, count: b)

        let train = try timedRuns(
            warmup: options.cnnWarmup, steps: options.cnnSteps, runs: options.runs, itemsPerStep: b, preCount: nil
        ) { _ in
            for k in 0..<b {
                indices[k] = generator.nextInt(below: n)
                batchLabels[k] = labels[indices[k]]
            }
            let x = Self.gather(images, indices)
            let logits = network.forward(x, mode: .training)
            let (value, gradient) = try loss.evaluate(logits: logits, labels: batchLabels)
            for p in parameters { p.zeroGradient() }
            _ = network.backward(gradient)
            optimizer.update(parameters)
            lastLoss = value
        }
        guard lastLoss.isFinite else { throw BenchError.failed(workload: "cnn", reason: "loss is \(lastLoss) after training") }
        var out: [JSONLine] = []
        var line = JSONLine()
        line.set("workload", "cnn")
        line.set("mode", "train")
        line.set("threads", options.threads)
        line.set("batch", b)
        line.set("steps", options.cnnSteps)
        line.set("runs", options.runs)
        line.set("warmup", options.cnnWarmup)
        line.set("images_per_s", train.median, places: 2)
        line.set("min", train.min, places: 2)
        line.set("max", train.max, places: 2)
        line.set("per_run", train.rates, places: 2)
        line.set("ms_per_step", 1000 * Double(b) / train.median, places: 2)
        line.set("flop_per_image", flops.flopPerItem)
        line.set("train_gflop_per_step", Double(flops.trainFlopPerStep) / 1e9, places: 3)
        let trainGFLOPS = train.median * Double(flops.flopPerItem) / 1e9
        line.set("achieved_gflops", trainGFLOPS, places: 2)
        line.set("gemm_fraction", trainGFLOPS / options.gemmPeakGFLOPS, places: 4)
        line.set("minflt_per_step", train.minorFaultsPerStep, places: 1)
        line.set("cpu_ms_per_step", train.cpuMillisecondsPerStep, places: 3)
        line.set("malloc", options.malloc.rawValue)
        line.set("last_loss", Double(lastLoss), places: 5)
        line.set("peak_rss_mb", ProcessStats.peakResidentMiB(), places: 1)
        out.append(line)

        let ib = options.inferBatch
        let batches = n / ib
        var counter = 0
        var predictions = [Int](repeating: 0, count: ib)
        let infer = timedRuns(
            warmup: options.cnnWarmup, steps: options.inferSteps, runs: options.runs, itemsPerStep: ib, preCount: nil
        ) { _ in
            let k = counter % batches
            counter += 1
            let x = Self.gather(images, (k * ib)..<((k + 1) * ib))
            let logits = network.forward(x, mode: .inference)
            logits.withUnsafeBufferPointer { l in
                for r in 0..<ib {
                    var best = 0
                    for c in 1..<10 where l[r * 10 + c] > l[r * 10 + best] { best = c }
                    predictions[r] = best
                }
            }
        }
        let inferFlop = flops.inferFlopPerItem ?? 0
        let inferGFLOPS = infer.median * Double(inferFlop) / 1e9
        line = JSONLine()
        line.set("workload", "cnn")
        line.set("mode", "inference")
        line.set("threads", options.threads)
        line.set("batch", ib)
        line.set("steps", options.inferSteps)
        line.set("runs", options.runs)
        line.set("warmup", options.cnnWarmup)
        line.set("images_per_s", infer.median, places: 2)
        line.set("min", infer.min, places: 2)
        line.set("max", infer.max, places: 2)
        line.set("per_run", infer.rates, places: 2)
        line.set("flop_per_image", inferFlop)
        line.set("achieved_gflops", inferGFLOPS, places: 2)
        line.set("gemm_fraction", inferGFLOPS / options.gemmPeakGFLOPS, places: 4)
        line.set("minflt_per_step", infer.minorFaultsPerStep, places: 1)
        line.set("cpu_ms_per_step", infer.cpuMillisecondsPerStep, places: 3)
        line.set("malloc", options.malloc.rawValue)
        line.set("peak_rss_mb", ProcessStats.peakResidentMiB(), places: 1)
        // Keeps the argmax from being optimised away and is a cheap sanity check.
        line.set("last_prediction_sum", predictions.reduce(0, +))
        out.append(line)
        return out
    }
}

extension NeuralWorkloads {
    static func cnn(options: BenchOptions, images: Tensor) throws -> [JSONLine] {
        try CNNWorkload(options: options).run(images: images)
    }
}
