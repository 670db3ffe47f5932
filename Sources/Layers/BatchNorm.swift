import TensorCore

/// Batch normalisation over the channel axis (axis 1): `[N, C]` normalises each feature,
/// `[N, C, H, W]` (or any `[N, C, …]`) each channel over batch and space.
///
/// - Training: normalises with the batch mean and biased variance, and updates
///   `runningMean`/`runningVar` as `(1 − momentum)·running + momentum·batch`, using the
///   **unbiased** batch variance for `runningVar` (PyTorch's convention). With a single
///   value per channel the unbiased correction is undefined; the biased variance (0) is
///   used instead rather than trapping.
/// - Inference: normalises with the running statistics.
///
/// Parameters `"weight"` (γ, initialised to 1) and `"bias"` (β, initialised to 0);
/// buffers `"runningMean"` (0) and `"runningVar"` (1). Built with `affine: false`
/// (PyTorch's `affine=False`, as SoftHebb normalises each stage's input) the layer has no
/// parameters: γ stays 1 and β 0, and backward still returns the input gradient. `forward` treats shapes as an
/// internal invariant; validate with ``outputShape(for:)``.
public final class BatchNorm: Layer {
    public let features: Int
    public let momentum: Float
    public let epsilon: Float
    /// Whether γ and β are learnable parameters (`false`: fixed at 1 and 0, no parameters).
    public let affine: Bool

    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Parameter
    public let runningVar: Parameter

    public var parameters: [Parameter] { affine ? [weight, bias] : [] }
    public var buffers: [Parameter] { [runningMean, runningVar] }

    private var normalized = Tensor.zeros([0])  // x̂ of the last training forward
    private var inverseStd = [Float]()
    private var cachedShape: [Int]?

    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when
    ///   `features` is not positive, `momentum` is outside [0, 1] or `epsilon` is not > 0.
    public init(features: Int, momentum: Float = 0.1, epsilon: Float = 1e-5, affine: Bool = true) throws {
        try Validate.positive(features, "features", layer: "BatchNorm")
        guard momentum.isFinite, momentum >= 0, momentum <= 1 else {
            throw LayerError.invalidConfiguration(
                layer: "BatchNorm", option: "momentum", value: "\(momentum)", reason: "must be in [0, 1]")
        }
        guard epsilon.isFinite, epsilon > 0 else {
            throw LayerError.invalidConfiguration(
                layer: "BatchNorm", option: "epsilon", value: "\(epsilon)", reason: "must be finite and > 0")
        }
        self.features = features
        self.momentum = momentum
        self.epsilon = epsilon
        self.affine = affine
        weight = Parameter(name: "weight", value: Tensor(shape: [features], repeating: 1))
        bias = Parameter(name: "bias", value: .zeros([features]))
        runningMean = Parameter(name: "runningMean", value: .zeros([features]), isFrozen: true)
        runningVar = Parameter(name: "runningVar", value: Tensor(shape: [features], repeating: 1), isFrozen: true)
    }

    private var name: String { affine ? "BatchNorm(\(features))" : "BatchNorm(\(features), non-affine)" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count >= 2 else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected [N, C] or [N, C, H, W]")
        }
        guard inputShape.allSatisfy({ $0 >= 0 }) else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "dimensions must be non-negative")
        }
        guard inputShape[1] == features else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected \(features) channels, got \(inputShape[1])")
        }
        return inputShape
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(s.count >= 2 && s[1] == features, "\(name): input shape \(s); validate with outputShape(for:)")
        let batch = s[0], channels = features, spatial = s.dropFirst(2).reduce(1, *)
        let m = batch * spatial
        var output = Tensor.uninitialized(shape: s)
        if mode == .inference || m == 0 {
            // An empty training batch has no statistics: leave the running ones alone.
            cachedShape = mode == .training ? s : nil
            input.withUnsafeBufferPointer { xb in
                output.withUnsafeMutableBufferPointer { yb in
                    weight.value.withUnsafeBufferPointer { gb in
                        bias.value.withUnsafeBufferPointer { bb in
                            runningMean.value.withUnsafeBufferPointer { mb in
                                runningVar.value.withUnsafeBufferPointer { vb in
                                    for c in 0..<channels {
                                        let scale = gb[c] / (vb[c] + epsilon).squareRoot()
                                        let shift = bb[c] - mb[c] * scale
                                        for n in 0..<batch {
                                            let base = (n * channels + c) * spatial
                                            for i in base..<(base + spatial) { yb[i] = xb[i] * scale + shift }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return output
        }

        if normalized.count != input.count { normalized = Tensor.uninitialized(shape: [input.count]) }
        if inverseStd.count != channels { inverseStd = [Float](repeating: 0, count: channels) }
        let mom = momentum, eps = epsilon
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                normalized.withUnsafeMutableBufferPointer { hb in
                    inverseStd.withUnsafeMutableBufferPointer { ib in
                        weight.value.withUnsafeBufferPointer { gb in
                            bias.value.withUnsafeBufferPointer { bb in
                                runningMean.value.withUnsafeMutableBufferPointer { mb in
                                    runningVar.value.withUnsafeMutableBufferPointer { vb in
                                        for c in 0..<channels {
                                            // Two passes in Double: mean, then centred squares.
                                            var sum = 0.0
                                            for n in 0..<batch {
                                                let base = (n * channels + c) * spatial
                                                for i in base..<(base + spatial) { sum += Double(xb[i]) }
                                            }
                                            let mean = sum / Double(m)
                                            var squares = 0.0
                                            for n in 0..<batch {
                                                let base = (n * channels + c) * spatial
                                                for i in base..<(base + spatial) {
                                                    let d = Double(xb[i]) - mean
                                                    squares += d * d
                                                }
                                            }
                                            let variance = squares / Double(m)
                                            let inv = Float(1 / (variance + Double(eps)).squareRoot())
                                            ib[c] = inv
                                            let meanF = Float(mean), gamma = gb[c], beta = bb[c]
                                            for n in 0..<batch {
                                                let base = (n * channels + c) * spatial
                                                for i in base..<(base + spatial) {
                                                    let h = (xb[i] - meanF) * inv
                                                    hb[i] = h
                                                    yb[i] = gamma * h + beta
                                                }
                                            }
                                            let unbiased = m > 1 ? squares / Double(m - 1) : variance
                                            mb[c] = (1 - mom) * mb[c] + mom * meanF
                                            vb[c] = (1 - mom) * vb[c] + mom * Float(unbiased)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        cachedShape = s
        return output
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let s = cachedShape else { preconditionFailure("\(name): backward without a preceding training forward") }
        precondition(outputGradient.shape == s, "\(name): output gradient shape \(outputGradient.shape), expected \(s)")
        let batch = s[0], channels = features, spatial = s.dropFirst(2).reduce(1, *)
        let m = batch * spatial
        var inputGradient = Tensor.uninitialized(shape: s)
        let updateWeight = affine && !weight.isFrozen, updateBias = affine && !bias.isFrozen
        outputGradient.withUnsafeBufferPointer { gb in
            normalized.withUnsafeBufferPointer { hb in
                inverseStd.withUnsafeBufferPointer { ib in
                    weight.value.withUnsafeBufferPointer { wb in
                        inputGradient.withUnsafeMutableBufferPointer { db in
                            for c in 0..<channels {
                                var sumDy = 0.0, sumDyH = 0.0
                                for n in 0..<batch {
                                    let base = (n * channels + c) * spatial
                                    for i in base..<(base + spatial) {
                                        sumDy += Double(gb[i])
                                        sumDyH += Double(gb[i]) * Double(hb[i])
                                    }
                                }
                                if updateWeight {
                                    weight.gradient.withUnsafeMutableBufferPointer { $0[c] += Float(sumDyH) }
                                }
                                if updateBias { bias.gradient.withUnsafeMutableBufferPointer { $0[c] += Float(sumDy) } }
                                // dx = γ·σ⁻¹/M · (M·dy − Σdy − x̂·Σ(dy·x̂))
                                let k = wb[c] * ib[c] / Float(m)
                                let meanDy = Float(sumDy), meanDyH = Float(sumDyH)
                                let count = Float(m)
                                for n in 0..<batch {
                                    let base = (n * channels + c) * spatial
                                    for i in base..<(base + spatial) {
                                        db[i] = k * (count * gb[i] - meanDy - hb[i] * meanDyH)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return inputGradient
    }
}

extension BatchNorm: Reinitializable {
    /// γ = 1, β = 0, running mean 0 and variance 1; draws nothing.
    public func reinitialize(initializer: WeightInitializer, using generator: inout SeededGenerator) {
        weight.value = Tensor(shape: weight.value.shape, repeating: 1)
        bias.value = .zeros(bias.value.shape)
        runningMean.value = .zeros(runningMean.value.shape)
        runningVar.value = Tensor(shape: runningVar.value.shape, repeating: 1)
    }
}
