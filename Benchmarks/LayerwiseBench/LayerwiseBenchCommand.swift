import ArgumentParser
import COpenBLAS
import Foundation
import Layerwise

/// Which workload to time. l1, l2, cnn and wide are defined by the docstring of
/// shared/peer/bench_torch.py; gemm by shared/peer/gemm_peak.py.
///
/// Two workloads have no counterpart in the reference: `convs` times each convolution of
/// `cnn` alone (forward, weight gradient, input gradient) as a fraction of the SGEMM rate
/// measured in the same process; `soak` trains l1 (sampling included) for `--soak-steps`
/// steps and samples the resident memory ten times, to show it stays flat.
enum Workload: String, CaseIterable, ExpressibleByArgument {
    case l1, l2, cnn, wide, gemm, convs, soak, all
}

extension ConvolutionAlgorithm: ExpressibleByArgument {}

/// An on/off option.
enum Toggle: String, CaseIterable, ExpressibleByArgument {
    case on, off
}

/// Whether patch sampling is inside (`incl`) or outside (`excl`) the timed loop.
enum SamplingMode: String, CaseIterable, ExpressibleByArgument {
    case incl, excl
}

/// glibc allocator policy, as bench_torch.py's `--malloc`.
enum MallocPolicy: String, CaseIterable, ExpressibleByArgument {
    case tuned, glibc
}

/// Errors of the benchmark itself (bad options are reported by ArgumentParser).
enum BenchError: Error, CustomStringConvertible {
    case mallocTuningFailed
    case workloadUnavailable(workload: String, reason: String)
    case failed(workload: String, reason: String)

    var description: String {
        switch self {
        case .mallocTuningFailed:
            return "--malloc tuned: mallopt(M_MMAP_MAX / M_TRIM_THRESHOLD) failed"
        case let .workloadUnavailable(workload, reason):
            return "--workload \(workload) is not available in this build: \(reason)"
        case let .failed(workload, reason):
            return "workload \(workload) failed: \(reason)"
        }
    }
}

/// The options every workload reads; names and defaults are the reference's.
struct BenchOptions {
    var threads: Int
    var modes: [SamplingMode]
    var imageCount: Int
    var seed: Int
    var batch: Int
    var steps: Int
    var runs: Int
    var warmup: Int
    var cnnBatch: Int
    var cnnSteps: Int
    var cnnWarmup: Int
    var inferBatch: Int
    var inferSteps: Int
    var wideBatch: Int
    var wideSteps: Int
    var wideTrainSteps: Int
    var wideWarmup: Int
    /// The algorithm of every 3×3 convolution of cnn and wide.
    var convAlgorithm: ConvolutionAlgorithm
    var malloc: MallocPolicy
    /// Crop l1/l2 patches to the window the network reads (``InputTrimming``).
    var trim: Bool
    /// SGEMM GFLOP/s at `threads`, the denominator of `gemm_fraction`.
    var gemmPeakGFLOPS: Double
}

struct LayerwiseBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layerwise-bench",
        abstract: "Layerwise's side of the A/B benchmark against shared/peer/bench_torch.py.",
        discussion: """
            Prints one JSON line per measurement with the reference's fields (workload, mode, \
            threads, triplets_per_s or images_per_s, achieved_gflops, …) plus peak_rss_mb \
            (peak resident memory of the process so far) and gemm_fraction (achieved_gflops \
            divided by this process's measured SGEMM GFLOP/s at the same thread count). \
            Build with -c release. See Benchmarks/README.md.
            """)

    @Option(help: "Workload: l1 | l2 | cnn | wide | gemm | convs | soak | all (all = l1 l2 cnn wide, as the reference).")
    var workload: Workload = .all

    @Option(help: "OpenBLAS threads (BLAS.threadCount).")
    var threads: Int = 1

    @Option(parsing: .upToNextOption, help: "Patch sampling included in / excluded from the timed loop (l1, l2).")
    var modes: [SamplingMode] = [.incl, .excl]

    @Option(name: .customLong("n-images"), help: "Deterministic images to generate.")
    var imageCount: Int = 10000

    @Option(help: "Seed of the data (splitmix64), the parameters and the sampling (seed + 1).")
    var seed: Int = 0

    @Option(help: "Triplets per step (l1, l2).")
    var batch: Int = 256

    @Option(help: "Steps per timed run (l1, l2).")
    var steps: Int = 200

    @Option(help: "Timed runs; the median is reported.")
    var runs: Int = 5

    @Option(help: "Untimed warm-up steps (l1, l2).")
    var warmup: Int = 20

    @Option(name: .customLong("cnn-batch"), help: "Images per training step (cnn).")
    var cnnBatch: Int = 128

    @Option(name: .customLong("cnn-steps"), help: "Training steps per timed run (cnn).")
    var cnnSteps: Int = 20

    @Option(name: .customLong("cnn-warmup"), help: "Untimed warm-up steps (cnn training and inference).")
    var cnnWarmup: Int = 3

    @Option(name: .customLong("infer-batch"), help: "Images per inference batch (cnn).")
    var inferBatch: Int = 128

    @Option(name: .customLong("infer-steps"), help: "Inference batches per timed run (cnn).")
    var inferSteps: Int = 40

    @Option(name: .customLong("wide-batch"), help: "Images per step (wide).")
    var wideBatch: Int = 64

    @Option(name: .customLong("wide-steps"), help: "Inference batches per timed run (wide).")
    var wideSteps: Int = 10

    @Option(name: .customLong("wide-train-steps"), help: "Stage-3 training steps per timed run (wide).")
    var wideTrainSteps: Int = 5

    @Option(name: .customLong("wide-warmup"), help: "Untimed warm-up steps (wide inference and training).")
    var wideWarmup: Int = 2

    @Option(name: .customLong("conv-algorithm"), help: "3×3 convolutions of cnn and wide: automatic | im2row | winograd | winograd4x4.")
    var convAlgorithm: ConvolutionAlgorithm = .automatic

    @Option(help: "tuned: mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1) as the reference; glibc: allocator defaults.")
    var malloc: MallocPolicy = .tuned

    @Option(help: "on: crop l1/l2 patches to the top-left window the network reads (l2: 13x13 of 16x16; same embeddings and gradients, less work); off: run the whole patch, as the reference.")
    var trim: Toggle = .on

    @Option(name: .customLong("soak-steps"), help: "Steps of the soak workload (l1 training with sampling, resident memory sampled 10 times).")
    var soakSteps: Int = 10000

    @Option(name: .customLong("gemm-sizes"), parsing: .upToNextOption, help: "Matrix sizes of the gemm workload (gemm_peak.py's).")
    var gemmSizes: [Int] = [1024, 2048]

    @Option(name: .customLong("gemm-min-time"), help: "Seconds of timing per gemm size (gemm_peak.py's --min-time).")
    var gemmMinTime: Double = 2.0

    @Option(name: .customLong("gemm-min-reps"), help: "Minimum timed calls per gemm size.")
    var gemmMinReps: Int = 5

    @Option(name: .customLong("gemm-peak"), help: "SGEMM GFLOP/s for gemm_fraction; measured briefly (n=1024) when omitted.")
    var gemmPeak: Double?

    @Flag(name: .customLong("print-env"), help: "Print an environment line first.")
    var printEnv = false

    @Flag(name: .customLong("env-only"), help: "Print the environment line and exit.")
    var envOnly = false

    @Flag(name: .customLong("data-digest"), help: "Print a digest of the deterministic data and exit (to check it against the reference's).")
    var dataDigest = false

    func validate() throws {
        func positive(_ name: String, _ v: Int) throws {
            guard v >= 1 else { throw ValidationError("--\(name) must be ≥ 1, got \(v)") }
        }
        try positive("threads", threads)
        try positive("batch", batch)
        try positive("steps", steps)
        try positive("runs", runs)
        try positive("cnn-batch", cnnBatch)
        try positive("cnn-steps", cnnSteps)
        try positive("infer-batch", inferBatch)
        try positive("infer-steps", inferSteps)
        try positive("wide-batch", wideBatch)
        try positive("wide-steps", wideSteps)
        try positive("wide-train-steps", wideTrainSteps)
        guard wideWarmup >= 0 else { throw ValidationError("--wide-warmup must be ≥ 0, got \(wideWarmup)") }
        if workload == .wide || workload == .all {
            guard wideBatch <= imageCount else {
                throw ValidationError("--wide-batch (\(wideBatch)) must be ≤ --n-images (\(imageCount))")
            }
        }
        try positive("gemm-min-reps", gemmMinReps)
        try positive("soak-steps", soakSteps)
        guard warmup >= 0 else { throw ValidationError("--warmup must be ≥ 0, got \(warmup)") }
        guard cnnWarmup >= 0 else { throw ValidationError("--cnn-warmup must be ≥ 0, got \(cnnWarmup)") }
        guard imageCount >= 2 else {
            throw ValidationError("--n-images must be ≥ 2 (negatives come from another image), got \(imageCount)")
        }
        guard seed >= 0 else { throw ValidationError("--seed must be ≥ 0, got \(seed)") }
        guard !modes.isEmpty else { throw ValidationError("--modes needs at least one of incl, excl") }
        guard !gemmSizes.isEmpty, gemmSizes.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--gemm-sizes must be ≥ 1 each, got \(gemmSizes)")
        }
        guard gemmMinTime.isFinite, gemmMinTime >= 0 else {
            throw ValidationError("--gemm-min-time must be a finite number ≥ 0, got \(gemmMinTime)")
        }
        if let p = gemmPeak, !(p.isFinite && p > 0) {
            throw ValidationError("--gemm-peak must be a finite number > 0, got \(p)")
        }
        if workload == .cnn || workload == .all {
            guard inferBatch <= imageCount else {
                throw ValidationError("--infer-batch (\(inferBatch)) must be ≤ --n-images (\(imageCount))")
            }
        }
    }

    func run() throws {
        if malloc == .tuned, !ProcessStats.tuneMalloc() { throw BenchError.mallocTuningFailed }
        BLAS.threadCount = threads

        if printEnv || envOnly { emit(environmentLine()) }
        if envOnly { return }
        if dataDigest {
            emit(dataDigestLine())
            return
        }

        if workload == .gemm {
            let lines = GemmWorkload(
                sizes: gemmSizes, threads: threads, minTime: gemmMinTime, minReps: gemmMinReps,
                seed: UInt64(seed)
            ).run()
            lines.forEach(emit)
            return
        }

        let peak = gemmPeak ?? GemmWorkload.measure(n: 1024, minTime: 0.3, minReps: 5, seed: UInt64(seed)).gflopsBest
        let options = BenchOptions(
            threads: threads, modes: modes, imageCount: imageCount, seed: seed, batch: batch,
            steps: steps, runs: runs, warmup: warmup, cnnBatch: cnnBatch, cnnSteps: cnnSteps,
            cnnWarmup: cnnWarmup, inferBatch: inferBatch, inferSteps: inferSteps,
            wideBatch: wideBatch, wideSteps: wideSteps, wideTrainSteps: wideTrainSteps, wideWarmup: wideWarmup,
            convAlgorithm: convAlgorithm, malloc: malloc,
            trim: trim == .on, gemmPeakGFLOPS: peak)
        // Normalisation happens once, outside timing, as in the reference.
        let images = BenchData.images(count: imageCount, seed: UInt64(seed))
        let workloads: [Workload] = workload == .all ? [.l1, .l2, .cnn, .wide] : [workload]
        for w in workloads {
            let lines: [JSONLine]
            switch w {
            case .l1, .l2: lines = try NeuralWorkloads.triplet(w, options: options, images: images)
            case .cnn: lines = try NeuralWorkloads.cnn(options: options, images: images)
            case .wide: lines = try WideWorkload(options: options).run(images: images)
            case .convs: lines = try ConvLayerWorkload.run(options: options, images: images)
            case .soak: lines = try SoakWorkload.run(options: options, images: images, steps: soakSteps)
            case .gemm, .all: lines = []
            }
            for var line in lines {
                line.set("gemm_peak_gflops", peak, places: 2)
                line.set("layerwise", "swift")
                emit(line)
            }
        }
    }

    private func emit(_ line: JSONLine) {
        print(line.text)
        fflush(nil)  // all streams; naming `stdout` is not concurrency-safe in Swift 6
    }

    private func environmentLine() -> JSONLine {
        var line = JSONLine()
        line.set("kind", "env")
        line.set("num_threads", BLAS.threadCount)
        line.set("openblas_config", String(cString: openblas_get_config()))
        line.set("openblas_corename", String(cString: openblas_get_corename()))
        line.set("openblas_num_procs", Int(openblas_get_num_procs()))
        let env = ProcessInfo.processInfo.environment
        for key in ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"] {
            line.set(key, env[key] ?? "<unset>")
        }
        line.set("malloc", malloc.rawValue)
        return line
    }

    /// Sums and first values of the generated data, to compare with the reference's.
    private func dataDigestLine() -> JSONLine {
        let bytes = BenchData.imageBytes(count: imageCount, seed: UInt64(seed))
        let images = BenchData.images(count: imageCount, seed: UInt64(seed))
        let labels = BenchData.labels(count: imageCount, seed: UInt64(seed))
        var line = JSONLine()
        line.set("kind", "data")
        line.set("n_images", imageCount)
        line.set("seed", seed)
        line.set("byte_sum", bytes.reduce(0) { $0 + Int($1) })
        line["first_bytes"] = .array(bytes.prefix(8).map { .int(Int($0)) })
        line["first_pixels"] = .array(images.scalars.prefix(4).map { .double(Double($0)) })
        line.set("pixel_sum", images.scalars.reduce(0.0) { $0 + Double($1) })
        line.set("label_sum", labels.reduce(0, +))
        line["first_labels"] = .array(labels.prefix(8).map { .int($0) })
        return line
    }
}
