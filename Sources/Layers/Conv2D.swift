import TensorCore

/// A 2-D convolution over NCHW input with square kernels, one stride and one padding.
///
/// Parameters use PyTorch's layout: `"weight"` is `[outputChannels, inputChannels, k, k]`
/// and `"bias"` is `[outputChannels]`, so checkpoints map one to one.
///
/// The whole batch is unfolded into one patch matrix `[N·oh·ow, C·k·k]`
/// (``Im2Col/im2row(_:batch:geometry:rows:)``) and multiplied by the weight in **one**
/// SGEMM; a transpose-copy then writes NCHW and adds the bias. Backward is one GEMM for
/// the weight gradient (`dYᵀ · patches`), one for the patch gradient (`dY · W`) folded back
/// by row2im, and a column sum for the bias. The patch matrix and GEMM scratch are kept
/// between calls and only grow when a larger batch arrives.
///
/// A frozen layer (every parameter frozen) skips the parameter-gradient work; set
/// ``needsInputGradient`` to `false` on a first layer to skip the input gradient too.
///
/// `forward` and `backward` treat shapes as an internal invariant (they `precondition`):
/// callers validate with ``outputShape(for:)`` first, which throws typed errors.
public final class Conv2D: Layer {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int

    /// `[outputChannels, inputChannels, kernelSize, kernelSize]`.
    public let weight: Parameter
    /// `[outputChannels]`, or `nil` when built with `bias: false`.
    public let bias: Parameter?

    /// When `false`, ``backward(_:)`` skips the input gradient (saving one GEMM and the
    /// row2im fold) and returns zeros. Use it for a layer that reads raw data.
    public var needsInputGradient = true

    public var parameters: [Parameter] {
        if let bias { return [weight, bias] }
        return [weight]
    }

    // Scratch, reused across calls.
    private var patches = ScratchBuffer()       // [N·P, L]; holds the last training forward's patches
    private var product = ScratchBuffer()       // [N·P, O]: forward GEMM result, then the transposed dY
    private var patchGradient = ScratchBuffer()  // [N·P, L]
    /// Geometry and batch of the last training forward; `nil` after an inference forward.
    private var cached: (geometry: ConvGeometry, batch: Int)?

    /// Creates a convolution with weights drawn by `initializer` and a zero bias.
    ///
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when a
    ///   channel count, the kernel size or the stride is not positive, or padding is negative.
    ///   (As in PyTorch, padding may exceed the kernel: border outputs then see only zeros.)
    public init<G: RandomNumberGenerator>(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
        bias: Bool = true, initializer: WeightInitializer = .kaimingUniform, using generator: inout G
    ) throws {
        try Validate.positive(inputChannels, "inputChannels", layer: "Conv2D")
        try Validate.positive(outputChannels, "outputChannels", layer: "Conv2D")
        try Validate.positive(kernelSize, "kernelSize", layer: "Conv2D")
        try Validate.positive(stride, "stride", layer: "Conv2D")
        guard padding >= 0 else {
            throw LayerError.invalidConfiguration(layer: "Conv2D", option: "padding", value: "\(padding)", reason: "must be ≥ 0")
        }
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        let shape = [outputChannels, inputChannels, kernelSize, kernelSize]
        self.weight = Parameter(name: "weight", value: initializer.makeWeight(shape: shape, using: &generator))
        self.bias = bias ? Parameter(name: "bias", value: .zeros([outputChannels])) : nil
    }

    private var name: String {
        "Conv2D(\(inputChannels)→\(outputChannels), k\(kernelSize), s\(stride), p\(padding))"
    }

    private func geometry(height: Int, width: Int) -> ConvGeometry {
        ConvGeometry(
            channels: inputChannels, height: height, width: width,
            kernel: (kernelSize, kernelSize), stride: (stride, stride), padding: (padding, padding))
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4 else {
            throw LayerError.incompatibleInput(layer: name, shape: inputShape, reason: "expected rank 4 [N, C, H, W]")
        }
        guard inputShape.allSatisfy({ $0 >= 0 }), inputShape[2] > 0, inputShape[3] > 0 else {
            throw LayerError.incompatibleInput(layer: name, shape: inputShape, reason: "dimensions must be positive")
        }
        guard inputShape[1] == inputChannels else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected \(inputChannels) channels, got \(inputShape[1])")
        }
        let g = geometry(height: inputShape[2], width: inputShape[3])
        guard g.isValid else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape,
                reason: "kernel \(kernelSize) is larger than the padded input \(inputShape[2] + 2 * padding)×\(inputShape[3] + 2 * padding)")
        }
        return [inputShape[0], outputChannels, g.outputHeight, g.outputWidth]
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(s.count == 4 && s[1] == inputChannels, "\(name): input shape \(s); validate with outputShape(for:)")
        let g = geometry(height: s[2], width: s[3])
        precondition(g.isValid, "\(name): input shape \(s) too small; validate with outputShape(for:)")
        let batch = s[0], positions = g.outputPositions, rows = batch * positions
        let patchLength = g.patchLength, outChannels = outputChannels
        patches.reserve(rows * patchLength)
        product.reserve(rows * outChannels)
        var output = Tensor.uninitialized(shape: [batch, outChannels, g.outputHeight, g.outputWidth])
        input.withUnsafeBufferPointer { x in
            patches.withMutablePointer { cols in
                Im2Col.im2row(x.baseAddress!, batch: batch, geometry: g, rows: cols)
                weight.value.withUnsafeBufferPointer { w in
                    product.withMutablePointer { y in
                        // [N·P, L] × [O, L]ᵀ = [N·P, O]
                        BLAS.gemm(
                            transposeA: false, transposeB: true, m: rows, n: outChannels, k: patchLength,
                            alpha: 1, a: cols, lda: patchLength, b: w.baseAddress!, ldb: patchLength,
                            beta: 0, c: y, ldc: outChannels)
                        output.withUnsafeMutableBufferPointer { out in
                            Self.rowsToNCHW(y, batch: batch, positions: positions, channels: outChannels, into: out.baseAddress!, bias: bias?.value)
                        }
                    }
                }
            }
        }
        cached = mode == .training ? (g, batch) : nil
        return output
    }

    /// out[n, o, p] = y[(n·P + p), o] + bias[o].
    @inline(__always)
    private static func rowsToNCHW(
        _ y: UnsafePointer<Float>, batch: Int, positions: Int, channels: Int,
        into out: UnsafeMutablePointer<Float>, bias: Tensor?
    ) {
        func body(_ b: UnsafePointer<Float>?) {
            for n in 0..<batch {
                let src = y + n * positions * channels
                let dst = out + n * positions * channels
                for o in 0..<channels {
                    let shift = b?[o] ?? 0
                    let d = dst + o * positions
                    var s = src + o
                    for p in 0..<positions {
                        d[p] = s.pointee + shift
                        s += channels
                    }
                }
            }
        }
        if let bias {
            bias.withUnsafeBufferPointer { body($0.baseAddress!) }
        } else {
            body(nil)
        }
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let (g, batch) = cached else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let positions = g.outputPositions, rows = batch * positions
        let patchLength = g.patchLength, outChannels = outputChannels
        precondition(
            outputGradient.shape == [batch, outChannels, g.outputHeight, g.outputWidth],
            "\(name): output gradient shape \(outputGradient.shape) does not match the last forward")
        var inputGradient = needsInputGradient ? Tensor.zeros([batch, inputChannels, g.height, g.width]) : Tensor.zeros([0])
        let updateWeight = !weight.isFrozen
        let updateBias = bias.map { !$0.isFrozen } ?? false
        guard updateWeight || updateBias || needsInputGradient else { return inputGradient }

        product.withMutablePointer { dy in
            // dY (NCHW) → [N·P, O], the layout of the forward product; the bias gradient
            // (a sum over N and P) is taken in the same pass.
            outputGradient.withUnsafeBufferPointer { src in
                let s = src.baseAddress!
                func transpose(biasGradient db: UnsafeMutablePointer<Float>?) {
                    for n in 0..<batch {
                        let from = s + n * positions * outChannels
                        let to = dy + n * positions * outChannels
                        for o in 0..<outChannels {
                            let f = from + o * positions
                            var t = to + o
                            var sum: Float = 0
                            for p in 0..<positions {
                                let v = f[p]
                                sum += v
                                t.pointee = v
                                t += outChannels
                            }
                            db?[o] += sum
                        }
                    }
                }
                if updateBias, let bias {
                    bias.gradient.withUnsafeMutableBufferPointer { transpose(biasGradient: $0.baseAddress!) }
                } else {
                    transpose(biasGradient: nil)
                }
            }
            if updateWeight {
                patches.withPointer { cols in
                    weight.gradient.withUnsafeMutableBufferPointer { dw in
                        // dW[O, L] += dYᵀ[O, N·P] × patches[N·P, L]
                        BLAS.gemm(
                            transposeA: true, transposeB: false, m: outChannels, n: patchLength, k: rows,
                            alpha: 1, a: dy, lda: outChannels, b: cols, ldb: patchLength,
                            beta: 1, c: dw.baseAddress!, ldc: patchLength)
                    }
                }
            }
            if needsInputGradient {
                patchGradient.reserve(rows * patchLength)
                patchGradient.withMutablePointer { dcols in
                    weight.value.withUnsafeBufferPointer { w in
                        // dPatches[N·P, L] = dY[N·P, O] × W[O, L]
                        BLAS.gemm(
                            transposeA: false, transposeB: false, m: rows, n: patchLength, k: outChannels,
                            alpha: 1, a: dy, lda: outChannels, b: w.baseAddress!, ldb: patchLength,
                            beta: 0, c: dcols, ldc: patchLength)
                    }
                    inputGradient.withUnsafeMutableBufferPointer { dx in
                        Im2Col.row2imAdd(dcols, batch: batch, geometry: g, images: dx.baseAddress!)
                    }
                }
            }
        }
        return inputGradient
    }
}
