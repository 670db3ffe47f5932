import Augmentations
import Datasets
import Layers
import Losses
import Optimizers
import TensorCore
import Training

/// Typed errors of ``WideProbe`` and its feature cache, thrown before any feature is
/// computed or any classifier step is taken.
public enum ProbeError: Error, Equatable, CustomStringConvertible {
    /// A tap's grid is larger than the map it pools.
    case gridLargerThanMap(tap: String, grid: Int, map: [Int])
    /// A map whose sides the grid does not divide (equal cells are required).
    case mapCannotReachGrid(tap: String, grid: Int, map: [Int])
    /// The feature matrices would need more memory than the limit allows.
    case featureCacheTooLarge(bytes: Int, limit: Int)
    /// An option out of range.
    case invalidOption(option: String, value: String, reason: String)

    public var description: String {
        switch self {
        case let .gridLargerThanMap(tap, grid, map):
            return "probe tap \(tap): a \(grid)x\(grid) pooling grid is larger than its \(map) map"
        case let .mapCannotReachGrid(tap, grid, map):
            return "probe tap \(tap): the \(map) map cannot be pooled to \(grid)x\(grid) equal cells "
                + "(the sides must be multiples of \(grid))"
        case let .featureCacheTooLarge(bytes, limit):
            return "probe features need \(Self.size(bytes)), more than the \(Self.size(limit)) limit "
                + "(pool to a coarser grid, tap fewer stages or raise the limit)"
        case let .invalidOption(option, value, reason):
            return "probe \(option) = \(value) is invalid: \(reason)"
        }
    }

    /// Bytes in MB, or as bytes below one MB.
    private static func size(_ bytes: Int) -> String {
        bytes < 1_000_000 ? "\(bytes) bytes" : "\(bytes / 1_000_000) MB"
    }
}

/// Where a probe reads features: the output of stage `stage` (1-based) of a stack,
/// average-pooled to `grid × grid` equal cells (nil: the map as it is).
public struct ProbeTap: Sendable, Equatable {
    public var stage: Int
    public var grid: Int?
    public init(stage: Int, grid: Int? = nil) {
        self.stage = stage
        self.grid = grid
    }
    /// `stage3`, or `stage2@4x4` with a grid.
    public var label: String { "stage\(stage)" + (grid.map { "@\($0)x\($0)" } ?? "") }
}

/// A linear probe at SoftHebb's scale: frozen features of one or more stages (pooled to
/// a grid, concatenated), computed in chunks straight into one `[N, D]` matrix per split,
/// then mini-batch softmax regression with Adam, optional dropout on the inputs and a
/// step-halving learning rate.
///
/// Memory: the two feature matrices are the only large allocation (checked against
/// ``memoryLimitBytes`` before anything runs); chunks of ``chunkSize`` images go through
/// the stack. SoftHebb's readout is `WideProbe(epochs: 50, dropout: 0.5)` on the last
/// stage's 1,536 x 4 x 4 map.
public struct WideProbe: Sendable {
    public var epochs: Int
    public var learningRate: Float
    public var batchSize: Int
    /// Probability of zeroing an input feature while training (0 = no dropout).
    public var dropout: Float
    /// Epochs (fractions of ``epochs``) after which the learning rate halves. SoftHebb:
    /// 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9.
    public var halvingFractions: [Double]
    /// Standardise features with training statistics first.
    public var standardize: Bool
    /// Images per chunk when computing features.
    public var chunkSize: Int
    /// Upper bound on the bytes of both feature matrices.
    public var memoryLimitBytes: Int
    public var seed: UInt64
    /// Extra views of the training images: each adds the features of every training image
    /// transformed by it (e.g. `HorizontalFlip(probability: 1)`) as more training rows, with
    /// the same labels. The test images are never transformed. Empty (the default) is
    /// SoftHebb's readout.
    public var trainingViews: [any Augmentation]

    public init(
        epochs: Int = 50, learningRate: Float = 1e-3, batchSize: Int = 64, dropout: Float = 0.5,
        halvingFractions: [Double] = [0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9], standardize: Bool = false,
        chunkSize: Int = 250, memoryLimitBytes: Int = 8_000_000_000, seed: UInt64 = 0,
        trainingViews: [any Augmentation] = []
    ) {
        self.epochs = epochs
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.dropout = dropout
        self.halvingFractions = halvingFractions
        self.standardize = standardize
        self.chunkSize = chunkSize
        self.memoryLimitBytes = memoryLimitBytes
        self.seed = seed
        self.trainingViews = trainingViews
    }

    /// What a probe measured.
    public struct Result: Sendable, Equatable {
        public var trainAccuracy: Float
        public var testAccuracy: Float
        public var featureCount: Int
        /// Test accuracy after epoch 1, every 10th epoch and the last.
        public var testAccuracyByEpoch: [EpochEvaluation]
        public var featureSeconds: Double
        public var trainingSeconds: Double
    }

    /// Checks the options and the taps against `stages` for `imageShape` images, and the
    /// feature cache for `rows` images against the memory limit. Returns the feature width.
    public func validate(stages: [[any Layer]], taps: [ProbeTap], imageShape: ImageShape, rows: Int) throws -> Int {
        guard epochs >= 1, batchSize >= 1, chunkSize >= 1 else {
            throw ProbeError.invalidOption(
                option: "epochs/batchSize/chunkSize", value: "\(epochs)/\(batchSize)/\(chunkSize)",
                reason: "must be ≥ 1")
        }
        guard learningRate > 0, learningRate.isFinite else {
            throw ProbeError.invalidOption(
                option: "learningRate", value: "\(learningRate)", reason: "must be positive and finite")
        }
        guard dropout >= 0, dropout < 1 else {
            throw ProbeError.invalidOption(option: "dropout", value: "\(dropout)", reason: "must be in [0, 1)")
        }
        guard !taps.isEmpty else {
            throw ProbeError.invalidOption(option: "taps", value: "[]", reason: "tap at least one stage")
        }
        var width = 0
        for tap in taps {
            guard tap.stage >= 1, tap.stage <= stages.count else {
                throw ProbeError.invalidOption(
                    option: "tap", value: "stage \(tap.stage)", reason: "the stack has \(stages.count) stages")
            }
            var shape = [1, imageShape.channels, imageShape.height, imageShape.width]
            for layer in stages[..<tap.stage].joined() {
                do { shape = try layer.outputShape(for: shape) } catch {
                    throw ProbeError.invalidOption(
                        option: "tap", value: tap.label, reason: "the stack rejects the images: \(error)")
                }
            }
            width += try Self.pooledWidth(tap: tap, map: shape)
        }
        let bytes = rows * width * MemoryLayout<Float>.size
        guard bytes <= memoryLimitBytes else {
            throw ProbeError.featureCacheTooLarge(bytes: bytes, limit: memoryLimitBytes)
        }
        return width
    }

    static func pooledWidth(tap: ProbeTap, map: [Int]) throws -> Int {
        guard map.count == 4 else { return map.dropFirst().reduce(1, *) }
        guard let g = tap.grid else { return map[1] * map[2] * map[3] }
        guard g >= 1 else { throw ProbeError.invalidOption(option: "grid", value: "\(g)", reason: "must be ≥ 1") }
        guard g <= map[2], g <= map[3] else { throw ProbeError.gridLargerThanMap(tap: tap.label, grid: g, map: map) }
        guard map[2] % g == 0, map[3] % g == 0 else {
            throw ProbeError.mapCannotReachGrid(tap: tap.label, grid: g, map: map)
        }
        return map[1] * g * g
    }

    /// Features `[V·N, D]` of `dataset` at `taps` (concatenated in order), chunk by chunk:
    /// the N images as they are (a nil view) or transformed by each of `views`, view after view.
    public func features(
        stages: [[any Layer]], taps: [ProbeTap], of dataset: any ImageDataset, normalization: ChannelNormalization?,
        views: [(any Augmentation)?] = [nil]
    ) throws -> (features: Tensor, labels: [Int]) {
        let n = dataset.count, rows = n * views.count
        let width = try validate(stages: stages, taps: taps, imageShape: dataset.imageShape, rows: rows)
        let deepest = taps.map(\.stage).max()!
        var out = Tensor.uninitialized(shape: [rows, width])
        var labels: [Int] = []
        labels.reserveCapacity(rows)
        var unused = SeededGenerator(seed: 0)
        for (v, view) in views.enumerated() {
            var generator = SeededGenerator(seed: seed &+ 1 &+ UInt64(v))
            for start in stride(from: 0, to: n, by: chunkSize) {
                let end = min(n, start + chunkSize)
                var batch = try makeBatch(
                    from: dataset, indices: start..<end, normalization: normalization, using: &unused)
                if let view { batch.images = try Self.transform(batch.images, by: view, using: &generator) }
                labels += batch.labels
                try write(
                    stages: stages, taps: taps, deepest: deepest, images: batch.images, row: v * n + start,
                    width: width, into: &out)
            }
        }
        return (out, labels)
    }

    /// The features of `images` (a batch) at `taps`, into rows `row…` of `out`.
    private func write(
        stages: [[any Layer]], taps: [ProbeTap], deepest: Int, images: Tensor, row start: Int, width: Int,
        into out: inout Tensor
    ) throws {
        var x = images
        var column = 0
        var maps: [Int: Tensor] = [:]
        for k in 0..<deepest {
            for layer in stages[k] { x = layer.forward(x, mode: .inference) }
            maps[k + 1] = x
        }
        for tap in taps {
            let map = maps[tap.stage]!
            let w = try Self.pooledWidth(tap: tap, map: map.shape)
            out.withUnsafeMutableBufferPointer { dst in
                Self.pool(map, grid: tap.grid, into: dst.baseAddress! + start * width + column, rowStride: width)
            }
            column += w
        }
    }

    /// Each image of a `[B, C, H, W]` batch transformed by `view` (which must keep its shape).
    static func transform(
        _ images: Tensor, by view: any Augmentation, using generator: inout SeededGenerator
    ) throws -> Tensor {
        let s = images.shape, per = s[1] * s[2] * s[3]
        var out = images
        for i in 0..<s[0] {
            let image = try images.withUnsafeBufferPointer { b in
                try Image(Tensor(shape: Array(s[1...]), values: Array(b[(i * per)..<((i + 1) * per)])))
            }
            let moved = view.apply(to: image, using: &generator).tensor
            guard moved.shape == image.tensor.shape else {
                throw ProbeError.invalidOption(
                    option: "trainingViews", value: "\(type(of: view))",
                    reason: "changes the image shape from \(image.tensor.shape) to \(moved.shape)")
            }
            out.withUnsafeMutableBufferPointer { dst in
                moved.withUnsafeBufferPointer { (dst.baseAddress! + i * per).update(from: $0.baseAddress!, count: per) }
            }
        }
        return out
    }

    /// Average-pools each image of `map` to `grid × grid` cells (or copies it) into rows
    /// of `dst` `rowStride` apart, channel-major (c, gy, gx) like a flattened NCHW map.
    public static func pool(_ map: Tensor, grid: Int?, into dst: UnsafeMutablePointer<Float>, rowStride: Int) {
        let s = map.shape, n = s[0], per = map.count / max(1, n)
        map.withUnsafeBufferPointer { src in
            guard s.count == 4, let g = grid, g != s[2] || g != s[3] else {
                for i in 0..<n { (dst + i * rowStride).update(from: src.baseAddress! + i * per, count: per) }
                return
            }
            let c = s[1], h = s[2], w = s[3], ch = h / g, cw = w / g
            let scale = 1 / Float(ch * cw)
            for i in 0..<n {
                for k in 0..<c {
                    let plane = src.baseAddress! + (i * c + k) * h * w
                    let row = dst + i * rowStride + k * g * g
                    for gy in 0..<g {
                        for gx in 0..<g {
                            var sum: Float = 0
                            for y in (gy * ch)..<((gy + 1) * ch) {
                                for x in (gx * cw)..<((gx + 1) * cw) { sum += plane[y * w + x] }
                            }
                            row[gy * g + gx] = sum * scale
                        }
                    }
                }
            }
        }
    }

    /// Features of both splits, then the classifier (see ``train(train:trainLabels:test:testLabels:classCount:)``).
    public func evaluate(
        stages: [[any Layer]], taps: [ProbeTap], train: any ImageDataset, test: any ImageDataset,
        normalization: ChannelNormalization? = nil, log: (String) -> Void = { _ in }
    ) throws -> Result {
        let views: [(any Augmentation)?] = [nil] + trainingViews.map { $0 }
        let width = try validate(
            stages: stages, taps: taps, imageShape: train.imageShape, rows: train.count * views.count + test.count)
        let clock = ContinuousClock(), start = clock.now
        let tr = try features(stages: stages, taps: taps, of: train, normalization: normalization, views: views)
        let te = try features(stages: stages, taps: taps, of: test, normalization: normalization)
        let featureSeconds = Self.seconds(clock.now - start)
        log("probe \(taps.map(\.label).joined(separator: "+")): \(width) features in \(Int(featureSeconds)) s")
        let classes = max(train.classCount ?? 0, (tr.labels.max() ?? 0) + 1)
        var result = try self.train(
            train: tr.features, trainLabels: tr.labels, test: te.features, testLabels: te.labels,
            classCount: classes, log: log)
        result.featureSeconds = featureSeconds
        return result
    }

    /// Softmax regression on precomputed features (modified in place when standardising).
    public func train(
        train xs: Tensor, trainLabels: [Int], test xt: Tensor, testLabels: [Int], classCount: Int,
        log: (String) -> Void = { _ in }
    ) throws -> Result {
        guard xs.shape.count == 2, xt.shape.count == 2, xs.shape[1] == xt.shape[1], xs.shape[0] == trainLabels.count,
            xt.shape[0] == testLabels.count, xs.shape[0] > 0, classCount >= 1
        else {
            throw ProbeError.invalidOption(
                option: "features", value: "train \(xs.shape), test \(xt.shape)",
                reason: "need [N, D] matrices of equal width, one label per row")
        }
        let clock = ContinuousClock(), start = clock.now
        var xs = xs, xt = xt
        if standardize { Self.standardize(&xs, &xt) }
        let n = xs.shape[0], d = xs.shape[1]
        var generator = SeededGenerator(seed: seed)
        let layer = try Linear(
            inputFeatures: d, outputFeatures: classCount, initializer: .fanInUniform, using: &generator)
        layer.needsInputGradient = false
        let adam = Adam(learningRate: learningRate)
        try adam.validate()
        let loss = SoftmaxCrossEntropy()
        let halvings = Set(halvingFractions.map { Int(Double(epochs) * $0) })
        var order = Array(0..<n)
        var evaluations: [EpochEvaluation] = []
        var batch = Tensor.uninitialized(shape: [min(batchSize, n), d])
        for epoch in 1...epochs {
            order.shuffle(using: &generator)
            for first in stride(from: 0, to: n, by: batchSize) {
                let rows = min(batchSize, n - first)
                if batch.shape[0] != rows { batch = Tensor.uninitialized(shape: [rows, d]) }
                let labels = (0..<rows).map { trainLabels[order[first + $0]] }
                Self.gatherRows(xs, order[first..<(first + rows)], into: &batch, dropout: dropout, using: &generator)
                layer.zeroGradients()
                let (_, gradient) = try loss.evaluate(logits: layer.forward(batch, mode: .training), labels: labels)
                _ = layer.backward(gradient)
                adam.update(layer.parameters)
            }
            if halvings.contains(epoch) { adam.learningRate *= 0.5 }
            // Scored after epoch 1, every 10th and the last (scoring every epoch costs a pass over the test set).
            if epoch == 1 || epoch % 10 == 0 || epoch == epochs {
                evaluations.append(EpochEvaluation(epoch: epoch, accuracy: Self.accuracy(layer, xt, testLabels)))
                log("probe epoch \(epoch)/\(epochs): test accuracy \(evaluations.last!.accuracy)")
            }
        }
        return Result(
            trainAccuracy: Self.accuracy(layer, xs, trainLabels), testAccuracy: evaluations.last!.accuracy,
            featureCount: d, testAccuracyByEpoch: evaluations, featureSeconds: 0,
            trainingSeconds: Self.seconds(clock.now - start))
    }

    /// Copies rows `indices` of `x` into `batch`, zeroing each value with probability
    /// `dropout` and scaling the kept ones by 1 / (1 − dropout). Four 16-bit draws per
    /// random word keep the mask cheap next to the GEMMs; they mask four values at once,
    /// without a branch (a branch per value, taken at random, ran at about 20 ns a value).
    static func gatherRows(
        _ x: Tensor, _ indices: ArraySlice<Int>, into batch: inout Tensor, dropout: Float,
        using generator: inout SeededGenerator
    ) {
        let d = x.shape[1]
        var rng = generator  // a local copy: no exclusivity checks in the inner loop
        let threshold = UInt64((1 - Double(dropout)) * 65_536), scale = 1 / (1 - dropout)
        x.withUnsafeBufferPointer { src in
            batch.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    let from = src.baseAddress! + i * d, to = dst.baseAddress! + r * d
                    guard dropout > 0 else {
                        to.update(from: from, count: d)
                        continue
                    }
                    var j = 0
                    while j + 4 <= d {
                        let word = rng.next()
                        let low = UInt32(truncatingIfNeeded: word), high = UInt32(truncatingIfNeeded: word >> 32)
                        let draws = SIMD4<UInt32>(low & 0xFFFF, low >> 16, high & 0xFFFF, high >> 16)
                        let values = UnsafeRawPointer(from + j).loadUnaligned(as: SIMD4<Float>.self) * scale
                        let kept = values.replacing(with: 0, where: draws .>= SIMD4(repeating: UInt32(threshold)))
                        UnsafeMutableRawPointer(to + j).storeBytes(of: kept, as: SIMD4<Float>.self)
                        j += 4
                    }
                    if j < d {
                        var word = rng.next()
                        for k in j..<d {
                            to[k] = (word & 0xFFFF) < threshold ? from[k] * scale : 0
                            word >>= 16
                        }
                    }
                }
            }
        }
        generator = rng
    }

    static func accuracy(_ layer: Linear, _ x: Tensor, _ labels: [Int]) -> Float {
        var correct = 0
        let n = x.shape[0], d = x.shape[1], chunk = 2_000
        for first in stride(from: 0, to: n, by: chunk) {
            let rows = min(chunk, n - first)
            var part = Tensor.uninitialized(shape: [rows, d])
            x.withUnsafeBufferPointer { src in
                part.withUnsafeMutableBufferPointer {
                    $0.baseAddress!.update(from: src.baseAddress! + first * d, count: rows * d)
                }
            }
            let logits = layer.forward(part, mode: .inference)
            let classes = logits.shape[1]
            logits.withUnsafeBufferPointer { l in
                for r in 0..<rows {
                    var best = 0
                    for c in 1..<classes where l[r * classes + c] > l[r * classes + best] { best = c }
                    if best == labels[first + r] { correct += 1 }
                }
            }
        }
        return Float(correct) / Float(max(1, n))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// Standardises both matrices in place with the training columns' mean and deviation.
    static func standardize(_ xs: inout Tensor, _ xt: inout Tensor) {
        let n = xs.shape[0], d = xs.shape[1]
        var mean = [Double](repeating: 0, count: d), sq = [Double](repeating: 0, count: d)
        xs.withUnsafeBufferPointer { b in
            for r in 0..<n { for j in 0..<d { let v = Double(b[r * d + j]); mean[j] += v; sq[j] += v * v } }
        }
        let mu = mean.map { Float($0 / Double(n)) }
        let inv = (0..<d).map { j in
            1 / Float(max((sq[j] / Double(n) - (mean[j] / Double(n)) * (mean[j] / Double(n))).squareRoot(), 1e-6))
        }
        for k in 0..<2 {
            func apply(_ t: inout Tensor) {
                let rows = t.shape[0]
                t.withUnsafeMutableBufferPointer { b in
                    for r in 0..<rows { for j in 0..<d { b[r * d + j] = (b[r * d + j] - mu[j]) * inv[j] } }
                }
            }
            if k == 0 { apply(&xs) } else { apply(&xt) }
        }
    }
}
