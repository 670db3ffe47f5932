import TensorCore

/// A convolution that sees every input window through a fixed whitening transform:
/// y = W · Z(x − μ) + b for each k × k window x (flattened C·k·k, `Conv2D` order).
///
/// Whitening the input (ZCA, Coates et al. 2011) removes the strong pixel correlations
/// of natural images, so a contrastive loss cannot win on smooth colour alone. Because the
/// transform is linear, the layer *is* a plain convolution with folded filters
/// W_eff = W Z and b_eff = b − W Z μ; ``foldedParameters()`` returns them, so a trained
/// layer transfers into any classifier as an ordinary ``Conv2D``. The learnable weight
/// lives in whitened space, which is what makes the optimisation different from training
/// the folded filters directly.
public final class WhitenedConv2D: InputGradientSkipping {
    /// Filters in whitened space, [O, C, k, k].
    public let weight: Parameter
    /// Bias, [O].
    public let bias: Parameter
    /// μ, the window mean subtracted before whitening, [C·k·k] (a saved buffer).
    public let whiteningMean: Parameter
    /// Z, the whitening matrix applied to each window, [C·k·k, C·k·k] (a saved buffer).
    public let whiteningMatrix: Parameter
    private let folded: Conv2D

    /// Window side.
    public var kernelSize: Int { folded.kernelSize }

    /// Skips the input-gradient GEMM when nothing below the layer learns.
    public var needsInputGradient: Bool {
        get { folded.needsInputGradient }
        set { folded.needsInputGradient = newValue }
    }

    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` for bad sizes or
    ///   a whitening whose shape is not [C·k·k] and [C·k·k, C·k·k].
    public init<G: RandomNumberGenerator>(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, whiteningMean: Tensor, whiteningMatrix: Tensor,
        initializer: WeightInitializer = .kaimingUniform, using generator: inout G
    ) throws {
        folded = try Conv2D(
            inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize,
            initializer: initializer, using: &generator)
        try Self.validateWhitening(
            mean: whiteningMean, matrix: whiteningMatrix, dimension: inputChannels * kernelSize * kernelSize)
        weight = Parameter(name: "weight", value: folded.weight.value)
        bias = Parameter(name: "bias", value: Tensor.zeros([outputChannels]))
        self.whiteningMean = Parameter(name: "whiteningMean", value: whiteningMean, isFrozen: true)
        self.whiteningMatrix = Parameter(name: "whiteningMatrix", value: whiteningMatrix, isFrozen: true)
    }

    /// A layer whose whitening is still the identity (μ = 0, Z = I), to be fitted later
    /// with ``setWhitening(mean:matrix:)`` — e.g. by `InputWhitening`, once the stages
    /// below it are trained.
    public convenience init<G: RandomNumberGenerator>(
        inputChannels: Int, outputChannels: Int, kernelSize: Int,
        initializer: WeightInitializer = .kaimingUniform, using generator: inout G
    ) throws {
        let d = max(0, inputChannels * kernelSize * kernelSize)
        var identity = Tensor.zeros([d, d])
        identity.withUnsafeMutableBufferPointer { for i in 0..<d { $0[i * d + i] = 1 } }
        try self.init(
            inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize,
            whiteningMean: Tensor.zeros([d]), whiteningMatrix: identity, initializer: initializer, using: &generator)
    }

    public var parameters: [Parameter] { [weight, bias] }
    public var buffers: [Parameter] { [whiteningMean, whiteningMatrix] }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        do { return try folded.outputShape(for: inputShape) } catch let LayerError.incompatibleInput(_, shape, reason) {
            throw LayerError.incompatibleInput(layer: "WhitenedConv2D", shape: shape, reason: reason)
        }
    }

    /// The equivalent plain convolution's parameters: W_eff = W Z, b_eff = b − W_eff μ.
    public func foldedParameters() -> (weight: Tensor, bias: Tensor) {
        let o = weight.value.shape[0], d = whiteningMean.value.count
        var w = Tensor.uninitialized(shape: weight.value.shape)
        var b = bias.value
        weight.value.withUnsafeBufferPointer { wv in
            whiteningMatrix.value.withUnsafeBufferPointer { z in
                w.withUnsafeMutableBufferPointer { out in
                    BLAS.gemm(
                        transposeA: false, transposeB: false, m: o, n: d, k: d, alpha: 1,
                        a: wv.baseAddress!, lda: d, b: z.baseAddress!, ldb: d, beta: 0, c: out.baseAddress!, ldc: d)
                }
            }
        }
        w.withUnsafeBufferPointer { we in
            whiteningMean.value.withUnsafeBufferPointer { mu in
                b.withUnsafeMutableBufferPointer { bb in
                    for i in 0..<o {
                        var s: Float = 0
                        for j in 0..<d { s += we[i * d + j] * mu[j] }
                        bb[i] -= s
                    }
                }
            }
        }
        return (w, b)
    }

    /// Sets the learnable W and b so that the layer computes exactly the plain convolution
    /// with `weight` `[O, C, k, k]` and `bias` `[O]` (times `scale`): the inverse of
    /// ``foldedParameters()``, W = scale · W_eff Z⁻¹ and b = scale · (b_eff + W_eff μ).
    ///
    /// This is a data-dependent initialisation (Krähenbühl et al. 2016): start the whitened
    /// layer from filters found by another method — e.g. the k-means baseline's folded
    /// convolution — and let training refine them in whitened coordinates. A positive
    /// `scale` multiplies every output by the same constant, which an L2-normalised
    /// embedding and a standardised probe do not see, but which sets how far an optimiser's
    /// fixed-size steps move the filters.
    ///
    /// Z is solved against by a Cholesky factorisation in Double, so it must be symmetric
    /// positive definite (a ZCA matrix with ε > 0 is).
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when the shapes
    ///   differ from the layer's, `scale` is not positive and finite, a value is not finite,
    ///   or Z is not positive definite.
    public func setFoldedParameters(weight foldedWeight: Tensor, bias foldedBias: Tensor, scale: Float = 1) throws {
        let o = weight.value.shape[0], d = whiteningMean.value.count
        guard foldedWeight.count == o * d, foldedWeight.shape.first == o else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "weight", value: "shape \(foldedWeight.shape)",
                reason: "must be \(weight.value.shape) (\(o) filters of \(d) values)")
        }
        guard foldedBias.shape == [o] else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "bias", value: "shape \(foldedBias.shape)", reason: "must be [\(o)]")
        }
        guard scale > 0, scale.isFinite else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "scale", value: "\(scale)", reason: "must be positive and finite")
        }
        guard foldedWeight.isFinite, foldedBias.isFinite else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "weight/bias", value: "non-finite values", reason: "must be finite")
        }
        // Cholesky Z = L Lᵀ (Double); each row w of W solves Z wᵀ = w_effᵀ (Z is symmetric).
        let z = whiteningMatrix.value.scalars.map(Double.init)
        var l = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in 0...i {
                var s = z[i * d + j]
                for k in 0..<j { s -= l[i * d + k] * l[j * d + k] }
                if i == j {
                    guard s > 0, s.isFinite else {
                        throw LayerError.invalidConfiguration(
                            layer: "WhitenedConv2D", option: "whiteningMatrix", value: "pivot \(s) at \(i)",
                            reason: "must be symmetric positive definite to express filters in whitened coordinates")
                    }
                    l[i * d + i] = s.squareRoot()
                } else {
                    l[i * d + j] = s / l[j * d + j]
                }
            }
        }
        let weff = foldedWeight.scalars, beff = foldedBias.scalars, mu = whiteningMean.value.scalars
        var w = [Float](repeating: 0, count: o * d)
        var b = [Float](repeating: 0, count: o)
        var y = [Double](repeating: 0, count: d)
        for r in 0..<o {
            for i in 0..<d {  // forward: L y = w_eff
                var s = Double(weff[r * d + i])
                for k in 0..<i { s -= l[i * d + k] * y[k] }
                y[i] = s / l[i * d + i]
            }
            for i in stride(from: d - 1, through: 0, by: -1) {  // backward: Lᵀ x = y
                var s = y[i]
                for k in (i + 1)..<max(i + 1, d) { s -= l[k * d + i] * y[k] }
                y[i] = s / l[i * d + i]
            }
            var dot = 0.0
            for i in 0..<d {
                w[r * d + i] = Float(Double(scale) * y[i])
                dot += Double(weff[r * d + i]) * Double(mu[i])
            }
            b[r] = Float(Double(scale) * (Double(beff[r]) + dot))
        }
        weight.value = try Tensor(shape: weight.value.shape, values: w)
        bias.value = try Tensor(shape: [o], values: b)
    }

    /// Replaces the whitening (μ, Z) and leaves W and b as they are, so the layer's filters
    /// keep their meaning in the new whitened coordinates. Used to fit the whitening to
    /// data after the layer was built, e.g. to the output of frozen stages below it.
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when the
    ///   shapes are not [C·k·k] and [C·k·k, C·k·k] or a value is not finite.
    public func setWhitening(mean: Tensor, matrix: Tensor) throws {
        try Self.validateWhitening(mean: mean, matrix: matrix, dimension: whiteningMean.value.count)
        guard mean.isFinite, matrix.isFinite else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "whitening", value: "non-finite values", reason: "must be finite")
        }
        whiteningMean.value = mean
        whiteningMatrix.value = matrix
    }

    /// Throws unless μ is [d] and Z is [d, d].
    static func validateWhitening(mean: Tensor, matrix: Tensor, dimension d: Int) throws {
        guard mean.shape == [d] else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "whiteningMean", value: "shape \(mean.shape)", reason: "must be [\(d)]"
            )
        }
        guard matrix.shape == [d, d] else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "whiteningMatrix", value: "shape \(matrix.shape)",
                reason: "must be [\(d), \(d)]")
        }
    }

    /// A plain ``Conv2D`` with the folded filters (for transfer and export).
    public func foldedConvolution() throws -> Conv2D {
        var g = SplitMix64(seed: 0)  // weights are overwritten below; the draw is irrelevant
        let conv = try Conv2D(
            inputChannels: folded.inputChannels, outputChannels: folded.outputChannels, kernelSize: folded.kernelSize,
            using: &g)
        let (w, b) = foldedParameters()
        conv.weight.value = w
        conv.bias?.value = b
        return conv
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let (w, b) = foldedParameters()
        folded.weight.value = w
        folded.bias?.value = b
        folded.setFrozen(weight.isFrozen && bias.isFrozen)
        return folded.forward(input, mode: mode)
    }

    /// Chain rule through the fold: ∂L/∂W = ∂L/∂W_eff · Zᵀ − ∂L/∂b_eff ⊗ (Z μ)ᵀ, ∂L/∂b = ∂L/∂b_eff.
    public func backward(_ outputGradient: Tensor) -> Tensor {
        folded.zeroGradients()
        let inputGradient = folded.backward(outputGradient)
        guard !(weight.isFrozen && bias.isFrozen) else { return inputGradient }
        let o = weight.value.shape[0], d = whiteningMean.value.count
        let dWeff = folded.weight.gradient, dbeff = folded.bias?.gradient ?? Tensor.zeros([o])
        // Zμ, once per backward (d² flops).
        var zMu = [Float](repeating: 0, count: d)
        whiteningMatrix.value.withUnsafeBufferPointer { z in
            whiteningMean.value.withUnsafeBufferPointer { mu in
                for i in 0..<d {
                    var s: Float = 0
                    for j in 0..<d { s += z[i * d + j] * mu[j] }
                    zMu[i] = s
                }
            }
        }
        if !weight.isFrozen {
            dWeff.withUnsafeBufferPointer { g in
                whiteningMatrix.value.withUnsafeBufferPointer { z in
                    weight.gradient.withUnsafeMutableBufferPointer { out in
                        BLAS.gemm(
                            transposeA: false, transposeB: true, m: o, n: d, k: d, alpha: 1,
                            a: g.baseAddress!, lda: d, b: z.baseAddress!, ldb: d, beta: 1, c: out.baseAddress!, ldc: d)
                    }
                }
            }
            dbeff.withUnsafeBufferPointer { db in
                weight.gradient.withUnsafeMutableBufferPointer { out in
                    for i in 0..<o { for j in 0..<d { out[i * d + j] -= db[i] * zMu[j] } }
                }
            }
        }
        if !bias.isFrozen {
            dbeff.withUnsafeBufferPointer { db in
                bias.gradient.withUnsafeMutableBufferPointer { out in for i in 0..<o { out[i] += db[i] } }
            }
        }
        return inputGradient
    }
}

/// A convolution that whitens its input windows and whose filters can be set in the
/// folded (input-space) form: what ``WhitenedConv2D`` offers the stage preparations
/// (input whitening, a k-means start) that configure a stage's first layer.
public protocol WindowWhitening: Layer {
    /// The side of the square window.
    var kernelSize: Int { get }
    /// Replaces the whitening (mean `[C·k·k]`, matrix `[C·k·k, C·k·k]`), keeping the filters.
    func setWhitening(mean: Tensor, matrix: Tensor) throws
    /// Sets the learnable parameters so the layer computes the plain convolution with
    /// `weight` `[O, C, k, k]` and `bias` `[O]`, times `scale`.
    func setFoldedParameters(weight: Tensor, bias: Tensor, scale: Float) throws
}

extension WhitenedConv2D: WindowWhitening {}
