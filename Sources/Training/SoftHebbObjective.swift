import Datasets
import Foundation
import Layers
import Optimizers
import TensorCore

/// The soft winner-take-all Hebbian rule of SoftHebb (Journé et al., ICLR 2023), for one
/// bias-free convolution: no loss and no backpropagation, only the layer's own input
/// and output.
///
/// For every output position (a row of the patch matrix `x`, `[R, L]`) with
/// pre-activations `u = x·Wᵀ` (`[R, O]`):
/// - soft competition: `s = softmax(u / temperature)` over the `O` filters;
/// - the winner (argmax u) gets `y = +s`, every other filter the anti-Hebbian `y = −s`;
/// - `ΔW = yᵀ·x − diag(Σ_rows y ⊙ u)·W`, then `ΔW /= max|ΔW|` (one scale for the layer);
/// - each filter moves by `η_o = η · (|‖W_o‖ − 1| + 1e-10)^power`, so filters far from
///   unit norm learn fast and a filter that reached the unit sphere stops.
public enum SoftHebbRule {
    /// The update `η_o · ΔW_o` for `weight` (`[O, L]` row-major, L = C·k·k) from `patches`
    /// (`[R, L]`), and how many positions each filter won.
    ///
    /// - Parameters:
    ///   - inverseTemperature: `1 / temperature` (SoftHebb's `t_invert`).
    ///   - learningRate: η.
    ///   - learningRatePower: the exponent of the norm-adaptive rate (SoftHebb: 0.5).
    public static func update(
        weight: Tensor, patches: Tensor, inverseTemperature: Float, learningRate: Float, learningRatePower: Float
    ) -> (delta: Tensor, wins: [Int]) {
        let o = weight.shape[0], l = weight.count / max(1, weight.shape[0])
        let r = patches.shape[0]
        precondition(patches.count == r * l, "SoftHebbRule: patches \(patches.shape) do not have \(l) columns")
        var u = Tensor.uninitialized(shape: [r, o])
        var delta = Tensor.uninitialized(shape: weight.shape)
        var wins = [Int](repeating: 0, count: o)
        var yu = [Double](repeating: 0, count: o)
        weight.withUnsafeBufferPointer { w in
            patches.withUnsafeBufferPointer { x in
                u.withUnsafeMutableBufferPointer { ub in
                    // u = x · Wᵀ: [R, L] × [O, L]ᵀ.
                    BLAS.gemm(
                        transposeA: false, transposeB: true, m: r, n: o, k: l, alpha: 1,
                        a: x.baseAddress!, lda: l, b: w.baseAddress!, ldb: l, beta: 0, c: ub.baseAddress!, ldc: o)
                    // u is overwritten row by row with y (its Σ y·u is taken first).
                    var scratch = [Float](repeating: 0, count: o)
                    scratch.withUnsafeMutableBufferPointer { e in
                        for row in 0..<r {
                            competeRow(
                                ub.baseAddress! + row * o, count: o, inverseTemperature: inverseTemperature,
                                scratch: e.baseAddress!, wins: &wins, yu: &yu)
                        }
                    }
                }
                u.withUnsafeBufferPointer { yb in
                    delta.withUnsafeMutableBufferPointer { d in
                        // yᵀ · x: [O, R] × [R, L].
                        BLAS.gemm(
                            transposeA: true, transposeB: false, m: o, n: l, k: r, alpha: 1,
                            a: yb.baseAddress!, lda: o, b: x.baseAddress!, ldb: l, beta: 0, c: d.baseAddress!, ldc: l)
                    }
                }
                delta.withUnsafeMutableBufferPointer { d in
                    var largest: Float = 0
                    for i in 0..<o {
                        let s = Float(yu[i])
                        for j in 0..<l {
                            let v = d[i * l + j] - s * w[i * l + j]
                            d[i * l + j] = v
                            largest = Swift.max(largest, abs(v))
                        }
                    }
                    let scale = 1 / (largest + 1e-30)
                    for i in 0..<o {
                        let rate =
                            learningRate * filterRateFactor(w.baseAddress! + i * l, count: l, power: learningRatePower)
                        for j in 0..<l { d[i * l + j] = d[i * l + j] * scale * rate }
                    }
                }
            }
        }
        return (delta, wins)
    }

    /// `(|‖w‖ − 1| + 1e-10)^power` for one filter.
    static func filterRateFactor(_ w: UnsafePointer<Float>, count: Int, power: Float) -> Float {
        var sq = 0.0
        for j in 0..<count { sq += Double(w[j]) * Double(w[j]) }
        return Float(Foundation.pow(abs(sq.squareRoot() - 1) + 1e-10, Double(power)))
    }

    /// Soft competition of one position: replaces `u` by `y` and accumulates `y ⊙ u`
    /// (`e` is scratch of `o` floats).
    @inline(__always)
    static func competeRow(
        _ u: UnsafeMutablePointer<Float>, count o: Int, inverseTemperature t: Float,
        scratch e: UnsafeMutablePointer<Float>, wins: inout [Int], yu: inout [Double]
    ) {
        var best = u[0], winner = 0
        for i in 1..<o where u[i] > best { best = u[i]; winner = i }
        var total: Float = 0
        for i in 0..<o {
            e[i] = Foundation.exp(t * (u[i] - best))
            total += e[i]
        }
        let inv = 1 / total
        for i in 0..<o {
            let s = e[i] * inv
            let y = i == winner ? s : -s
            yu[i] += Double(y * u[i])
            u[i] = y
        }
        wins[winner] += 1
    }
}

/// SoftHebb as a stage objective: each step takes the next `batchSize` whole images of
/// a shuffled pass over `dataset` (no labels, no augmentation), runs them through the
/// frozen stages and this stage's layers up to ``conv`` (in training mode, so a leading
/// ``BatchNorm`` normalises with batch statistics and updates its running ones, as
/// SoftHebb does) and computes ``SoftHebbRule``'s update of ``conv``.
///
/// The update is handed to the trainer as the gradient `−η_o·ΔW_o`, so the stage's
/// optimizer must apply it unchanged: `SGD(learningRate: 1)` with no momentum or weight
/// decay and a constant schedule (``makeOptimizer()`` returns one). The reported "loss"
/// is a convergence diagnostic, the mean `|‖W_o‖ − 1|`. Nothing is back-propagated, so
/// the rule works at any depth. One SoftHebb epoch is `dataset.count / batchSize` steps.
///
/// Resuming from a checkpoint restores the weights and statistics but starts a new
/// shuffled pass over the images.
public final class SoftHebbObjective: StageObjective {
    /// The trained convolution (one of the stage's layers, without bias).
    public let conv: Conv2D
    /// Images the stage learns from (labels are never read).
    public let dataset: any ImageDataset
    /// Per-channel normalisation applied to the images (nil: the dataset's values as they are).
    public let normalization: ChannelNormalization?
    /// Softmax temperature of the competition (SoftHebb's `1 / t_invert`).
    public let temperature: Float
    /// η of the norm-adaptive learning rate.
    public let learningRate: Float
    /// Exponent of the norm-adaptive learning rate.
    public let learningRatePower: Float
    /// Positions each filter won so far (a dead filter never wins).
    public private(set) var winCounts: [Int]

    private var order: [Int] = []
    private var cursor = 0

    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` for a temperature,
    ///   learning rate or power that is not positive and finite, a convolution with a bias,
    ///   or an empty dataset.
    public init(
        conv: Conv2D, dataset: any ImageDataset, normalization: ChannelNormalization? = nil,
        temperature: Float, learningRate: Float, learningRatePower: Float = 0.5
    ) throws {
        for (option, value) in [
            ("temperature", temperature), ("learningRate", learningRate),
            ("learningRatePower", learningRatePower),
        ] where !(value > 0 && value.isFinite) {
            throw TrainerError.invalidOption(
                stage: nil, option: "SoftHebb.\(option)", value: "\(value)", reason: "must be positive and finite")
        }
        guard conv.bias == nil else {
            throw TrainerError.invalidOption(
                stage: nil, option: "SoftHebb.conv", value: "a Conv2D with a bias",
                reason: "the rule trains bias-free convolutions")
        }
        guard dataset.count > 0 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "SoftHebb.dataset", value: "0 images", reason: "needs images")
        }
        self.conv = conv
        self.dataset = dataset
        self.normalization = normalization
        self.temperature = temperature
        self.learningRate = learningRate
        self.learningRatePower = learningRatePower
        self.winCounts = [Int](repeating: 0, count: conv.outputChannels)
    }

    /// The optimizer that applies the rule's update unchanged.
    public static func makeOptimizer() -> SGD { SGD(learningRate: 1) }

    public var inputChannels: Int? { dataset.imageShape.channels }

    public func prepare(embeddingFeatures: Int, using generator: inout SeededGenerator) throws {
        order = []
        cursor = 0
        winCounts = [Int](repeating: 0, count: conv.outputChannels)
    }

    /// The next `n` images of the shuffled pass (a new permutation when one ends).
    private func nextIndices(_ n: Int, using generator: inout SeededGenerator) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(n)
        while out.count < n {
            if cursor >= order.count {
                order = Array(0..<dataset.count)
                order.shuffle(using: &generator)
                cursor = 0
            }
            let take = min(n - out.count, order.count - cursor)
            out += order[cursor..<(cursor + take)]
            cursor += take
        }
        return out
    }

    public func step(_ context: StageStepContext, using generator: inout SeededGenerator) throws -> StepStatistics {
        let layers = context.trainable.layers
        guard let index = layers.firstIndex(where: { $0 === conv }) else {
            throw TrainerError.invalidOption(
                stage: context.stage, option: "SoftHebb.conv", value: "not among the stage's layers",
                reason: "pass the stage's own Conv2D to the objective")
        }
        let n = min(context.batchSize, dataset.count)
        let (images, _) = try makeBatch(
            from: dataset, indices: nextIndices(n, using: &generator),
            normalization: normalization, using: &generator)
        var x = context.frozen(images)
        for layer in layers[..<index] { x = layer.forward(x, mode: .training) }
        guard x.isFinite else { throw NonFiniteValue(what: "SoftHebb input") }
        let (delta, wins) = SoftHebbRule.update(
            weight: conv.weight.value, patches: Self.patches(of: x, conv: conv),
            inverseTemperature: 1 / temperature, learningRate: learningRate, learningRatePower: learningRatePower)
        for i in wins.indices { winCounts[i] += wins[i] }
        conv.weight.gradient.withUnsafeMutableBufferPointer { g in
            delta.withUnsafeBufferPointer { d in
                for i in 0..<d.count { g[i] -= d[i] }
            }
        }
        return StepStatistics(loss: Self.meanNormDistance(conv.weight.value, filters: conv.outputChannels), samples: n)
    }

    /// The im2row patch matrix `[N·positions, C·k·k]` of an NCHW batch `x` for `conv`'s
    /// geometry (the rows ``SoftHebbRule/update(weight:patches:inverseTemperature:learningRate:learningRatePower:)`` reads).
    public static func patches(of x: Tensor, conv: Conv2D) -> Tensor {
        let g = ConvGeometry(
            channels: conv.inputChannels, height: x.shape[2], width: x.shape[3],
            kernel: (conv.kernelSize, conv.kernelSize), stride: (conv.stride, conv.stride),
            padding: (conv.padding, conv.padding))
        var rows = Tensor.uninitialized(shape: [x.shape[0] * g.outputPositions, g.patchLength])
        x.withUnsafeBufferPointer { xb in
            rows.withUnsafeMutableBufferPointer { r in
                Im2Col.im2row(xb.baseAddress!, batch: x.shape[0], geometry: g, rows: r.baseAddress!)
            }
        }
        return rows
    }

    /// Mean over filters of `|‖W_o‖ − 1|`.
    static func meanNormDistance(_ weight: Tensor, filters: Int) -> Float {
        let l = weight.count / max(1, filters)
        var total = 0.0
        weight.withUnsafeBufferPointer { w in
            for i in 0..<filters {
                var sq = 0.0
                for j in 0..<l { sq += Double(w[i * l + j]) * Double(w[i * l + j]) }
                total += abs(sq.squareRoot() - 1)
            }
        }
        return Float(total / Double(max(1, filters)))
    }
}
