import TensorCore

/// The k-means "triangle" feature encoder of Coates, Lee & Ng (2011), applied to every
/// `kernelSize` × `kernelSize` window of an image (a convolution-like layer).
///
/// For each window (flattened in `(c, y, x)` order, like a ``Conv2D`` weight row):
/// 1. per-patch contrast normalisation: `y = (x − mean(x)) / sqrt(var(x) + ε)`;
/// 2. ZCA whitening: `x̂ = (y − μ) · W`;
/// 3. distances to the centroids: `z_k = ‖x̂ − c_k‖`;
/// 4. triangle activation: `f_k = max(0, mean_j(z_j) − z_k)`.
///
/// Output: `[N, K, oh, ow]`, one channel per centroid. The centroids and whitening live in
/// ``buffers`` (saved in checkpoints; a loader may replace their values), not in
/// ``parameters``: the encoder is not trainable, so a "fine-tuned" transfer of it behaves
/// like a frozen one. Backward still returns the exact input gradient, so the layer can sit
/// anywhere in a stack.
///
/// Implementation: the whole batch is unfolded by ``Im2Col/im2row(_:batch:geometry:rows:)``;
/// contrast normalisation and the mean subtraction are one pass over the rows; then **one**
/// SGEMM multiplies the rows by `B = [W | W·Cᵀ]` (`[D, D + K]`), giving the whitened patch
/// and its dot products with every centroid at once (`‖x̂ − c‖² = ‖x̂‖² − 2 x̂·c + ‖c‖²`).
/// Backward is one SGEMM by `Bᵀ` plus the contrast-normalisation adjoint and row2im.
/// In inference mode the batch is processed in chunks of at most ``maxRowsPerChunk`` windows
/// so memory stays bounded on full images (32×32 images give 729 windows each).
public final class TriangleEncoder: InputGradientSkipping {
    public let inputChannels: Int
    public let kernelSize: Int
    public let stride: Int
    /// ε of the per-patch contrast normalisation, in the units of the layer's input
    /// (e.g. 10 / 255² for [0, 1] pixels, Coates' ε = 10 on 0…255 pixels).
    public let contrastEpsilon: Float
    /// `[K, D]` centroids in whitened space (buffer, name `"centroids"`).
    public let centroids: Parameter
    /// `[D]` mean of the contrast-normalised patches (buffer, name `"whiteningMean"`).
    public let whiteningMean: Parameter
    /// `[D, D]` ZCA matrix, applied as a row vector times the matrix (buffer, name `"whiteningMatrix"`).
    public let whiteningMatrix: Parameter

    /// When `false`, ``backward(_:)`` returns zeros without work (first layer on raw data).
    public var needsInputGradient = true
    /// Windows per inference chunk (memory bound); training forwards are never chunked
    /// because backward needs the whole batch's intermediates.
    public var maxRowsPerChunk = 16_384

    /// Number of output channels (centroids).
    public var featureCount: Int { centroids.value.shape[0] }
    /// Window length `C · k · k`.
    public var patchLength: Int { inputChannels * kernelSize * kernelSize }

    public var parameters: [Parameter] { [] }
    public var buffers: [Parameter] { [centroids, whiteningMean, whiteningMatrix] }

    // Scratch, reused across calls.
    private var rows = ScratchBuffer()  // [R, D] centred contrast-normalised windows (y − μ)
    private var invSigma = ScratchBuffer()  // [R] 1 / sqrt(var + ε) per window
    private var product = ScratchBuffer()  // [R, D + K]: x̂ | z (distances, after the forward)
    private var combined = ScratchBuffer()  // [D, D + K] = [W | W·Cᵀ]
    private var gradientInput = ScratchBuffer()  // [R, D + K] backward GEMM input
    private var rowGradient = ScratchBuffer()  // [R, D]
    private var cached: (geometry: ConvGeometry, batch: Int)?

    /// Creates the encoder from fitted centroids and whitening.
    ///
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when a size is
    ///   not positive, `centroids` is not `[K ≥ 1, C·k·k]`, the mean is not `[D]`, the matrix is
    ///   not `[D, D]`, a value is not finite, or `contrastEpsilon` is not positive and finite.
    public init(
        centroids: Tensor, whiteningMean: Tensor, whiteningMatrix: Tensor,
        inputChannels: Int, kernelSize: Int, stride: Int = 1, contrastEpsilon: Float
    ) throws {
        let layer = "TriangleEncoder"
        try Validate.positive(inputChannels, "inputChannels", layer: layer)
        try Validate.positive(kernelSize, "kernelSize", layer: layer)
        try Validate.positive(stride, "stride", layer: layer)
        guard contrastEpsilon > 0, contrastEpsilon.isFinite else {
            throw LayerError.invalidConfiguration(
                layer: layer, option: "contrastEpsilon", value: "\(contrastEpsilon)",
                reason: "must be positive and finite")
        }
        let d = inputChannels * kernelSize * kernelSize
        guard centroids.shape.count == 2, centroids.shape[0] >= 1, centroids.shape[1] == d else {
            throw LayerError.invalidConfiguration(
                layer: layer, option: "centroids", value: "shape \(centroids.shape)",
                reason: "must be [K ≥ 1, \(d)] for \(inputChannels) channels and \(kernelSize)x\(kernelSize) windows")
        }
        guard whiteningMean.shape == [d] else {
            throw LayerError.invalidConfiguration(
                layer: layer, option: "whiteningMean", value: "shape \(whiteningMean.shape)", reason: "must be [\(d)]")
        }
        guard whiteningMatrix.shape == [d, d] else {
            throw LayerError.invalidConfiguration(
                layer: layer, option: "whiteningMatrix", value: "shape \(whiteningMatrix.shape)",
                reason: "must be [\(d), \(d)]")
        }
        for (name, t) in [
            ("centroids", centroids), ("whiteningMean", whiteningMean), ("whiteningMatrix", whiteningMatrix),
        ]
        where !t.isFinite {
            throw LayerError.invalidConfiguration(
                layer: layer, option: name, value: "non-finite values", reason: "must be finite")
        }
        self.inputChannels = inputChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.contrastEpsilon = contrastEpsilon
        self.centroids = Parameter(name: "centroids", value: centroids, isFrozen: true)
        self.whiteningMean = Parameter(name: "whiteningMean", value: whiteningMean, isFrozen: true)
        self.whiteningMatrix = Parameter(name: "whiteningMatrix", value: whiteningMatrix, isFrozen: true)
    }

    private var name: String {
        "TriangleEncoder(\(inputChannels)→\(featureCount), k\(kernelSize), s\(stride))"
    }

    private func geometry(height: Int, width: Int) -> ConvGeometry {
        ConvGeometry(
            channels: inputChannels, height: height, width: width,
            kernel: (kernelSize, kernelSize), stride: (stride, stride))
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let g = try ConvGeometry.validated(
            layer: name, inputShape: inputShape, channels: inputChannels, kernel: kernelSize, stride: stride)
        return [inputShape[0], featureCount, g.outputHeight, g.outputWidth]
    }

    /// Checks the buffers (a checkpoint loader may have replaced them) and builds `B = [W | W·Cᵀ]`.
    private func prepareCombined() {
        let d = patchLength, k = featureCount
        precondition(
            centroids.value.shape == [k, d] && whiteningMean.value.shape == [d]
                && whiteningMatrix.value.shape == [d, d],
            "\(name): buffers have shapes \(centroids.value.shape),"
                + " \(whiteningMean.value.shape), \(whiteningMatrix.value.shape)"
        )
        let width = d + k
        combined.reserve(d * width)
        combined.withMutablePointer { b in
            whiteningMatrix.value.withUnsafeBufferPointer { w in
                for i in 0..<d { (b + i * width).update(from: w.baseAddress! + i * d, count: d) }
                centroids.value.withUnsafeBufferPointer { c in
                    // B[:, D…] = W[D, D] × Cᵀ[D, K]
                    BLAS.gemm(
                        transposeA: false, transposeB: true, m: d, n: k, k: d, alpha: 1,
                        a: w.baseAddress!, lda: d, b: c.baseAddress!, ldb: d, beta: 0, c: b + d, ldc: width)
                }
            }
        }
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(
            s.count == 4 && s[1] == inputChannels, "\(name): input shape \(s); validate with outputShape(for:)")
        let g = geometry(height: s[2], width: s[3])
        precondition(g.isValid, "\(name): input shape \(s) too small; validate with outputShape(for:)")
        prepareCombined()
        let batch = s[0], positions = g.outputPositions, k = featureCount
        var output = Tensor.uninitialized(shape: [batch, k, g.outputHeight, g.outputWidth])
        let chunk = mode == .training ? Swift.max(batch, 1) : Swift.max(1, maxRowsPerChunk / Swift.max(positions, 1))
        let imageSize = inputChannels * s[2] * s[3]
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { out in
                var start = 0
                while start < batch {
                    let n = Swift.min(chunk, batch - start)
                    encode(
                        x.baseAddress! + start * imageSize, batch: n, geometry: g,
                        into: out.baseAddress! + start * k * positions)
                    start += n
                }
            }
        }
        cached = mode == .training ? (g, batch) : nil
        return output
    }

    /// Encodes `batch` images into `out` (NCHW), leaving the windows, 1/σ, x̂ and z in scratch.
    private func encode(
        _ images: UnsafePointer<Float>, batch: Int, geometry g: ConvGeometry, into out: UnsafeMutablePointer<Float>
    ) {
        let d = patchLength, k = featureCount, width = d + k
        let positions = g.outputPositions, r = batch * positions
        rows.reserve(r * d)
        invSigma.reserve(r)
        product.reserve(r * width)
        let epsilon = Double(contrastEpsilon)
        var centroidNorms = [Float](repeating: 0, count: k)
        centroids.value.withUnsafeBufferPointer { c in
            for j in 0..<k {
                var s: Float = 0
                for i in 0..<d { let v = c[j * d + i]; s += v * v }
                centroidNorms[j] = s
            }
        }
        rows.withMutablePointer { x in
            invSigma.withMutablePointer { inv in
                Im2Col.im2row(images, batch: batch, geometry: g, rows: x)
                whiteningMean.value.withUnsafeBufferPointer { mu in
                    // Contrast normalisation (statistics in Double) fused with the ZCA centring.
                    for row in 0..<r {
                        let p = x + row * d
                        var sum = 0.0
                        for i in 0..<d { sum += Double(p[i]) }
                        let mean = sum / Double(d)
                        var sq = 0.0
                        for i in 0..<d { let v = Double(p[i]) - mean; sq += v * v }
                        let scale = Float(1 / (sq / Double(d) + epsilon).squareRoot())
                        inv[row] = scale
                        let m = Float(mean)
                        for i in 0..<d { p[i] = (p[i] - m) * scale - mu[i] }
                    }
                }
            }
            product.withMutablePointer { y in
                combined.withPointer { b in
                    // [R, D] × [D, D + K] = [R, D + K]: x̂ and x̂·c_k.
                    BLAS.gemm(
                        transposeA: false, transposeB: false, m: r, n: width, k: d, alpha: 1,
                        a: x, lda: d, b: b, ldb: width, beta: 0, c: y, ldc: width)
                }
                centroidNorms.withUnsafeBufferPointer { cc in
                    for row in 0..<r {
                        let xh = y + row * width, z = xh + d
                        var xx: Float = 0
                        for i in 0..<d { xx += xh[i] * xh[i] }
                        var mean: Float = 0
                        for j in 0..<k {
                            // Rounding can make the expanded square slightly negative.
                            z[j] = Swift.max(0, xx - 2 * z[j] + cc[j]).squareRoot()
                            mean += z[j]
                        }
                        mean /= Float(k)
                        let n = row / positions, p = row - n * positions
                        let o = out + n * k * positions + p
                        for j in 0..<k { o[j * positions] = Swift.max(0, mean - z[j]) }
                    }
                }
            }
        }
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let (g, batch) = cached else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let d = patchLength, k = featureCount, width = d + k
        let positions = g.outputPositions, r = batch * positions
        precondition(
            outputGradient.shape == [batch, k, g.outputHeight, g.outputWidth],
            "\(name): output gradient shape \(outputGradient.shape) does not match the last forward")
        var inputGradient = Tensor.zeros([batch, inputChannels, g.height, g.width])
        guard needsInputGradient, r > 0 else { return inputGradient }
        gradientInput.reserve(r * width)
        rowGradient.reserve(r * d)
        let invK = 1 / Float(k)
        product.withPointer { y in
            gradientInput.withMutablePointer { gi in
                outputGradient.withUnsafeBufferPointer { go in
                    for row in 0..<r {
                        let xh = y + row * width, z = xh + d
                        let n = row / positions, p = row - n * positions
                        let gRow = go.baseAddress! + n * k * positions + p
                        var mean: Float = 0
                        for j in 0..<k { mean += z[j] }
                        mean *= invK
                        // f_k = max(0, z̄ − z_k): ∂L/∂z_j = (Σ_active g_k)/K − [j active]·g_j.
                        var activeSum: Float = 0
                        for j in 0..<k where mean - z[j] > 0 { activeSum += gRow[j * positions] }
                        let dst = gi + row * width
                        var uSum: Float = 0
                        for j in 0..<k {
                            let dz = activeSum * invK - (mean - z[j] > 0 ? gRow[j * positions] : 0)
                            // ∂z_j/∂x̂ = (x̂ − c_j)/z_j; undefined at z_j = 0, where we take 0.
                            let u = z[j] > 0 ? dz / z[j] : 0
                            uSum += u
                            dst[d + j] = -u
                        }
                        // ∂L/∂x̂ = (Σ_j u_j)·x̂ − Σ_j u_j c_j; the GEMM by Bᵀ below applies Wᵀ to both.
                        for i in 0..<d { dst[i] = uSum * xh[i] }
                    }
                }
                rowGradient.withMutablePointer { dr in
                    combined.withPointer { b in
                        // [R, D + K] × [D + K, D] = ∂L/∂(y − μ), i.e. ∂L/∂y.
                        BLAS.gemm(
                            transposeA: false, transposeB: true, m: r, n: d, k: width, alpha: 1,
                            a: gi, lda: width, b: b, ldb: width, beta: 0, c: dr, ldc: d)
                    }
                    // Contrast normalisation adjoint: ∂L/∂x = (1/σ)(dy − mean(dy) − y·mean(dy ⊙ y)).
                    rows.withPointer { centred in
                        invSigma.withPointer { inv in
                            whiteningMean.value.withUnsafeBufferPointer { mu in
                                for row in 0..<r {
                                    let dy = dr + row * d, yc = centred + row * d
                                    var sumDy: Float = 0, sumDyY: Float = 0
                                    for i in 0..<d {
                                        sumDy += dy[i]
                                        sumDyY += dy[i] * (yc[i] + mu[i])
                                    }
                                    let a = sumDy / Float(d), b = sumDyY / Float(d), s = inv[row]
                                    for i in 0..<d { dy[i] = s * (dy[i] - a - (yc[i] + mu[i]) * b) }
                                }
                            }
                        }
                    }
                    inputGradient.withUnsafeMutableBufferPointer { dx in
                        Im2Col.row2imAdd(dr, batch: batch, geometry: g, images: dx.baseAddress!)
                    }
                }
            }
        }
        return inputGradient
    }
}
