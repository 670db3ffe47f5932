import TensorCore

/// A fully connected layer, y = x·Wᵀ + b, for input `[N, inputFeatures]`.
///
/// Parameters use PyTorch's layout: `"weight"` `[outputFeatures, inputFeatures]`,
/// `"bias"` `[outputFeatures]`. Higher-rank input is rejected by ``outputShape(for:)``:
/// put a ``Flatten`` in front. `forward` treats shapes as an internal invariant.
public final class Linear: InputGradientSkipping {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?

    /// When `false`, ``backward(_:)`` skips the input gradient and returns zeros.
    public var needsInputGradient = true

    public var parameters: [Parameter] {
        if let bias { return [weight, bias] }
        return [weight]
    }

    private var cachedInput: Tensor?
    /// The zeros `backward` returns when the input gradient is skipped, kept between steps
    /// (copy-on-write): allocating and zeroing them again took 5 % of a wide probe's readout.
    private var skippedInputGradient = Tensor.zeros([0])

    /// Creates a layer with weights drawn by `initializer` and a zero bias.
    ///
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when a
    ///   feature count is not positive.
    public init<G: RandomNumberGenerator>(
        inputFeatures: Int, outputFeatures: Int, bias: Bool = true,
        initializer: WeightInitializer = .kaimingUniform, using generator: inout G
    ) throws {
        try Validate.positive(inputFeatures, "inputFeatures", layer: "Linear")
        try Validate.positive(outputFeatures, "outputFeatures", layer: "Linear")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.weight = Parameter(
            name: "weight", value: initializer.makeWeight(shape: [outputFeatures, inputFeatures], using: &generator))
        self.bias = bias ? Parameter(name: "bias", value: .zeros([outputFeatures])) : nil
    }

    private var name: String { "Linear(\(inputFeatures)→\(outputFeatures))" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 2 else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected rank 2 [N, \(inputFeatures)]; put a Flatten in front")
        }
        guard inputShape[0] >= 0, inputShape[1] == inputFeatures else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected \(inputFeatures) features, got \(inputShape[1])")
        }
        return [inputShape[0], outputFeatures]
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(
            s.count == 2 && s[1] == inputFeatures, "\(name): input shape \(s); validate with outputShape(for:)")
        let n = s[0], inF = inputFeatures, outF = outputFeatures
        var output = Tensor.uninitialized(shape: [n, outF])
        input.withUnsafeBufferPointer { x in
            weight.value.withUnsafeBufferPointer { w in
                output.withUnsafeMutableBufferPointer { y in
                    BLAS.gemm(
                        transposeA: false, transposeB: true, m: n, n: outF, k: inF,
                        alpha: 1, a: x.baseAddress!, lda: inF, b: w.baseAddress!, ldb: inF,
                        beta: 0, c: y.baseAddress!, ldc: outF)
                    if let bias {
                        bias.value.withUnsafeBufferPointer { bb in
                            let b = bb.baseAddress!, yp = y.baseAddress!
                            for r in 0..<n {
                                let row = yp + r * outF
                                for o in 0..<outF { row[o] += b[o] }
                            }
                        }
                    }
                }
            }
        }
        cachedInput = mode == .training ? input : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input = cachedInput else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let n = input.shape[0], inF = inputFeatures, outF = outputFeatures
        precondition(
            outputGradient.shape == [n, outF],
            "\(name): output gradient shape \(outputGradient.shape), expected \([n, outF])")
        if !needsInputGradient && skippedInputGradient.shape != [n, inF] {
            skippedInputGradient = Tensor.zeros([n, inF])
        }
        var inputGradient = needsInputGradient ? Tensor.uninitialized(shape: [n, inF]) : skippedInputGradient
        outputGradient.withUnsafeBufferPointer { gb in
            let dy = gb.baseAddress!
            if !weight.isFrozen {
                input.withUnsafeBufferPointer { x in
                    weight.gradient.withUnsafeMutableBufferPointer { dw in
                        // dW[out, in] += dYᵀ[out, N] × X[N, in]
                        BLAS.gemm(
                            transposeA: true, transposeB: false, m: outF, n: inF, k: n,
                            alpha: 1, a: dy, lda: outF, b: x.baseAddress!, ldb: inF,
                            beta: 1, c: dw.baseAddress!, ldc: inF)
                    }
                }
            }
            if let bias, !bias.isFrozen {
                bias.gradient.withUnsafeMutableBufferPointer { db in
                    let d = db.baseAddress!
                    for r in 0..<n {
                        let row = dy + r * outF
                        for o in 0..<outF { d[o] += row[o] }
                    }
                }
            }
            if needsInputGradient {
                weight.value.withUnsafeBufferPointer { w in
                    inputGradient.withUnsafeMutableBufferPointer { dx in
                        // dX[N, in] = dY[N, out] × W[out, in]
                        BLAS.gemm(
                            transposeA: false, transposeB: false, m: n, n: inF, k: outF,
                            alpha: 1, a: dy, lda: outF, b: w.baseAddress!, ldb: inF,
                            beta: 0, c: dx.baseAddress!, ldc: inF)
                    }
                }
            }
        }
        return inputGradient
    }
}
