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
            // y = x · scale + shift per channel, planes split over the workers.
            var scaleShift = [Float](repeating: 0, count: 2 * channels)
            for c in 0..<channels {
                let scale = weight.value[flat: c] / (runningVar.value[flat: c] + epsilon).squareRoot()
                scaleShift[2 * c] = scale
                scaleShift[2 * c + 1] = bias.value[flat: c] - runningMean.value[flat: c] * scale
            }
            input.withUnsafeBufferPointer { xb in
                output.withUnsafeMutableBufferPointer { yb in
                    scaleShift.withUnsafeMutableBufferPointer { sb in
                        let x = SharedPointer(xb.baseAddress!), y = SharedPointer(yb.baseAddress!)
                        let ss = SharedPointer(sb.baseAddress!)
                        let minimumPlanes = WorkerPool.minimumItems(elementsPerItem: spatial)
                        WorkerPool.forEachSlice(batch * channels, minimumSlice: minimumPlanes) { planes in
                            for plane in planes {
                                let c = plane % channels, scale = ss.p[2 * c], shift = ss.p[2 * c + 1]
                                let base = plane * spatial
                                for i in base..<(base + spatial) { y.p[i] = x.p[i] * scale + shift }
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
        let gamma = weight.value.scalars, beta = bias.value.scalars
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                normalized.withUnsafeMutableBufferPointer { hb in
                    inverseStd.withUnsafeMutableBufferPointer { ib in
                        runningMean.value.withUnsafeMutableBufferPointer { mb in
                            runningVar.value.withUnsafeMutableBufferPointer { vb in
                                let x = SharedPointer(xb.baseAddress!), y = SharedPointer(yb.baseAddress!)
                                let h = SharedPointer(hb.baseAddress!), inverse = SharedPointer(ib.baseAddress!)
                                let runMean = SharedPointer(mb.baseAddress!), runVar = SharedPointer(vb.baseAddress!)
                                // Channels split over the workers; each channel's sums keep their order.
                                WorkerPool.forEachSlice(
                                    channels, minimumSlice: WorkerPool.minimumItems(elementsPerItem: m)
                                ) { range in
                                    for c in range {
                                        // Two passes in Double: mean, then centred squares.
                                        var sum = 0.0
                                        for n in 0..<batch {
                                            let base = (n * channels + c) * spatial
                                            for i in base..<(base + spatial) { sum += Double(x.p[i]) }
                                        }
                                        let mean = sum / Double(m)
                                        var squares = 0.0
                                        for n in 0..<batch {
                                            let base = (n * channels + c) * spatial
                                            for i in base..<(base + spatial) {
                                                let d = Double(x.p[i]) - mean
                                                squares += d * d
                                            }
                                        }
                                        let variance = squares / Double(m)
                                        let inv = Float(1 / (variance + Double(eps)).squareRoot())
                                        inverse.p[c] = inv
                                        let meanF = Float(mean), g = gamma[c], b = beta[c]
                                        for n in 0..<batch {
                                            let base = (n * channels + c) * spatial
                                            for i in base..<(base + spatial) {
                                                let hi = (x.p[i] - meanF) * inv
                                                h.p[i] = hi
                                                y.p[i] = g * hi + b
                                            }
                                        }
                                        let unbiased = m > 1 ? squares / Double(m - 1) : variance
                                        runMean.p[c] = (1 - mom) * runMean.p[c] + mom * meanF
                                        runVar.p[c] = (1 - mom) * runVar.p[c] + mom * Float(unbiased)
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
        let gamma = weight.value.scalars, inverse = inverseStd
        var sums = [Double](repeating: 0, count: 2 * channels)  // per channel: Σdy, Σdy·x̂
        outputGradient.withUnsafeBufferPointer { gb in
            normalized.withUnsafeBufferPointer { hb in
                inputGradient.withUnsafeMutableBufferPointer { db in
                    sums.withUnsafeMutableBufferPointer { sb in
                        let dy = SharedPointer(gb.baseAddress!), h = SharedPointer(hb.baseAddress!)
                        let dx = SharedPointer(db.baseAddress!), sum = SharedDoubles(sb.baseAddress!)
                        WorkerPool.forEachSlice(channels, minimumSlice: WorkerPool.minimumItems(elementsPerItem: m)) {
                            range in
                            for c in range {
                                var sumDy = 0.0, sumDyH = 0.0
                                for n in 0..<batch {
                                    let base = (n * channels + c) * spatial
                                    for i in base..<(base + spatial) {
                                        sumDy += Double(dy.p[i])
                                        sumDyH += Double(dy.p[i]) * Double(h.p[i])
                                    }
                                }
                                sum.p[2 * c] = sumDy
                                sum.p[2 * c + 1] = sumDyH
                                // dx = γ·σ⁻¹/M · (M·dy − Σdy − x̂·Σ(dy·x̂))
                                let k = gamma[c] * inverse[c] / Float(m)
                                let meanDy = Float(sumDy), meanDyH = Float(sumDyH)
                                let count = Float(m)
                                for n in 0..<batch {
                                    let base = (n * channels + c) * spatial
                                    for i in base..<(base + spatial) {
                                        dx.p[i] = k * (count * dy.p[i] - meanDy - h.p[i] * meanDyH)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for c in 0..<channels {
            if updateWeight { weight.gradient.withUnsafeMutableBufferPointer { $0[c] += Float(sums[2 * c + 1]) } }
            if updateBias { bias.gradient.withUnsafeMutableBufferPointer { $0[c] += Float(sums[2 * c]) } }
        }
        return inputGradient
    }
}

/// A `Double` buffer shared by workers that write disjoint parts (see ``SharedPointer``).
struct SharedDoubles: @unchecked Sendable {
    var p: UnsafeMutablePointer<Double>
    init(_ p: UnsafeMutablePointer<Double>) { self.p = p }
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
