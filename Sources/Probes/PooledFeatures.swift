import Datasets
import Layers
import TensorCore
import Training

/// Scores of frozen features: quadrant-pooled features and their k-nearest-neighbour
/// accuracy.
extension Evaluation {
    /// Coates-style features of a whole dataset: the extractor's output → ReLU →
    /// sum-pooled over the four image quadrants (or globally when the map is smaller than
    /// 2x2) → flattened, `[N, 4·C]`. Rank-2 extractor outputs are passed through.
    ///
    /// Pooling happens batch by batch, so memory stays at `N · 4C` floats.
    ///
    /// With a `communicator` of several ranks each rank runs the extractor on its contiguous
    /// share of the images and the rows are gathered, so every rank returns all of them.
    public static func pooledFeatures(
        _ extractor: FeatureExtractor, of dataset: any ImageDataset, normalization: ChannelNormalization? = nil,
        batchSize: Int = 256, communicator: any Communicator = SingleProcessCommunicator()
    ) throws -> (features: Tensor, labels: [Int]) {
        guard dataset.count > 0 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "dataset", value: "0 images", reason: "needs at least one image")
        }
        let s = dataset.imageShape
        let outShape: [Int]
        do {
            outShape = try extractor.outputShape(for: [1, s.channels, s.height, s.width])
        } catch {
            throw TrainerError.incompatibleStage(stage: 1, layer: "feature extractor", reason: "\(error)")
        }
        let width = quadrantPooledWidth(outShape)
        var features = Tensor.uninitialized(shape: [dataset.count, width])
        var labels: [Int] = []
        labels.reserveCapacity(dataset.count)
        var unused = SeededGenerator(seed: 0)
        let shares = SingleProcessCommunicator.shares(of: dataset.count, parts: communicator.size)
        let mine = shares[communicator.rank]
        for start in stride(from: mine.lowerBound, to: mine.upperBound, by: max(1, batchSize)) {
            let batch = try makeBatch(
                from: dataset, indices: start..<min(mine.upperBound, start + batchSize), normalization: normalization,
                using: &unused)
            let out = extractor(batch.images)
            features.withUnsafeMutableBufferPointer { dst in
                quadrantPool(out, into: dst.baseAddress! + start * width)
            }
            labels += batch.labels
        }
        if communicator.size > 1 {
            try communicator.allGatherRows(&features, ranges: shares)
            labels = dataset.classCount == nil ? [] : (0..<dataset.count).map { dataset.label(at: $0) ?? -1 }
        }
        return (features, labels)
    }

    /// ReLU + quadrant sum-pooling of a feature batch `[N, C, H, W]` → `[N, 4·C]` (`[N, C]`
    /// for maps smaller than 2x2; rank-2 input gets only the ReLU). Odd sizes give the
    /// middle row/column to the first half.
    public static func quadrantPool(_ features: Tensor) -> Tensor {
        let width = quadrantPooledWidth(features.shape)
        var out = Tensor.uninitialized(shape: [features.shape.first ?? 0, width])
        out.withUnsafeMutableBufferPointer { quadrantPool(features, into: $0.baseAddress!) }
        return out
    }

    /// The width of ``quadrantPool(_:)``'s output for a feature shape (batch first).
    public static func quadrantPooledWidth(_ shape: [Int]) -> Int {
        guard shape.count == 4 else { return shape.dropFirst().reduce(1, *) }
        return shape[2] >= 2 && shape[3] >= 2 ? 4 * shape[1] : shape[1]
    }

    /// ReLU + quadrant sum-pooling of `x` `[N, C, H, W]` into `dst` (`N · width` floats).
    static func quadrantPool(_ x: Tensor, into dst: UnsafeMutablePointer<Float>) {
        let shape = x.shape
        x.withUnsafeBufferPointer { src in
            guard shape.count == 4 else {
                for i in 0..<src.count { dst[i] = max(0, src[i]) }
                return
            }
            let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
            let quadrants = h >= 2 && w >= 2
            let width = quadrants ? 4 * c : c
            let hy = (h + 1) / 2, hx = (w + 1) / 2  // odd sizes: the middle row/column goes to the first half
            for i in 0..<n {
                let out = dst + i * width
                for j in 0..<width { out[j] = 0 }
                for ch in 0..<c {
                    let plane = src.baseAddress! + (i * c + ch) * h * w
                    for y in 0..<h {
                        for xx in 0..<w {
                            let v = max(0, plane[y * w + xx])
                            if quadrants {
                                let q = (y < hy ? 0 : 2) + (xx < hx ? 0 : 1)
                                out[ch * 4 + q] += v
                            } else {
                                out[ch] += v
                            }
                        }
                    }
                }
            }
        }
    }

    /// k-nearest-neighbour accuracy with cosine similarity: each test row votes among its
    /// `k` most similar training rows (ties broken by summed similarity).
    ///
    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` for k < 1,
    ///   empty sets, or mismatched widths / label counts.
    public static func knnAccuracy(
        train: Tensor, trainLabels: [Int], test: Tensor, testLabels: [Int], k: Int, classCount: Int
    ) throws -> Float {
        guard k >= 1 else {
            throw TrainerError.invalidOption(stage: nil, option: "k", value: "\(k)", reason: "must be ≥ 1")
        }
        guard train.shape.count == 2, test.shape.count == 2, train.shape[1] == test.shape[1],
            train.shape[0] == trainLabels.count, test.shape[0] == testLabels.count,
            train.shape[0] > 0, test.shape[0] > 0
        else {
            throw TrainerError.invalidOption(
                stage: nil, option: "kNN features",
                value: "train \(train.shape) (\(trainLabels.count) labels), "
                    + "test \(test.shape) (\(testLabels.count) labels)",
                reason: "need non-empty [N, D] matrices of equal width with one label per row")
        }
        let a = normalizedRows(train), b = normalizedRows(test)
        let nTrain = a.shape[0], d = a.shape[1], kk = min(k, nTrain)
        var correct = 0
        let chunk = 256
        var sims = Tensor.uninitialized(shape: [chunk, nTrain])
        for start in stride(from: 0, to: b.shape[0], by: chunk) {
            let rows = min(chunk, b.shape[0] - start)
            b.withUnsafeBufferPointer { bb in
                a.withUnsafeBufferPointer { ab in
                    sims.withUnsafeMutableBufferPointer { sb in
                        BLAS.gemm(
                            transposeA: false, transposeB: true, m: rows, n: nTrain, k: d, alpha: 1,
                            a: bb.baseAddress! + start * d, lda: d, b: ab.baseAddress!, ldb: d,
                            beta: 0, c: sb.baseAddress!, ldc: nTrain)
                    }
                }
            }
            sims.withUnsafeBufferPointer { sb in
                var votes = [Float](repeating: 0, count: classCount)
                var counts = [Int](repeating: 0, count: classCount)
                var top: [(Float, Int)] = []
                top.reserveCapacity(kk + 1)
                for r in 0..<rows {
                    top.removeAll(keepingCapacity: true)
                    let row = sb.baseAddress! + r * nTrain
                    for j in 0..<nTrain {
                        let s = row[j]
                        if top.count < kk || s > top[top.count - 1].0 {
                            // Insertion into a short sorted list (k is small).
                            var pos = top.count
                            while pos > 0 && top[pos - 1].0 < s { pos -= 1 }
                            top.insert((s, j), at: pos)
                            if top.count > kk { top.removeLast() }
                        }
                    }
                    for c in 0..<classCount { votes[c] = 0; counts[c] = 0 }
                    for (s, j) in top {
                        let l = trainLabels[j]
                        guard l >= 0 && l < classCount else { continue }
                        counts[l] += 1
                        votes[l] += s
                    }
                    var best = 0
                    for c in 1..<max(1, classCount)
                    where counts[c] > counts[best] || (counts[c] == counts[best] && votes[c] > votes[best]) { best = c }
                    if best == testLabels[start + r] { correct += 1 }
                }
            }
        }
        return Float(correct) / Float(b.shape[0])
    }

    /// kNN accuracy of a frozen feature extractor: pooled features (see
    /// ``pooledFeatures(_:of:normalization:batchSize:)``) of `train` vote for `test`.
    public static func knnAccuracy(
        _ extractor: FeatureExtractor, train: any ImageDataset, test: any ImageDataset, k: Int = 10,
        normalization: ChannelNormalization? = nil
    ) throws -> Float {
        let tr = try pooledFeatures(extractor, of: train, normalization: normalization)
        let te = try pooledFeatures(extractor, of: test, normalization: normalization)
        let classes = max(train.classCount ?? 0, (tr.labels.max() ?? 0) + 1, (te.labels.max() ?? 0) + 1)
        return try knnAccuracy(
            train: tr.features, trainLabels: tr.labels, test: te.features, testLabels: te.labels, k: k,
            classCount: classes)
    }

    static func normalizedRows(_ x: Tensor) -> Tensor {
        var y = x
        let d = x.shape[1]
        y.withUnsafeMutableBufferPointer { b in
            for r in 0..<x.shape[0] {
                var s: Float = 0
                for j in 0..<d { s += b[r * d + j] * b[r * d + j] }
                let inv = 1 / max(s.squareRoot(), 1e-12)
                for j in 0..<d { b[r * d + j] *= inv }
            }
        }
        return y
    }
}
