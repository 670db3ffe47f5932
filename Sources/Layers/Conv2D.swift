import CKernels
import Dispatch
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
public final class Conv2D: InputGradientSkipping {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int

    /// `[outputChannels, inputChannels, kernelSize, kernelSize]`.
    public let weight: Parameter
    /// `[outputChannels]`, or `nil` when built with `bias: false`.
    public let bias: Parameter?

    /// The requested algorithm; ``usesWinograd(for:)`` says what a given input runs.
    public let algorithm: ConvolutionAlgorithm

    /// When `false`, ``backward(_:)`` skips the input gradient (saving one GEMM and the
    /// row2im fold) and returns zeros. Use it for a layer that reads raw data.
    public var needsInputGradient = true

    public var parameters: [Parameter] {
        if let bias { return [weight, bias] }
        return [weight]
    }

    // Scratch, reused across calls.
    private var patches = ScratchBuffer()  // [N·P, L]; holds the last training forward's patches
    private var product = ScratchBuffer()  // [N·P, O]: forward GEMM result, then the transposed dY
    private var patchGradient = ScratchBuffer()  // [chunk·P, L], see backward
    /// Target size (floats) of the patch-gradient chunk: 8 MB, about the L2/L3 boundary.
    static let patchGradientChunkElements = 1 << 21
    /// Geometry and batch of the last training forward; `nil` after an inference forward.
    private var cached: (geometry: ConvGeometry, batch: Int)?
    /// Whether the last training forward ran the Winograd path.
    private var cachedWinograd = false
    /// Whether the last training forward ran per image (its patches kept per image, unless it
    /// convolved directly).
    private var cachedPerImage = false
    /// The input of the last training forward when it convolved directly (``usesDirectForward(_:)``):
    /// backward forms the weight gradient from it with a direct kernel, so no patches are kept.
    private var cachedDirectInput: Tensor?
    private var directGradientScratch = ScratchBuffer()  // per worker: lw_conv2d_direct_weight_gradient's scratch
    private var partialGradients = ScratchBuffer()  // per chunk of images: [O·L] weight, then [O] bias
    /// Images per weight-gradient partial of the per-image backward: a fixed size (not the
    /// thread count), so the sums, and the gradients, are the same bits for every thread count.
    static let weightGradientChunkImages = 8
    private lazy var winograd = WinogradConvolution()

    /// Creates a convolution with weights drawn by `initializer` and a zero bias.
    ///
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when a
    ///   channel count, the kernel size or the stride is not positive, or padding is negative,
    ///   or `algorithm` is `.winograd` for a kernel other than 3×3 with stride 1.
    ///   (As in PyTorch, padding may exceed the kernel: border outputs then see only zeros.)
    public init<G: RandomNumberGenerator>(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
        bias: Bool = true, initializer: WeightInitializer = .kaimingUniform,
        algorithm: ConvolutionAlgorithm = .automatic, using generator: inout G
    ) throws {
        try Validate.positive(inputChannels, "inputChannels", layer: "Conv2D")
        try Validate.positive(outputChannels, "outputChannels", layer: "Conv2D")
        try Validate.positive(kernelSize, "kernelSize", layer: "Conv2D")
        try Validate.positive(stride, "stride", layer: "Conv2D")
        guard padding >= 0 else {
            throw LayerError.invalidConfiguration(
                layer: "Conv2D", option: "padding", value: "\(padding)", reason: "must be ≥ 0")
        }
        let winogradKernels = algorithm == .winograd ? [3, 5] : algorithm == .winograd4x4 ? [3] : nil
        if let winogradKernels, !winogradKernels.contains(kernelSize) || stride != 1 {
            throw LayerError.invalidConfiguration(
                layer: "Conv2D", option: "algorithm", value: algorithm.rawValue,
                reason: "needs stride 1 and kernelSize \(winogradKernels.map(String.init).joined(separator: " or ")), "
                    + "got kernelSize \(kernelSize), stride \(stride)")
        }
        self.algorithm = algorithm
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
        let g = try ConvGeometry.validated(
            layer: name, inputShape: inputShape, channels: inputChannels, kernel: kernelSize, stride: stride,
            padding: padding)
        return [inputShape[0], outputChannels, g.outputHeight, g.outputWidth]
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(
            s.count == 4 && s[1] == inputChannels, "\(name): input shape \(s); validate with outputShape(for:)")
        let g = geometry(height: s[2], width: s[3])
        precondition(g.isValid, "\(name): input shape \(s) too small; validate with outputShape(for:)")
        let batch = s[0], positions = g.outputPositions, outChannels = outputChannels
        let training = mode == .training
        var output = Tensor.uninitialized(shape: [batch, outChannels, g.outputHeight, g.outputWidth])
        cachedWinograd = training && usesWinograd(for: g)
        let perImage =
            positions >= Self.directLayoutMinPositions && outChannels * g.patchLength <= Self.directLayoutMaxWeight
        cachedPerImage = training && !cachedWinograd && perImage
        cachedDirectInput = cachedPerImage && Self.usesDirectForward(g) ? input : nil
        if usesWinograd(for: g) {
            forwardWinograd(input, geometry: g, batch: batch, training: training, into: &output)
        } else if perImage {
            forwardPerImage(input, geometry: g, batch: batch, training: training, into: &output)
        } else {
            forwardWholeBatch(input, geometry: g, batch: batch, into: &output)
        }
        cached = training ? (g, batch) : nil
        return output
    }

    /// Whether an input of geometry `g` runs a Winograd transform: always with `.winograd`
    /// or `.winograd4x4`, never with `.im2row`; with `.automatic` for 3×3 stride-1 windows
    /// with at least 16 input and output channels and 16 output positions (below that the
    /// transforms cost more than the GEMM FLOPs they save): F(4×4, 3×3) from an 8×8
    /// output on, F(2×2, 3×3) below (measured on the wide stack: F(4×4) takes 30 % less
    /// CPU time per inference batch than F(2×2), which takes 40 % less than im2row);
    /// F(2×2, 5×5) for 5×5 stride-1 windows.
    public func usesWinograd(for g: ConvGeometry) -> Bool { winogradVariant(for: g) != nil }

    func winogradVariant(for g: ConvGeometry) -> WinogradVariant? {
        switch algorithm {
        case .winograd: return kernelSize == 5 ? .f2x2k5 : .f2x2
        case .winograd4x4: return .f4x4
        case .im2row: return nil
        case .automatic:
            guard inputChannels >= 16 && outputChannels >= 16 && g.outputPositions >= 16 else { return nil }
            if Winograd5x5.supports(g) { return .f2x2k5 }
            guard Winograd.supports(g) else { return nil }
            return g.outputHeight >= 8 && g.outputWidth >= 8 ? .f4x4 : .f2x2
        }
    }

    private func forwardWinograd(
        _ input: Tensor, geometry g: ConvGeometry, batch: Int, training: Bool, into output: inout Tensor
    ) {
        let shape = WinogradConvolution.Shape(
            variant: winogradVariant(for: g)!, geometry: g, batch: batch, outputs: outputChannels)
        let engine = winograd, w = weight.value
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { out in
                func run(_ b: UnsafePointer<Float>?) {
                    engine.forward(
                        x.baseAddress!, weight: w, bias: b, shape: shape, training: training, into: out.baseAddress!)
                }
                if let bias { bias.value.withUnsafeBufferPointer { run($0.baseAddress!) } } else { run(nil) }
            }
        }
    }

    private func backwardWinograd(
        _ outputGradient: Tensor, updateWeight: Bool, updateBias: Bool, into inputGradient: inout Tensor
    ) {
        let engine = winograd, wantsInput = needsInputGradient
        outputGradient.withUnsafeBufferPointer { dy in
            func withWeightGradient(_ body: (UnsafeMutablePointer<Float>?) -> Void) {
                if updateWeight {
                    weight.gradient.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
                } else {
                    body(nil)
                }
            }
            func withBiasGradient(_ body: (UnsafeMutablePointer<Float>?) -> Void) {
                if updateBias, let bias {
                    bias.gradient.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
                } else {
                    body(nil)
                }
            }
            withWeightGradient { dw in
                withBiasGradient { db in
                    inputGradient.withUnsafeMutableBufferPointer { dx in
                        engine.backward(
                            dy.baseAddress!, outputs: outputChannels, weightGradient: dw, biasGradient: db,
                            inputGradient: wantsInput ? dx.baseAddress! : nil)
                    }
                }
            }
        }
    }

    /// Below this many output positions per image, one whole-batch GEMM plus a transpose
    /// beats per-image GEMMs (tiny GEMMs are dominated by call and packing overhead).
    static let directLayoutMinPositions = 64
    /// Above this many weight elements (128 KB), per-image GEMMs lose: OpenBLAS repacks the
    /// weight on every call (measured on the cnn workload: +3 % CPU per step with per-image
    /// GEMMs for the 128×1600 and 256×1152 weights).
    static let directLayoutMaxWeight = 32_768

    /// One GEMM per image, `out[n] (O×P) = W (O×L) · patches[n]ᵀ (L×P)`, which lands in NCHW
    /// directly (no transpose pass) and uses the image's patch rows right after im2row wrote
    /// them, while they are still in cache. The bias is added afterwards, not pre-filled with
    /// β = 1: OpenBLAS splits long k-sums into blocks (patch length above ~320 here) and a
    /// pre-filled bias would join the first block, changing the rounding; added last, every
    /// output is bit-identical to the whole-batch path (tested). In inference only one
    /// image's patches are kept.
    ///
    /// With more than one BLAS thread the images are split across that many workers, each
    /// running its GEMMs on one thread: OpenBLAS would otherwise wake its pool for every
    /// small per-image GEMM (768 per l2 step), and measured at 2 threads that
    /// synchronisation made whole processes run at half speed with twice the CPU time.
    /// Each GEMM computes the same sums either way, so outputs are bit-identical (tested).
    private func forwardPerImage(
        _ input: Tensor, geometry g: ConvGeometry, batch: Int, training: Bool, into output: inout Tensor
    ) {
        let positions = g.outputPositions, patchLength = g.patchLength, outChannels = outputChannels
        let imageSize = inputChannels * g.height * g.width, imagePatches = positions * patchLength
        let threads = BLAS.threadCount
        let workers = Swift.min(threads, batch)
        // A direct forward needs no patch slots, and its backward works from the input.
        let direct = Self.usesDirectForward(g)
        if !direct { patches.reserve((training ? batch : workers) * imagePatches) }
        let biasValue = bias?.value
        let shape = PerImageShape(
            geometry: g, outChannels: outChannels, imageSize: imageSize, imagePatches: imagePatches,
            keepsPatches: training && !direct)
        input.withUnsafeBufferPointer { x in
            patches.withMutablePointer { cols in
                weight.value.withUnsafeBufferPointer { w in
                    output.withUnsafeMutableBufferPointer { out in
                        func runAll(bias b: UnsafePointer<Float>?) {
                            let p = PerImagePointers(
                                x: x.baseAddress!, w: w.baseAddress!, out: out.baseAddress!, cols: cols, bias: b)
                            guard workers > 1 else { return Self.forwardImages(0..<batch, slot: 0, p, shape) }
                            BLAS.threadCount = 1
                            defer { BLAS.threadCount = threads }
                            Self.forEachWorker(batch: batch, threads: workers) { k, r in
                                Self.forwardImages(r, slot: k, p, shape)
                            }
                        }
                        if let biasValue {
                            biasValue.withUnsafeBufferPointer { runAll(bias: $0.baseAddress!) }
                        } else {
                            runAll(bias: nil)
                        }
                    }
                }
            }
        }
    }

    /// Sizes of the per-image forward.
    private struct PerImageShape: Sendable {
        var geometry: ConvGeometry
        var outChannels: Int, imageSize: Int, imagePatches: Int
        var keepsPatches: Bool
    }

    /// The buffers of one per-image forward. `@unchecked`: workers write disjoint images
    /// and patch slots, and the buffers outlive `concurrentPerform`.
    private struct PerImagePointers: @unchecked Sendable {
        var x: UnsafePointer<Float>, w: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>
        var cols: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?
    }

    /// im2row, GEMM and bias for images `range`, using patch slot `slot` when the patches
    /// are not kept for backward.
    private static func forwardImages(_ range: Range<Int>, slot: Int, _ p: PerImagePointers, _ s: PerImageShape) {
        let g = s.geometry, positions = g.outputPositions, patchLength = g.patchLength
        if usesDirectForward(g) { return forwardImagesDirect(range, p, s) }
        for n in range {
            let colsN = p.cols + (s.keepsPatches ? n : slot) * s.imagePatches
            Im2Col.im2row(p.x + n * s.imageSize, batch: 1, geometry: g, rows: colsN)
            let outN = p.out + n * s.outChannels * positions
            BLAS.gemm(
                transposeA: false, transposeB: true, m: s.outChannels, n: positions, k: patchLength,
                alpha: 1, a: p.w, lda: patchLength, b: colsN, ldb: patchLength,
                beta: 0, c: outN, ldc: positions)
            if let b = p.bias {
                for o in 0..<s.outChannels {
                    let row = outN + o * positions, shift = b[o]
                    for q in 0..<positions { row[q] += shift }
                }
            }
        }
    }

    /// Whether the per-image forward convolves directly (CKernels) instead of im2row + GEMM:
    /// stride 1 and at most four input channels, where the GEMM's inner dimension (the patch
    /// length, 75 for a 5×5 RGB layer) is too short for OpenBLAS to run near its peak.
    public static func usesDirectForward(_ g: ConvGeometry) -> Bool {
        g.strideY == 1 && g.strideX == 1 && g.channels <= 4
    }

    /// The direct forward of images `range` (no patches: the backward of a direct layer
    /// forms the weight gradient from the input, ``backwardPerImage``).
    private static func forwardImagesDirect(_ range: Range<Int>, _ p: PerImagePointers, _ s: PerImageShape) {
        let g = s.geometry
        let scratch = lw_conv2d_direct_scratch_count(
            g.channels, g.height, g.width, g.kernelHeight, g.kernelWidth, g.paddingY, g.paddingX)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: scratch) { padded in
            for n in range {
                lw_conv2d_direct(
                    p.x + n * s.imageSize, g.channels, g.height, g.width, p.w, s.outChannels, g.kernelHeight,
                    g.kernelWidth, g.paddingY, g.paddingX, p.bias, p.out + n * s.outChannels * g.outputPositions,
                    padded.baseAddress!)
            }
        }
    }

    /// Calls `body(worker, images)` for disjoint ranges of the batch, one per BLAS thread,
    /// on that many workers (just once, inline, with one thread). Loops whose images are
    /// independent give the same bits either way.
    private static func forEachWorker(
        batch: Int, threads: Int = BLAS.threadCount, _ body: @Sendable (_ worker: Int, _ images: Range<Int>) -> Void
    ) {
        let workers = Swift.min(threads, batch)
        guard workers > 1 else { return body(0, 0..<batch) }
        DispatchQueue.concurrentPerform(iterations: workers) { k in
            body(k, k * batch / workers..<(k + 1) * batch / workers)
        }
    }

    /// im2row of the batch, images split across workers (each writes its own rows).
    private static func im2rowAcrossWorkers(
        _ x: UnsafePointer<Float>, batch: Int, geometry g: ConvGeometry, rows: UnsafeMutablePointer<Float>
    ) {
        let p = PerImagePointers(x: x, w: x, out: rows, cols: rows, bias: nil)
        let imageSize = g.channels * g.height * g.width, imageRows = g.outputPositions * g.patchLength
        forEachWorker(batch: batch) { _, r in
            Im2Col.im2row(
                p.x + r.lowerBound * imageSize, batch: r.count, geometry: g, rows: p.cols + r.lowerBound * imageRows)
        }
    }

    /// The adjoint: each worker folds its own images' rows into its own images, so every
    /// sum keeps its order.
    private static func row2imAcrossWorkers(
        _ rows: UnsafePointer<Float>, batch: Int, geometry g: ConvGeometry, images: UnsafeMutablePointer<Float>
    ) {
        let p = PerImagePointers(x: rows, w: rows, out: images, cols: images, bias: nil)
        let imageSize = g.channels * g.height * g.width, imageRows = g.outputPositions * g.patchLength
        forEachWorker(batch: batch) { _, r in
            Im2Col.row2imAdd(
                p.x + r.lowerBound * imageRows, batch: r.count, geometry: g, images: p.out + r.lowerBound * imageSize)
        }
    }

    /// One GEMM for the whole batch into `[N·P, O]`, then a transpose to NCHW with the bias.
    private func forwardWholeBatch(_ input: Tensor, geometry g: ConvGeometry, batch: Int, into output: inout Tensor) {
        let positions = g.outputPositions, rows = batch * positions
        let patchLength = g.patchLength, outChannels = outputChannels
        patches.reserve(rows * patchLength)
        product.reserve(rows * outChannels)
        input.withUnsafeBufferPointer { x in
            patches.withMutablePointer { cols in
                Self.im2rowAcrossWorkers(x.baseAddress!, batch: batch, geometry: g, rows: cols)
                weight.value.withUnsafeBufferPointer { w in
                    product.withMutablePointer { y in
                        // [N·P, L] × [O, L]ᵀ = [N·P, O]
                        BLAS.gemm(
                            transposeA: false, transposeB: true, m: rows, n: outChannels, k: patchLength,
                            alpha: 1, a: cols, lda: patchLength, b: w.baseAddress!, ldb: patchLength,
                            beta: 0, c: y, ldc: outChannels)
                        output.withUnsafeMutableBufferPointer { out in
                            // Disjoint images per worker, as im2row above.
                            let p = PerImagePointers(x: y, w: y, out: out.baseAddress!, cols: y, bias: nil)
                            let imageSize = positions * outChannels, biasValue = bias?.value
                            Self.forEachWorker(batch: batch) { _, r in
                                Self.rowsToNCHW(
                                    p.x + r.lowerBound * imageSize, batch: r.count, positions: positions,
                                    channels: outChannels,
                                    into: p.out + r.lowerBound * imageSize, bias: biasValue)
                            }
                        }
                    }
                }
            }
        }
    }

    /// out[n, o, p] = y[(n·P + p), o] + bias[o].
    @inline(__always)
    private static func rowsToNCHW(
        _ y: UnsafePointer<Float>, batch: Int, positions: Int, channels: Int,
        into out: UnsafeMutablePointer<Float>, bias: Tensor?
    ) {
        func body(_ b: UnsafePointer<Float>?) {
            // 4×4 blocks: four contiguous SIMD4 loads of rows, a register transpose, four
            // contiguous stores (instead of one strided scalar load per element). Each output
            // is still the single rounding of `y + bias`, so results are bit-identical.
            let o4 = channels & ~3, p4 = positions & ~3
            for n in 0..<batch {
                let src = y + n * positions * channels
                let dst = out + n * positions * channels
                var o = 0
                while o < o4 {
                    let shift = b.map { UnsafeRawPointer($0 + o).loadUnaligned(as: SIMD4<Float>.self) } ?? .zero
                    var p = 0
                    while p < p4 {
                        let r0 = UnsafeRawPointer(src + p * channels + o).loadUnaligned(as: SIMD4<Float>.self)
                        let r1 = UnsafeRawPointer(src + (p + 1) * channels + o).loadUnaligned(as: SIMD4<Float>.self)
                        let r2 = UnsafeRawPointer(src + (p + 2) * channels + o).loadUnaligned(as: SIMD4<Float>.self)
                        let r3 = UnsafeRawPointer(src + (p + 3) * channels + o).loadUnaligned(as: SIMD4<Float>.self)
                        for j in 0..<4 {
                            let c = SIMD4<Float>(r0[j], r1[j], r2[j], r3[j]) + SIMD4(repeating: shift[j])
                            UnsafeMutableRawPointer(dst + (o + j) * positions + p).storeBytes(
                                of: c, as: SIMD4<Float>.self)
                        }
                        p += 4
                    }
                    for j in 0..<4 {
                        let d = dst + (o + j) * positions
                        for q in p4..<positions { d[q] = src[q * channels + o + j] + shift[j] }
                    }
                    o += 4
                }
                while o < channels {
                    let shift = b?[o] ?? 0
                    let d = dst + o * positions
                    for q in 0..<positions { d[q] = src[q * channels + o] + shift }
                    o += 1
                }
            }
        }
        if let bias {
            bias.withUnsafeBufferPointer { body($0.baseAddress!) }
        } else {
            body(nil)
        }
    }

    /// Which gradients a per-image backward forms.
    private struct PerImageBackward: Sendable {
        var weight: Bool, bias: Bool, input: Bool
    }

    /// Backward of the per-image forward, straight from the NCHW output gradient (no
    /// transpose pass): per image, `dW += dY[n] (O×P) · patches[n] (P×L)`, the bias gradient
    /// as row sums of `dY[n]`, and `dPatches = dY[n]ᵀ · W` folded into the image by row2im.
    /// After a direct forward the weight and bias gradients come instead from the input and `dY`
    /// through `lw_conv2d_direct_weight_gradient`, one call per chunk (that GEMM's inner
    /// dimension, the patch length, is too short for OpenBLAS to run near its peak).
    /// Images go in fixed chunks of ``weightGradientChunkImages`` to the workers; each chunk
    /// sums its images in order into its own partial and the partials are added in chunk
    /// order, so every gradient is the same bits for every thread count.
    private func backwardPerImage(
        _ outputGradient: Tensor, geometry g: ConvGeometry, batch: Int, _ flags: PerImageBackward,
        into inputGradient: inout Tensor
    ) {
        let o = outputChannels, l = g.patchLength, positions = g.outputPositions
        let chunkImages = Self.weightGradientChunkImages
        let chunks = (batch + chunkImages - 1) / chunkImages, partialSize = o * l + o
        let workers = Swift.min(BLAS.threadCount, chunks)
        let imageSize = inputChannels * g.height * g.width
        partialGradients.reserve(chunks * partialSize)
        if flags.input { patchGradient.reserve(workers * positions * l) }
        let directScratch =
            cachedDirectInput == nil
            ? 0
            : lw_conv2d_direct_weight_gradient_scratch_count(
                chunkImages, g.channels, g.height, g.width, g.kernelHeight, g.kernelWidth, g.paddingY, g.paddingX)
        directGradientScratch.reserve(workers * directScratch)
        let partials = partialGradients.withMutablePointer { SharedPointer($0) }
        let slots = patchGradient.withMutablePointer { SharedPointer($0) }
        let directSlots = directGradientScratch.withMutablePointer { SharedPointer($0) }
        let cols = patches.withPointer { SharedPointer($0) }
        let w = weight.value.withUnsafeBufferPointer { SharedPointer($0.baseAddress!) }
        let x = cachedDirectInput?.withUnsafeBufferPointer { SharedPointer($0.baseAddress!) }
        let dx = flags.input ? inputGradient.withUnsafeMutableBufferPointer { SharedPointer($0.baseAddress!) } : nil
        outputGradient.withUnsafeBufferPointer { dyb in
            let dy = SharedPointer(dyb.baseAddress!)
            WorkerPool.run(tasks: chunks, workers: workers) { k, chunk in
                let first = chunk * chunkImages, pw = partials.p + chunk * partialSize, pb = pw + o * l
                let images = Swift.min(batch, first + chunkImages) - first
                // The direct kernel forms the bias gradient too, from the dY it has in cache.
                let directBias = flags.weight && flags.bias && x != nil
                if flags.weight, let x {
                    pw.update(repeating: 0, count: o * l)
                    if directBias { pb.update(repeating: 0, count: o) }
                    lw_conv2d_direct_weight_gradient(
                        x.p + first * imageSize, images, g.channels, g.height, g.width, dy.p + first * o * positions,
                        o, g.kernelHeight, g.kernelWidth, g.paddingY, g.paddingX, pw, directBias ? pb : nil,
                        directSlots.p + k * directScratch)
                }
                for n in first..<first + images {
                    let dyN = dy.p + n * o * positions
                    if flags.weight && x == nil {
                        BLAS.gemm(
                            transposeA: false, transposeB: false, m: o, n: l, k: positions,
                            alpha: 1, a: dyN, lda: positions, b: cols.p + n * positions * l, ldb: l,
                            beta: n == first ? 0 : 1, c: pw, ldc: l)
                    }
                    if flags.bias && !directBias {
                        for ch in 0..<o {
                            pb[ch] = (n == first ? 0 : pb[ch]) + Self.sum(dyN + ch * positions, positions)
                        }
                    }
                    if let dx {
                        let slot = slots.p + k * positions * l
                        // dPatches[P, L] = dY[n]ᵀ[P, O] × W[O, L]
                        BLAS.gemm(
                            transposeA: true, transposeB: false, m: positions, n: l, k: o,
                            alpha: 1, a: dyN, lda: positions, b: w.p, ldb: l, beta: 0, c: slot, ldc: l)
                        Im2Col.row2imAdd(slot, batch: 1, geometry: g, images: dx.p + n * imageSize)
                    }
                }
            }
        }
        func addPartials(offset: Int, count: Int, into target: Parameter) {
            target.gradient.withUnsafeMutableBufferPointer { t in
                for chunk in 0..<chunks {
                    let part = partials.p + chunk * partialSize + offset
                    for i in 0..<count { t[i] += part[i] }
                }
            }
        }
        if flags.weight { addPartials(offset: 0, count: o * l, into: weight) }
        if flags.bias, let bias { addPartials(offset: o * l, count: o, into: bias) }
    }

    /// The sum of `count` floats in a fixed order (eight running lanes, then the rest).
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
        var lanes = SIMD8<Float>(), i = 0
        while i + 8 <= count {
            lanes += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var total = lanes.sum()
        while i < count {
            total += x[i]
            i += 1
        }
        return total
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
        var inputGradient =
            needsInputGradient ? Tensor.zeros([batch, inputChannels, g.height, g.width]) : Tensor.zeros([0])
        let updateWeight = !weight.isFrozen
        let updateBias = bias.map { !$0.isFrozen } ?? false
        guard updateWeight || updateBias || needsInputGradient else { return inputGradient }
        if cachedWinograd {
            backwardWinograd(outputGradient, updateWeight: updateWeight, updateBias: updateBias, into: &inputGradient)
            return inputGradient
        }
        if cachedPerImage {
            let flags = PerImageBackward(weight: updateWeight, bias: updateBias, input: needsInputGradient)
            backwardPerImage(outputGradient, geometry: g, batch: batch, flags, into: &inputGradient)
            return inputGradient
        }

        product.reserve(rows * outChannels)
        product.withMutablePointer { dy in
            // dY (NCHW) → [N·P, O], the layout of the forward product; the bias gradient
            // (a sum over N and P) is taken in the same pass.
            outputGradient.withUnsafeBufferPointer { src in
                let s = src.baseAddress!
                func transpose(biasGradient db: UnsafeMutablePointer<Float>?) {
                    // 4×4 register-transposed blocks, as in the forward. The bias sums keep
                    // their order (per image and channel, positions 0, 1, 2, … from 0), so
                    // the bias gradient is bit-identical to the scalar loop.
                    let o4 = outChannels & ~3, p4 = positions & ~3
                    for n in 0..<batch {
                        let from = s + n * positions * outChannels
                        let to = dy + n * positions * outChannels
                        var o = 0
                        while o < o4 {
                            var sum = SIMD4<Float>.zero
                            var p = 0
                            while p < p4 {
                                let q0 = UnsafeRawPointer(from + o * positions + p).loadUnaligned(as: SIMD4<Float>.self)
                                let q1 = UnsafeRawPointer(from + (o + 1) * positions + p).loadUnaligned(
                                    as: SIMD4<Float>.self)
                                let q2 = UnsafeRawPointer(from + (o + 2) * positions + p).loadUnaligned(
                                    as: SIMD4<Float>.self)
                                let q3 = UnsafeRawPointer(from + (o + 3) * positions + p).loadUnaligned(
                                    as: SIMD4<Float>.self)
                                for i in 0..<4 {
                                    let t = SIMD4<Float>(q0[i], q1[i], q2[i], q3[i])
                                    sum += t
                                    UnsafeMutableRawPointer(to + (p + i) * outChannels + o).storeBytes(
                                        of: t, as: SIMD4<Float>.self)
                                }
                                p += 4
                            }
                            for q in p4..<positions {
                                var t = SIMD4<Float>.zero
                                for j in 0..<4 { t[j] = from[(o + j) * positions + q] }
                                sum += t
                                UnsafeMutableRawPointer(to + q * outChannels + o).storeBytes(
                                    of: t, as: SIMD4<Float>.self)
                            }
                            if let db {
                                for j in 0..<4 { db[o + j] += sum[j] }
                            }
                            o += 4
                        }
                        while o < outChannels {
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
                            o += 1
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
                // The patch gradient is formed and folded a chunk of images at a time, so its
                // scratch stays a few MB instead of a second [N·P, L] matrix (210 MB for a
                // 16-channel 5×5 convolution over 32×32 at batch 128). Each row of
                // dY · W depends only on its own row of dY, and the chunks keep thousands of
                // rows, so the GEMM does the same per-element work as one whole-batch call.
                let rowsPerImage = positions
                let imagesPerChunk = Swift.max(
                    1, Swift.min(batch, Self.patchGradientChunkElements / Swift.max(1, rowsPerImage * patchLength)))
                patchGradient.reserve(imagesPerChunk * rowsPerImage * patchLength)
                patchGradient.withMutablePointer { dcols in
                    weight.value.withUnsafeBufferPointer { w in
                        inputGradient.withUnsafeMutableBufferPointer { dx in
                            let imageSize = inputChannels * g.height * g.width
                            var first = 0
                            while first < batch {
                                let count = Swift.min(imagesPerChunk, batch - first)
                                let chunkRows = count * rowsPerImage
                                // dPatches[rows, L] = dY[rows, O] × W[O, L]
                                BLAS.gemm(
                                    transposeA: false, transposeB: false, m: chunkRows, n: patchLength, k: outChannels,
                                    alpha: 1, a: dy + first * rowsPerImage * outChannels, lda: outChannels,
                                    b: w.baseAddress!, ldb: patchLength,
                                    beta: 0, c: dcols, ldc: patchLength)
                                Self.row2imAcrossWorkers(
                                    dcols, batch: count, geometry: g, images: dx.baseAddress! + first * imageSize)
                                first += count
                            }
                        }
                    }
                }
            }
        }
        return inputGradient
    }
}
