import Datasets
import Layers
import TensorCore
import Training

/// The single-layer k-means baseline of Coates, Lee & Ng (2011), "An Analysis of
/// Single-Layer Networks in Unsupervised Feature Learning": random `k × k` patches →
/// per-patch contrast normalisation → ZCA whitening → k-means centroids.
///
/// The fitted baseline enters a comparison like any pretrained first stage:
/// - ``encoder()`` gives Coates' exact feature map, a ``TriangleEncoder`` (contrast
///   normalisation, whitening, triangle activation over every window);
/// - ``convolution()`` gives a plain ``Conv2D`` whose filters are the centroids folded
///   through the whitening (the "dot-product" encoding `c_k · W(x − μ)`), which goes
///   wherever a pretrained stage's convolution goes (frozen or fine-tuned transfer).
///   Per-patch contrast normalisation divides every window by its own standard deviation,
///   which no linear filter can do, so this form **omits** it: it sees raw (channel-
///   normalised) windows, whose scale is smaller than that of the contrast-normalised
///   patches the whitening was fitted on. A BatchNorm after the stage absorbs the scale.
///
/// Measured (K = 64, fitted on CIFAR-100, linear probe on CIFAR-10 16k/4k; see
/// `KMeansBaselineExperiment` in the tests): the folded convolution + ReLU probes at 63.5%
/// on normalised input (62.9% raw), the triangle encoder at 60.9% (raw pixels).
///
/// Input scale: the baseline is fitted on what the rest of the pipeline feeds its first
/// stage: [0, 1] pixels, or — when `normalization` is given — the same per-channel
/// standardised pixels (`makeBatch(from:indices:augmentation:normalization:using:)`
/// applies that). Pass the same normalisation when using its layers.
public struct KMeansBaseline: Sendable {
    /// `[K, D]` centroids in whitened space, `D = C · k · k` in `(c, y, x)` order.
    public var centroids: Tensor
    /// The ZCA whitening fitted on the contrast-normalised patches.
    public var whitening: ZCAWhitening
    /// Input channels C.
    public var channels: Int
    /// Window size k.
    public var kernelSize: Int
    /// ε of the per-patch contrast normalisation in the units of the encoder's input
    /// (the `contrastEpsilon` argument of the static `fit` method).
    public var contrastEpsilon: Float
    /// The input normalisation the baseline was fitted under (nil: raw [0, 1] pixels).
    public var normalization: ChannelNormalization?
    /// Diagnostics of the k-means run (nil for a restored baseline).
    public var inertia: Double?

    /// Number of filters K.
    public var filters: Int { centroids.shape[0] }

    /// Restores a fitted baseline (e.g. from a checkpoint).
    /// - Throws: ``BaselineError`` when the centroids are not `[K ≥ 1, C·k·k]`, the whitening
    ///   has another dimension, ε is not positive, or the normalisation has another channel count.
    public init(
        centroids: Tensor, whitening: ZCAWhitening, channels: Int, kernelSize: Int, contrastEpsilon: Float,
        normalization: ChannelNormalization? = nil
    ) throws {
        guard channels >= 1 else {
            throw BaselineError.invalidOption(name: "channels", value: "\(channels)", reason: "must be ≥ 1")
        }
        guard kernelSize >= 1 else {
            throw BaselineError.invalidOption(name: "kernelSize", value: "\(kernelSize)", reason: "must be ≥ 1")
        }
        let d = channels * kernelSize * kernelSize
        guard centroids.shape.count == 2, centroids.shape[0] >= 1, centroids.shape[1] == d else {
            throw BaselineError.shapeMismatch(what: "centroids", expected: "[K ≥ 1, \(d)]", got: "\(centroids.shape)")
        }
        guard whitening.dimension == d else {
            throw BaselineError.shapeMismatch(
                what: "whitening dimension", expected: "\(d)", got: "\(whitening.dimension)")
        }
        guard contrastEpsilon > 0, contrastEpsilon.isFinite else {
            throw BaselineError.invalidOption(
                name: "contrastEpsilon", value: "\(contrastEpsilon)", reason: "must be positive and finite")
        }
        if let normalization, normalization.channels != channels {
            throw BaselineError.shapeMismatch(
                what: "normalisation channels", expected: "\(channels)", got: "\(normalization.channels)")
        }
        self.centroids = centroids
        self.whitening = whitening
        self.channels = channels
        self.kernelSize = kernelSize
        self.contrastEpsilon = contrastEpsilon
        self.normalization = normalization
    }

    /// Fits the baseline on random patches of `dataset` (labels are not used).
    ///
    /// - Parameters:
    ///   - filters: number of centroids K (64 matches the reference's first-layer width).
    ///   - kernelSize: window size (Coates: 6).
    ///   - patches: random patches drawn (Coates: 400,000; 50,000 is plenty for K ≤ 256).
    ///   - whiteningEpsilon: ZCA regulariser on the contrast-normalised patches (Coates: 0.1).
    ///   - contrastEpsilon: per-patch contrast-normalisation ε **in 0…255 pixel units**
    ///     (Coates: 10). It is converted to the encoder's input units: `ε / 255²` for [0, 1]
    ///     pixels, times `mean_c(1 / std_c²)` when a channel normalisation rescales them.
    ///   - iterations: Lloyd iterations (Coates: 10; stops earlier on convergence).
    ///   - initialization: k-means initialisation.
    ///   - normalization: the per-channel standardisation the pipeline applies to its input,
    ///     or nil for raw [0, 1] pixels. Patches are drawn after applying it.
    ///   - communicator: the ranks of a data-parallel job: every rank draws the same patches
    ///     and fits the same whitening; the k-means iterations split the rows (see
    ///     ``KMeans/fit(_:communicator:using:)``).
    /// - Throws: ``BaselineError`` for bad options, ``DatasetError`` when the dataset is
    ///   empty or its images are smaller than the window.
    public static func fit<G: RandomNumberGenerator>(
        dataset: any ImageDataset, filters: Int = 64, kernelSize: Int = 6, patches: Int = 50_000,
        whiteningEpsilon: Float = 0.1, contrastEpsilon: Float = 10, iterations: Int = 10,
        initialization: KMeans.Initialization = .randomRows, normalization: ChannelNormalization? = nil,
        communicator: any Communicator = SingleProcessCommunicator(), using generator: inout G
    ) throws -> KMeansBaseline {
        let kmeans = try KMeans(clusters: filters, iterations: iterations, initialization: initialization)
        guard patches >= max(2, filters) else {
            throw BaselineError.invalidOption(
                name: "patches", value: "\(patches)", reason: "must be ≥ 2 and ≥ the number of filters (\(filters))")
        }
        guard contrastEpsilon > 0, contrastEpsilon.isFinite else {
            throw BaselineError.invalidOption(
                name: "contrastEpsilon", value: "\(contrastEpsilon)", reason: "must be positive and finite")
        }
        guard whiteningEpsilon > 0, whiteningEpsilon.isFinite else {
            throw BaselineError.invalidOption(
                name: "whiteningEpsilon", value: "\(whiteningEpsilon)", reason: "must be positive and finite")
        }
        let shape = dataset.imageShape
        if let normalization, normalization.channels != shape.channels {
            throw BaselineError.shapeMismatch(
                what: "normalisation channels", expected: "\(shape.channels) (the dataset's)",
                got: "\(normalization.channels)")
        }
        var x = try PatchExtraction.extractRandomPatches(
            from: dataset, count: patches, size: kernelSize, using: &generator)
        if let normalization {
            // Rows are (c, y, x): channel c owns a run of k·k values.
            let plane = kernelSize * kernelSize, d = shape.channels * plane
            x.withUnsafeMutableBufferPointer { b in
                for r in 0..<patches { normalization.apply(toImage: b.baseAddress! + r * d, planeSize: plane) }
            }
        }
        let epsilon = effectiveContrastEpsilon(contrastEpsilon, normalization: normalization)
        PatchContrastNormalization.apply(to: &x, epsilon: epsilon)
        let whitening = try ZCAWhitening.fit(patches: x, epsilon: whiteningEpsilon)
        try whitening.apply(to: &x)
        let result = try kmeans.fit(x, communicator: communicator, using: &generator)
        var baseline = try KMeansBaseline(
            centroids: result.centroids, whitening: whitening, channels: shape.channels, kernelSize: kernelSize,
            contrastEpsilon: epsilon, normalization: normalization)
        baseline.inertia = result.inertia
        return baseline
    }

    /// Coates' ε (0…255 units) in the units of the encoder's input.
    public static func effectiveContrastEpsilon(_ epsilon: Float, normalization: ChannelNormalization?) -> Float {
        var e = epsilon / (255 * 255)
        if let normalization {
            let meanInverseVariance =
                normalization.std.reduce(Float(0)) { $0 + 1 / ($1 * $1) } / Float(normalization.channels)
            e *= meanInverseVariance
        }
        return e
    }

    /// The folded filters: `weight[k] = W · c_k` (`[K, C, k, k]`) and `bias[k] = −weight[k] · μ`,
    /// so that `weight[k] · x + bias[k] = c_k · ((x − μ) · W)` for a window `x`.
    public func foldedFilters() -> (weight: Tensor, bias: Tensor) {
        let k = filters, d = whitening.dimension
        var weight = Tensor.uninitialized(shape: [k, d])
        centroids.withUnsafeBufferPointer { c in
            whitening.matrix.withUnsafeBufferPointer { w in
                weight.withUnsafeMutableBufferPointer { out in
                    // x̂ = (x − μ)·W, so x̂·c = (x − μ)·(W c): weight rows = C · Wᵀ.
                    BLAS.gemm(
                        transposeA: false, transposeB: true, m: k, n: d, k: d, alpha: 1,
                        a: c.baseAddress!, lda: d, b: w.baseAddress!, ldb: d, beta: 0, c: out.baseAddress!, ldc: d)
                }
            }
        }
        var bias = Tensor.zeros([k])
        weight.withUnsafeBufferPointer { w in
            whitening.mean.withUnsafeBufferPointer { mu in
                bias.withUnsafeMutableBufferPointer { b in
                    for j in 0..<k {
                        var s = 0.0
                        for i in 0..<d { s += Double(w[j * d + i]) * Double(mu[i]) }
                        b[j] = Float(-s)
                    }
                }
            }
        }
        return (weight.unsafeReshaped([k, channels, kernelSize, kernelSize]), bias)
    }

    /// A `Conv2D` (stride 1, no padding) computing the dot-product encoding
    /// `c_k · W(x − μ)` of every window, **without** per-patch contrast normalisation
    /// (see the type's documentation). Its parameters are trainable unless you freeze them.
    public func convolution() throws -> Conv2D {
        var unused = SeededGenerator(seed: 0)  // the initial draw is overwritten
        let conv = try Conv2D(
            inputChannels: channels, outputChannels: filters, kernelSize: kernelSize, bias: true, using: &unused)
        let (weight, bias) = foldedFilters()
        conv.weight.value = weight
        conv.bias?.value = bias
        return conv
    }

    /// A ``WhitenedConv2D`` over another whitening (`whiteningMean`, `whiteningMatrix`, e.g.
    /// the contrastive recipe's ZCA) that computes exactly ``convolution()`` (times a positive
    /// `scale`): the k-means filters expressed in that layer's whitened coordinates,
    /// W = scale · W_eff Z⁻¹, b = scale · (b_eff + W_eff μ). Use it as a data-dependent
    /// initialisation of contrastive training (Krähenbühl et al. 2016).
    /// - Throws: ``LayerError`` when the whitening does not have this baseline's window
    ///   dimension, is not positive definite, or `scale` is not positive.
    public func whitenedConvolution(
        whiteningMean: Tensor, whiteningMatrix: Tensor, scale: Float = 1
    ) throws -> WhitenedConv2D {
        var unused = SeededGenerator(seed: 0)  // the initial draw is overwritten
        let layer = try WhitenedConv2D(
            inputChannels: channels, outputChannels: filters, kernelSize: kernelSize, whiteningMean: whiteningMean,
            whiteningMatrix: whiteningMatrix, using: &unused)
        let (weight, bias) = foldedFilters()
        try layer.setFoldedParameters(weight: weight, bias: bias, scale: scale)
        return layer
    }

    /// The folded convolution's tensors under the names a pretrained stage uses
    /// (`"<prefix>.weight"`, `"<prefix>.bias"`), for `TransferClassifier`'s `pretrained`
    /// argument when the stage's first layer is a matching `Conv2D` (default: layer 0 of
    /// stage 1, ``StateKey/layer(stage:index:)``).
    public func convolutionState(prefix: String = StateKey.layer(stage: 1, index: 0)) -> [String: Tensor] {
        let (weight, bias) = foldedFilters()
        return [LayerTree.join(prefix, "weight"): weight, LayerTree.join(prefix, "bias"): bias]
    }

    /// Coates' exact encoder: contrast normalisation, whitening and the triangle activation
    /// over every window (stride 1), `[N, K, H − k + 1, W − k + 1]`.
    public func encoder() throws -> TriangleEncoder {
        try TriangleEncoder(
            centroids: centroids, whiteningMean: whitening.mean, whiteningMatrix: whitening.matrix,
            inputChannels: channels, kernelSize: kernelSize, contrastEpsilon: contrastEpsilon)
    }
}
