import Datasets
import Foundation
import Layers
import Losses
import Optimizers
import TensorCore

/// Accuracy, per-class accuracy and the confusion matrix of a set of predictions.
public struct ClassificationMetrics: Sendable, Equatable {
    /// Fraction of correct predictions.
    public var accuracy: Float
    /// Accuracy within each true class (NaN for a class with no samples).
    public var perClassAccuracy: [Float]
    /// `confusion[true][predicted]` counts.
    public var confusion: [[Int]]
    /// Number of samples.
    public var count: Int

    /// Metrics from predicted and true labels in `0..<classCount`.
    public init(predictions: [Int], labels: [Int], classCount: Int) {
        precondition(predictions.count == labels.count, "one prediction per label")
        var confusion = Array(repeating: Array(repeating: 0, count: classCount), count: classCount)
        var correct = 0
        for (p, l) in zip(predictions, labels) where l >= 0 && l < classCount && p >= 0 && p < classCount {
            confusion[l][p] += 1
            if p == l { correct += 1 }
        }
        self.confusion = confusion
        self.count = labels.count
        self.accuracy = labels.isEmpty ? 0 : Float(correct) / Float(labels.count)
        self.perClassAccuracy = confusion.enumerated().map { c, row in
            let total = row.reduce(0, +)
            return total == 0 ? .nan : Float(row[c]) / Float(total)
        }
    }
}

/// Evaluation of classifiers and of frozen features.
public enum Evaluation {
    /// The index of the largest logit of every row.
    public static func predictions(logits: Tensor) -> [Int] {
        let rows = logits.shape[0], classes = logits.count / max(1, rows)
        return logits.withUnsafeBufferPointer { b in
            (0..<rows).map { r in
                var best = 0
                for c in 1..<max(1, classes) where b[r * classes + c] > b[r * classes + best] { best = c }
                return best
            }
        }
    }

    static func correctCount(logits: Tensor, labels: [Int]) -> Int {
        zip(predictions(logits: logits), labels).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
    }

    /// Runs `classifier` (inference mode) over `dataset` and scores its predictions.
    ///
    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` for a dataset
    ///   that does not fit the classifier; dataset errors.
    public static func evaluate(
        _ classifier: TransferClassifier, on dataset: any ImageDataset, normalization: ChannelNormalization? = nil,
        batchSize: Int = 256
    ) throws -> ClassificationMetrics {
        try ClassifierTrainer.check(dataset, fits: classifier, name: "evaluation data")
        var predictions: [Int] = [], labels: [Int] = []
        var unused = SeededGenerator(seed: 0)  // no augmentation: never drawn from
        for start in stride(from: 0, to: dataset.count, by: max(1, batchSize)) {
            let batch = try makeBatch(
                from: dataset, indices: start..<min(dataset.count, start + batchSize), normalization: normalization,
                using: &unused)
            predictions += Self.predictions(logits: classifier.forward(batch.images, mode: .inference))
            labels += batch.labels
        }
        return ClassificationMetrics(predictions: predictions, labels: labels, classCount: classifier.classCount)
    }
}
