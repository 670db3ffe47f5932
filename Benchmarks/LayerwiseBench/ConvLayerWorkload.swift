import Layerwise

/// Workload `convs` (ours only): each convolution of the `cnn` workload (batch
/// `--cnn-batch`) and of the `wide` stack (batch `--wide-batch`; stages 1 and 3 without
/// input gradient, as in train_stage3) timed alone, so its GFLOP/s can be set against the
/// SGEMM rate measured in the same process. 3×3 convolutions use `--conv-algorithm`; the
/// FLOPs are always im2row's, so a Winograd layer can exceed the SGEMM rate.
///
/// Per layer, on a batch of `--cnn-batch` random inputs: the training forward (im2row +
/// one SGEMM + the NCHW transpose and bias), then the backward (weight-gradient GEMM, bias
/// sum, and — except for conv1, whose input is data — the input-gradient GEMM and the
/// row2im fold). FLOPs are the FLOP model's: 2 per MAC, forward = 1 MAC set, backward =
/// 1 (conv1) or 2. Throughput is the median over `--runs` runs of `--cnn-steps` calls.
enum ConvLayerWorkload {
    struct Spec {
        var name: String
        var inputChannels: Int, outputChannels: Int, kernel: Int, padding: Int, side: Int
        var needsInputGradient: Bool
        var wide = false
    }

    static let specs = [
        Spec(
            name: "conv1", inputChannels: 3, outputChannels: 64, kernel: 5, padding: 2, side: 32,
            needsInputGradient: false),
        Spec(
            name: "conv2", inputChannels: 64, outputChannels: 128, kernel: 5, padding: 2, side: 16,
            needsInputGradient: true),
        Spec(
            name: "conv3", inputChannels: 128, outputChannels: 256, kernel: 3, padding: 1, side: 8,
            needsInputGradient: true),
        Spec(
            name: "wide1", inputChannels: 3, outputChannels: 96, kernel: 5, padding: 2, side: 32,
            needsInputGradient: false, wide: true),
        Spec(
            name: "wide2", inputChannels: 96, outputChannels: 384, kernel: 3, padding: 1, side: 16,
            needsInputGradient: true, wide: true),
        Spec(
            name: "wide3", inputChannels: 384, outputChannels: 1536, kernel: 3, padding: 1, side: 8,
            needsInputGradient: false, wide: true),
    ]

    static func run(options: BenchOptions, images: Tensor) throws -> [JSONLine] {
        var generator = SeededGenerator(seed: UInt64(options.seed) &+ 7)
        var lines: [JSONLine] = []
        var totalFlop = 0.0, totalSeconds = 0.0
        for spec in specs {
            let b = spec.wide ? options.wideBatch : options.cnnBatch
            let conv = try Conv2D(
                inputChannels: spec.inputChannels, outputChannels: spec.outputChannels, kernelSize: spec.kernel,
                padding: spec.padding, algorithm: spec.kernel == 3 ? options.convAlgorithm : .automatic,
                using: &generator)
            conv.needsInputGradient = spec.needsInputGradient
            let input = Tensor.normal([b, spec.inputChannels, spec.side, spec.side], using: &generator)
            let outShape = try conv.outputShape(for: input.shape)
            let outputGradient = Tensor.normal(outShape, using: &generator)
            let macs = Double(
                FlopModel.convMACs(spec.inputChannels, spec.outputChannels, spec.kernel, outShape[2], outShape[3]) * b)
            let forwardFlop = 2 * macs
            let backwardFlop = 2 * macs * (spec.needsInputGradient ? 2 : 1)

            var sink: Float = 0
            let forward = timedRuns(
                warmup: options.cnnWarmup, steps: options.cnnSteps, runs: options.runs, itemsPerStep: 1, preCount: nil
            ) { _ in
                // A write to the weight, as the optimizer's each step: the forward must
                // transform it again (Winograd caches transformed weights until they change).
                conv.weight.value.withUnsafeMutableBufferPointer { $0[0] += 0 }
                let y = conv.forward(input, mode: .training)
                sink += y[flat: 0]
            }
            let backward = timedRuns(
                warmup: options.cnnWarmup, steps: options.cnnSteps, runs: options.runs, itemsPerStep: 1, preCount: nil
            ) { _ in
                let dx = conv.backward(outputGradient)
                sink += dx.count > 0 ? dx[flat: 0] : 0
            }
            // The forward's SGEMM alone ([B·P, C·k·k] · [C·k·k, O], as Conv2D calls it): the
            // ceiling OpenBLAS sets for this shape, whatever the convolution does around it.
            let rows = b * outShape[2] * outShape[3], depth = spec.inputChannels * spec.kernel * spec.kernel
            let a = Tensor.normal([rows, depth], using: &generator)
            let w = Tensor.normal([spec.outputChannels, depth], using: &generator)
            var c = Tensor.zeros([rows, spec.outputChannels])
            let gemmOnly = timedRuns(
                warmup: options.cnnWarmup, steps: options.cnnSteps, runs: options.runs, itemsPerStep: 1, preCount: nil
            ) { _ in
                a.withUnsafeBufferPointer { pa in
                    w.withUnsafeBufferPointer { pw in
                        c.withUnsafeMutableBufferPointer { pc in
                            BLAS.gemm(
                                transposeA: false, transposeB: true, m: rows, n: spec.outputChannels, k: depth,
                                alpha: 1, a: pa.baseAddress!, lda: depth, b: pw.baseAddress!, ldb: depth,
                                beta: 0, c: pc.baseAddress!, ldc: spec.outputChannels)
                        }
                    }
                }
            }
            let gemmShapeGFLOPS = forwardFlop * gemmOnly.median / 1e9
            let fwdSeconds = 1 / forward.median, bwdSeconds = 1 / backward.median
            if !spec.wide {
                totalFlop += forwardFlop + backwardFlop
                totalSeconds += fwdSeconds + bwdSeconds
            }
            for (pass, seconds, flop) in [
                ("forward", fwdSeconds, forwardFlop), ("backward", bwdSeconds, backwardFlop),
                ("train", fwdSeconds + bwdSeconds, forwardFlop + backwardFlop),
            ] {
                var line = rateLine(
                    mode: "\(spec.name)_\(pass)", seconds: seconds, flop: flop, batch: b, options: options)
                line.set(
                    "winograd",
                    conv.usesWinograd(
                        for: ConvGeometry(
                            channels: spec.inputChannels, height: spec.side, width: spec.side,
                            kernel: (spec.kernel, spec.kernel), padding: (spec.padding, spec.padding))) ? 1 : 0)
                line.set("sgemm_same_shape_gflops", gemmShapeGFLOPS, places: 2)
                line.set("gemm_shape", "\(rows)x\(depth)x\(spec.outputChannels)")
                line.set("sink", Double(sink.isFinite ? 0 : 1))
                lines.append(line)
            }
        }
        var line = rateLine(
            mode: "all_train", seconds: totalSeconds, flop: totalFlop, batch: options.cnnBatch, options: options)
        line.set("peak_rss_mb", ProcessStats.peakResidentMiB(), places: 1)
        lines.append(line)
        return lines
    }

    /// The fields every `convs` line has: time per call, GFLOP/s and the fraction of SGEMM.
    private static func rateLine(
        mode: String, seconds: Double, flop: Double, batch: Int, options: BenchOptions
    ) -> JSONLine {
        var line = JSONLine()
        line.set("workload", "convs")
        line.set("mode", mode)
        line.set("threads", options.threads)
        line.set("batch", batch)
        line.set("ms_per_call", 1000 * seconds, places: 3)
        line.set("achieved_gflops", flop / seconds / 1e9, places: 2)
        line.set("gemm_fraction", flop / seconds / 1e9 / options.gemmPeakGFLOPS, places: 4)
        return line
    }
}
