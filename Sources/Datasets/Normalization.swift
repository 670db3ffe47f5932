import TensorCore

/// Per-channel standardisation: `(x − mean[c]) / std[c]`.
///
/// Fit it on the training images (values in [0, 1]) and save it with the model, so that
/// evaluation data is transformed identically.
public struct ChannelNormalization: Sendable, Codable, Equatable {
    public var mean: [Float]
    public var std: [Float]

    /// - Throws: ``DatasetError`` unless both arrays have the same non-zero length and every std is > 0 and finite.
    public init(mean: [Float], std: [Float]) throws {
        guard !mean.isEmpty, mean.count == std.count else {
            throw DatasetError.shapeMismatch(
                what: "normalisation std count", expected: "\(mean.count) (one per mean)", got: "\(std.count)")
        }
        for (c, s) in std.enumerated() where !(s > 0 && s.isFinite) {
            throw DatasetError.invalidOption(name: "std[\(c)]", value: "\(s)", reason: "must be positive and finite")
        }
        for (c, m) in mean.enumerated() where !m.isFinite {
            throw DatasetError.invalidOption(name: "mean[\(c)]", value: "\(m)", reason: "must be finite")
        }
        self.mean = mean
        self.std = std
    }

    /// Number of channels it normalises.
    public var channels: Int { mean.count }

    /// Mean and (population) standard deviation per channel over the first `maxImages`
    /// images (all when nil). A channel with zero variance gets std 1 so it maps to 0
    /// instead of dividing by zero. An empty dataset gives mean 0, std 1.
    public static func fit(_ dataset: any ImageDataset, maxImages: Int? = nil) -> ChannelNormalization {
        let s = dataset.imageShape
        let n = Swift.min(dataset.count, Swift.max(0, maxImages ?? dataset.count))
        let hw = s.height * s.width
        var sum = [Double](repeating: 0, count: s.channels)
        var sumSq = [Double](repeating: 0, count: s.channels)
        var buffer = [Float](repeating: 0, count: s.elementCount)
        buffer.withUnsafeMutableBufferPointer { b in
            for i in 0..<n {
                dataset.copyPixels(of: i, into: b)
                for c in 0..<s.channels {
                    var a = 0.0, q = 0.0
                    for p in 0..<hw { let v = Double(b[c * hw + p]); a += v; q += v * v }
                    sum[c] += a
                    sumSq[c] += q
                }
            }
        }
        let total = Double(n * hw)
        var mean = [Float](repeating: 0, count: s.channels), std = [Float](repeating: 1, count: s.channels)
        if total > 0 {
            for c in 0..<s.channels {
                let m = sum[c] / total
                let v = Swift.max(0, sumSq[c] / total - m * m)
                mean[c] = Float(m)
                let sd = Float(v.squareRoot())
                std[c] = sd > 1e-12 ? sd : 1
            }
        }
        return ChannelNormalization(unchecked: mean, std)
    }

    init(unchecked mean: [Float], _ std: [Float]) {
        self.mean = mean
        self.std = std
    }

    /// Normalises an [N, C, H, W] (or [C, H, W]) tensor in place.
    /// - Throws: ``DatasetError/shapeMismatch(what:expected:got:)`` when C differs from ``channels``.
    public func apply(to batch: inout Tensor) throws {
        let shape = batch.shape
        guard shape.count == 4 || shape.count == 3 else {
            throw DatasetError.shapeMismatch(
                what: "normalisation input rank", expected: "[N, C, H, W] or [C, H, W]", got: "\(shape)")
        }
        let c = shape.count == 4 ? shape[1] : shape[0]
        guard c == channels else {
            throw DatasetError.shapeMismatch(
                what: "normalisation channels", expected: "\(channels)", got: "\(c) in \(shape)")
        }
        let plane = shape[shape.count - 1] * shape[shape.count - 2]
        batch.withUnsafeMutableBufferPointer { b in
            let images = plane * c == 0 ? 0 : b.count / (plane * c)
            for i in 0..<images { apply(toImage: b.baseAddress! + i * plane * c, planeSize: plane) }
        }
    }

    /// Normalises one C × plane image at `pointer` in place (hot path for samplers and batches).
    @inlinable
    public func apply(toImage pointer: UnsafeMutablePointer<Float>, planeSize: Int) {
        for c in 0..<mean.count {
            let m = mean[c], inv = 1 / std[c]
            let p = pointer + c * planeSize
            for i in 0..<planeSize { p[i] = (p[i] - m) * inv }
        }
    }
}

/// Per-patch brightness and contrast normalisation (Coates, Lee & Ng 2011): every row
/// has its mean subtracted and is divided by `sqrt(variance + epsilon)`.
public enum PatchContrastNormalization {
    /// Coates et al. use ε = 10 on 0…255 pixels; on [0, 1] pixels that is 10 / 255².
    public static let defaultEpsilon: Float = 10.0 / (255.0 * 255.0)

    /// Normalises each row (first dimension) of `patches` in place; any trailing shape
    /// ([N, D] or [N, C, p, p]) is treated as one flat patch per row. A row of one value
    /// (zero variance) becomes all zeros, also with `epsilon` 0; never NaN.
    public static func apply(to patches: inout Tensor, epsilon: Float = defaultEpsilon) {
        guard let rows = patches.shape.first, rows > 0, patches.count > 0 else { return }
        let d = patches.count / rows
        patches.withUnsafeMutableBufferPointer { b in
            for r in 0..<rows {
                let p = b.baseAddress! + r * d
                var sum = 0.0
                for i in 0..<d { sum += Double(p[i]) }
                let mean = sum / Double(d)
                var sq = 0.0
                for i in 0..<d { let v = Double(p[i]) - mean; sq += v * v }
                // A constant row with ε = 0 (or a negative ε) has no scale: it becomes all
                // zeros rather than 0 · ∞ = NaN.
                let denominator = sq / Double(d) + Double(epsilon)
                let scale = denominator > 0 && denominator.isFinite ? Float(1 / denominator.squareRoot()) : 0
                let m = Float(mean)
                for i in 0..<d { p[i] = (p[i] - m) * scale }
            }
        }
    }
}
