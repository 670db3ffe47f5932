import Datasets
import Layers
import Losses
import Optimizers
import TensorCore
import Training

/// Linear-probe evaluation of frozen features (Coates & Ng style): features → ReLU →
/// sum-pool over four quadrants → flatten → standardise (statistics of the training
/// set) → a linear softmax classifier trained with Adam.
///
/// The probe measures how linearly separable the frozen features are; it never changes
/// the extractor.
public struct LinearProbe: Sendable {
    /// Passes over the training features.
    public var epochs: Int
    /// Adam's learning rate.
    public var learningRate: Float
    /// Feature rows per Adam step.
    public var batchSize: Int
    /// Adam's (L2) weight decay.
    public var weightDecay: Float
    /// Seeds the classifier's initial weights and the shuffling.
    public var seed: UInt64
    /// The ranks of a data-parallel job: feature extraction splits the images, and every
    /// Adam step splits its batch rows, with the gradients summed over the ranks (one
    /// process by default).
    public var communicator: any Communicator = SingleProcessCommunicator()

    public init(
        epochs: Int = 10, learningRate: Float = 1e-3, batchSize: Int = 128, weightDecay: Float = 0, seed: UInt64 = 0
    ) {
        self.epochs = epochs
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.weightDecay = weightDecay
        self.seed = seed
    }

    /// The probe's accuracies.
    public struct Result: Sendable, Equatable {
        /// Accuracy on the (standardised) training features.
        public var trainAccuracy: Float
        /// Accuracy on the held-out features.
        public var testAccuracy: Float
        /// Width of the pooled features.
        public var featureCount: Int
    }

    /// Extracts pooled features of both sets, trains the linear classifier on `train`, and
    /// scores it on `test`.
    public func evaluate(
        _ extractor: FeatureExtractor, train: any ImageDataset, test: any ImageDataset,
        normalization: ChannelNormalization? = nil
    ) throws -> Result {
        let tr = try Evaluation.pooledFeatures(
            extractor, of: train, normalization: normalization, communicator: communicator)
        let te = try Evaluation.pooledFeatures(
            extractor, of: test, normalization: normalization, communicator: communicator)
        let classes = max(train.classCount ?? 0, (tr.labels.max() ?? 0) + 1)
        return try evaluate(
            train: tr.features, trainLabels: tr.labels, test: te.features, testLabels: te.labels, classCount: classes)
    }

    /// Trains and scores the probe on precomputed `[N, D]` features.
    public func evaluate(
        train: Tensor, trainLabels: [Int], test: Tensor, testLabels: [Int], classCount: Int
    ) throws -> Result {
        guard epochs >= 1, batchSize >= 1, learningRate.isFinite, learningRate > 0 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "LinearProbe",
                value: "epochs \(epochs), batchSize \(batchSize), learningRate \(learningRate)",
                reason: "needs epochs ≥ 1, batchSize ≥ 1 and a positive learning rate")
        }
        guard train.shape.count == 2, test.shape.count == 2, train.shape[1] == test.shape[1],
            train.shape[0] == trainLabels.count, test.shape[0] == testLabels.count, train.shape[0] > 0, classCount >= 1
        else {
            throw TrainerError.invalidOption(
                stage: nil, option: "probe features", value: "train \(train.shape), test \(test.shape)",
                reason: "need [N, D] matrices of equal width with one label per row")
        }
        let d = train.shape[1], n = train.shape[0]
        // Standardise with training statistics.
        var mean = [Float](repeating: 0, count: d), std = [Float](repeating: 0, count: d)
        train.withUnsafeBufferPointer { b in
            for r in 0..<n { for j in 0..<d { mean[j] += b[r * d + j] } }
            for j in 0..<d { mean[j] /= Float(n) }
            for r in 0..<n { for j in 0..<d { let v = b[r * d + j] - mean[j]; std[j] += v * v } }
        }
        for j in 0..<d { std[j] = max((std[j] / Float(n)).squareRoot(), 1e-6) }
        func standardized(_ x: Tensor) -> Tensor {
            var y = x
            y.withUnsafeMutableBufferPointer { b in
                for r in 0..<x.shape[0] { for j in 0..<d { b[r * d + j] = (b[r * d + j] - mean[j]) / std[j] } }
            }
            return y
        }
        let xs = standardized(train), xt = standardized(test)
        var generator = SeededGenerator(seed: seed)
        let layer = try Linear(
            inputFeatures: d, outputFeatures: classCount, initializer: .xavierUniform, using: &generator)
        layer.needsInputGradient = false
        let adam = try Self.makeAdam(learningRate: learningRate, weightDecay: weightDecay)
        let loss = SoftmaxCrossEntropy()
        var order = Array(0..<n)
        var batch = Tensor.uninitialized(shape: [min(batchSize, n), d])
        let ranks = communicator.size
        var noExtra: [Float] = []
        for _ in 0..<epochs {
            generator.shuffle(&order)
            for start in stride(from: 0, to: n, by: batchSize) {
                let all = min(batchSize, n - start)
                // This rank's rows of the batch; the gradient is the batch mean over all ranks.
                let part =
                    ranks > 1 ? SingleProcessCommunicator.shares(of: all, parts: ranks)[communicator.rank] : 0..<all
                layer.zeroGradients()
                if !part.isEmpty {
                    let rows = part.count
                    if batch.shape[0] != rows { batch = Tensor.uninitialized(shape: [rows, d]) }
                    var labels = [Int](repeating: 0, count: rows)
                    xs.withUnsafeBufferPointer { src in
                        batch.withUnsafeMutableBufferPointer { dst in
                            for r in 0..<rows {
                                let i = order[start + part.lowerBound + r]
                                (dst.baseAddress! + r * d).update(from: src.baseAddress! + i * d, count: d)
                                labels[r] = trainLabels[i]
                            }
                        }
                    }
                    let logits = layer.forward(batch, mode: .training)
                    var (_, gradient) = try loss.evaluate(logits: logits, labels: labels)
                    if ranks > 1 {
                        let share = Float(rows) / Float(all)
                        gradient.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= share } }
                    }
                    _ = layer.backward(gradient)
                }
                try communicator.allReduceGradients(of: layer.parameters, .sum, extra: &noExtra)
                adam.update(layer.parameters)
            }
        }
        func accuracy(_ x: Tensor, _ labels: [Int]) -> Float {
            let p = Evaluation.predictions(logits: layer.forward(x, mode: .inference))
            return Float(zip(p, labels).filter { $0 == $1 }.count) / Float(max(1, labels.count))
        }
        return Result(trainAccuracy: accuracy(xs, trainLabels), testAccuracy: accuracy(xt, testLabels), featureCount: d)
    }

    static func makeAdam(learningRate: Float, weightDecay: Float) throws -> Adam {
        let adam = Adam(learningRate: learningRate, weightDecay: weightDecay)
        try adam.validate()
        return adam
    }

    /// An evaluation hook for ``LayerwiseTrainer/evaluation``: the probe's test accuracy
    /// on the features of stages `1…k`.
    public func hook(
        train: any ImageDataset, test: any ImageDataset, normalization: ChannelNormalization? = nil
    ) -> (_ stage: Int, _ features: FeatureExtractor) throws -> Float {
        { _, extractor in try evaluate(extractor, train: train, test: test, normalization: normalization).testAccuracy }
    }
}
