import Datasets
import Training
import Layers
import TensorCore

/// k-means at any depth (Coates & Ng 2011, multi-layer): the filters of a stage's
/// bias-free ``Conv2D`` become unit-norm k-means centroids of ZCA-whitened windows of what
/// the convolution reads — the frozen stages' output after the stage's own leading layers
/// (its batch norm, calibrated first, and padding) — folded through the whitening, so
/// the filter computes `c · Z·x` (the dot product of a whitened window with a centroid).
///
/// Usable as a ``StagePreparation`` (a start for another objective) or on its own with
/// ``fit(stage:layers:below:using:)`` (k-means as the stage's whole training).
public struct DeepKMeansStart: StagePreparation {
    /// Images whose windows are clustered.
    public var dataset: any ImageDataset
    public var normalization: ChannelNormalization?
    /// Images pushed through the frozen stages.
    public var imageCount: Int
    /// Windows sampled from them.
    public var windowCount: Int
    /// ZCA ε relative to the mean window variance.
    public var relativeEpsilon: Float
    /// Lloyd iterations.
    public var iterations: Int

    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` for counts below
    ///   their minimum or an ε that is not positive and finite.
    public init(
        dataset: any ImageDataset, normalization: ChannelNormalization? = nil, imageCount: Int = 2_000,
        windowCount: Int = 50_000, relativeEpsilon: Float = 0.01, iterations: Int = 10
    ) throws {
        guard imageCount >= 1, windowCount >= 2, iterations >= 1 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "DeepKMeansStart",
                value: "images \(imageCount), windows \(windowCount), iterations \(iterations)",
                reason: "needs ≥ 1 image, ≥ 2 windows and ≥ 1 iteration")
        }
        guard relativeEpsilon > 0, relativeEpsilon.isFinite else {
            throw TrainerError.invalidOption(
                stage: nil, option: "DeepKMeansStart.relativeEpsilon", value: "\(relativeEpsilon)",
                reason: "must be positive and finite")
        }
        self.dataset = dataset
        self.normalization = normalization
        self.imageCount = imageCount
        self.windowCount = windowCount
        self.relativeEpsilon = relativeEpsilon
        self.iterations = iterations
    }

    public func prepare(
        stage: Int, layers: [any Layer], below: FrozenStack, using generator: inout SeededGenerator
    ) throws {
        try fit(stage: stage, layers: layers, below: below, using: &generator)
    }

    /// Calibrates the stage's batch norm, clusters whitened windows and sets the filters.
    public func fit(stage: Int, layers: [any Layer], below: FrozenStack, using generator: inout SeededGenerator) throws
    {
        guard let index = layers.firstIndex(where: { $0 is Conv2D }), let conv = layers[index] as? Conv2D else {
            throw TrainerError.invalidOption(
                stage: stage, option: "DeepKMeansStart", value: "no Conv2D", reason: "the stage needs a Conv2D")
        }
        guard conv.stride == 1, conv.padding == 0 else {
            throw TrainerError.invalidOption(
                stage: stage, option: "DeepKMeansStart", value: "stride \(conv.stride), padding \(conv.padding)",
                reason: "windows are sampled for an unpadded stride-1 convolution (pad with a layer before it)")
        }
        try StatisticsCalibration.calibrate(
            Array(layers[..<index]), below: below, dataset: dataset, normalization: normalization, using: &generator)
        let reader = FrozenStack(layers: below.layers + layers[..<index])
        let sampler = try InputWhitening(
            dataset: dataset,
            normalization: try normalization
                ?? ChannelNormalization(
                    mean: Array(repeating: 0, count: dataset.imageShape.channels),
                    std: Array(repeating: 1, count: dataset.imageShape.channels)),
            imageCount: imageCount, windowCount: windowCount, relativeEpsilon: relativeEpsilon)
        let windows = try sampler.sampleWindows(kernel: conv.kernelSize, below: reader, stage: stage, using: &generator)
        let zca = try ZCAWhitening.fit(patches: windows, epsilon: relativeEpsilon * Self.meanVariance(windows))
        var whitened = windows
        try zca.apply(to: &whitened)
        let result = try KMeans(clusters: conv.outputChannels, iterations: iterations).fit(whitened, using: &generator)
        conv.weight.value = try Self.foldedUnitFilters(
            result.centroids, whitening: zca.matrix, shape: conv.weight.value.shape)
    }

    static func meanVariance(_ x: Tensor) -> Float {
        let n = x.shape[0], d = x.shape[1]
        var sum = [Double](repeating: 0, count: d), sq = [Double](repeating: 0, count: d)
        x.withUnsafeBufferPointer { b in
            for r in 0..<n { for j in 0..<d { let v = Double(b[r * d + j]); sum[j] += v; sq[j] += v * v } }
        }
        var total = 0.0
        for j in 0..<d { total += sq[j] / Double(n) - (sum[j] / Double(n)) * (sum[j] / Double(n)) }
        return Float(max(total / Double(d), 1e-12))
    }

    /// Rows `ĉ_k · Z` for unit-norm centroids ĉ `[K, D]` and a symmetric whitening Z `[D, D]`,
    /// reshaped to `shape` (a conv weight `[K, C, k, k]` with C·k·k = D).
    public static func foldedUnitFilters(_ centroids: Tensor, whitening z: Tensor, shape: [Int]) throws -> Tensor {
        let k = centroids.shape[0], d = centroids.shape[1]
        var unit = centroids
        unit.withUnsafeMutableBufferPointer { c in
            for j in 0..<k {
                var s: Float = 0
                for i in 0..<d { s += c[j * d + i] * c[j * d + i] }
                let inv = 1 / max(s.squareRoot(), 1e-12)
                for i in 0..<d { c[j * d + i] *= inv }
            }
        }
        var out = Tensor.uninitialized(shape: shape)
        unit.withUnsafeBufferPointer { c in
            z.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { o in
                    BLAS.gemm(
                        transposeA: false, transposeB: false, m: k, n: d, k: d, alpha: 1, a: c.baseAddress!, lda: d,
                        b: w.baseAddress!, ldb: d, beta: 0, c: o.baseAddress!, ldc: d)
                }
            }
        }
        return out
    }
}
