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
public final class WhitenedConv2D: Layer {
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
        let d = inputChannels * kernelSize * kernelSize
        guard whiteningMean.shape == [d] else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "whiteningMean", value: "shape \(whiteningMean.shape)", reason: "must be [\(d)]")
        }
        guard whiteningMatrix.shape == [d, d] else {
            throw LayerError.invalidConfiguration(
                layer: "WhitenedConv2D", option: "whiteningMatrix", value: "shape \(whiteningMatrix.shape)", reason: "must be [\(d), \(d)]")
        }
        weight = Parameter(name: "weight", value: folded.weight.value)
        bias = Parameter(name: "bias", value: Tensor.zeros([outputChannels]))
        self.whiteningMean = Parameter(name: "whiteningMean", value: whiteningMean, isFrozen: true)
        self.whiteningMatrix = Parameter(name: "whiteningMatrix", value: whiteningMatrix, isFrozen: true)
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
                    BLAS.gemm(transposeA: false, transposeB: false, m: o, n: d, k: d, alpha: 1,
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
                        BLAS.gemm(transposeA: false, transposeB: true, m: o, n: d, k: d, alpha: 1,
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
