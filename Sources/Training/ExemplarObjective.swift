import Layers
import Losses
import PatchSamplers
import TensorCore

/// The Exemplar-CNN step (Dosovitskiy et al. 2014): every seed region of a
/// ``SurrogateClassDataset`` is its own class, and the stage learns features from which a
/// temporary linear classifier can tell N surrogate classes apart whatever the distortion.
///
/// ```
/// copies     = surrogates.sample(count: B / K classes, copiesPerClass: K, patchSize)
/// features   = frozen stages (inference)
/// embeddings = stage (+ head) forward (training), flattened to [rows, D]
/// logits     = classifier (Linear D → N, built in prepare), [rows, N]
/// loss       = softmax cross-entropy(logits, surrogate labels)
/// backward through the classifier, then the stage
/// ```
///
/// The classifier is the objective's auxiliary state: the trainer updates it with the
/// stage's optimizer, checks it for divergence and checkpoints it under
/// `"stage<k>.objective.classifier.weight|bias"`. It is rebuilt whenever the trainer
/// prepares a stage and is never part of the stage's layers, so transfer sees the stage
/// alone, exactly as with the triplet and InfoNCE objectives.
public final class ExemplarObjective: StageObjective {
    /// The surrogate classes and how copies are distorted.
    public var surrogates: SurrogateClassDataset
    /// Distorted copies K of each class per step.
    public let copiesPerClass: Int
    /// Classes per step; nil = `max(1, batchSize / copiesPerClass)`, at most N.
    public let classesPerStep: Int?
    /// How the classifier's weights are drawn in ``prepare(embeddingFeatures:using:)``.
    public let classifierInitializer: WeightInitializer
    /// The temporary surrogate classifier (D → N); nil until prepared.
    public private(set) var classifier: Linear?
    private let loss = SoftmaxCrossEntropy()

    /// - Parameters:
    ///   - surrogates: the N surrogate classes.
    ///   - copiesPerClass: distorted copies K per class and step (≥ 1; 2 or more lets
    ///     every step see two views of one class).
    ///   - classesPerStep: classes per step (1…N); nil derives it from the stage's batch size.
    ///   - classifierInitializer: weights of the temporary classifier. Xavier keeps the
    ///     initial logits small, so the first loss is close to ln N.
    ///
    /// Options are checked by ``validate()``, which the trainer calls before training.
    public init(
        surrogates: SurrogateClassDataset, copiesPerClass: Int = 2, classesPerStep: Int? = nil,
        classifierInitializer: WeightInitializer = .xavierUniform
    ) {
        self.surrogates = surrogates
        self.copiesPerClass = copiesPerClass
        self.classesPerStep = classesPerStep
        self.classifierInitializer = classifierInitializer
    }

    public var inputChannels: Int? { surrogates.channels }

    public var auxiliaryParameters: [Parameter] { classifier?.parameters ?? [] }

    /// - Throws: ``SamplerError/invalidOption(name:value:reason:)`` for `copiesPerClass < 1`
    ///   or `classesPerStep` outside `1…N`.
    public func validate() throws {
        guard copiesPerClass >= 1 else {
            throw SamplerError.invalidOption(name: "copiesPerClass", value: "\(copiesPerClass)", reason: "must be ≥ 1")
        }
        if let c = classesPerStep, c < 1 || c > surrogates.classCount {
            throw SamplerError.invalidOption(
                name: "classesPerStep", value: "\(c)",
                reason: "must lie in 1...\(surrogates.classCount) (the number of surrogate classes)")
        }
    }

    /// Classes drawn per step for a stage batch size.
    public func classes(forBatchSize batchSize: Int) -> Int {
        classesPerStep ?? Swift.min(surrogates.classCount, Swift.max(1, batchSize / Swift.max(1, copiesPerClass)))
    }

    /// Builds a fresh classifier `Linear(embeddingFeatures → N)` from `generator`.
    public func prepare(embeddingFeatures: Int, using generator: inout SeededGenerator) throws {
        let head = try Linear(
            inputFeatures: embeddingFeatures, outputFeatures: surrogates.classCount,
            initializer: classifierInitializer, using: &generator)
        for p in head.parameters { p.name = "classifier.\(p.name)" }
        classifier = head
    }

    /// Throughput counts surrogate-class images (`"img/s"`).
    public var sampleUnit: String { "img" }

    public func step(_ context: StageStepContext, using generator: inout SeededGenerator) throws -> StepStatistics {
        guard let classifier else {
            throw TrainerError.invalidOption(
                stage: context.stage, option: "objective", value: "ExemplarObjective",
                reason: "prepare(embeddingFeatures:using:) must build the surrogate classifier before the first step")
        }
        try validate()
        let batch = try surrogates.sample(
            count: classes(forBatchSize: context.batchSize), copiesPerClass: copiesPerClass,
            patchSize: context.patchSize, using: &generator)
        let embeddings = context.trainable.forward(context.frozen(batch.patches))
        guard embeddings.isFinite else { throw NonFiniteValue(what: "embeddings") }
        guard embeddings.shape.count == 2, embeddings.shape[1] == classifier.inputFeatures else {
            throw TrainerError.incompatibleStage(
                stage: context.stage, layer: "objective.classifier",
                reason:
                    "embeddings have shape \(embeddings.shape)"
                    + " but the classifier was prepared for \(classifier.inputFeatures) features"
            )
        }
        let logits = classifier.forward(embeddings, mode: .training)
        let result: (loss: Float, gradient: Tensor)
        let accuracy: Float
        do {
            result = try loss.evaluate(logits: logits, labels: batch.labels)
            accuracy = try SoftmaxCrossEntropy.accuracy(logits: logits, labels: batch.labels)
        } catch let LossError.nonFinite(what, row) {
            throw NonFiniteValue(what: "surrogate \(what) (row \(row))")
        }
        guard result.loss.isFinite else { throw NonFiniteValue(what: "loss") }
        guard result.gradient.isFinite else { throw NonFiniteValue(what: "loss gradient") }
        context.trainable.backward(classifier.backward(result.gradient))
        return StepStatistics(loss: result.loss, samples: batch.labels.count, accuracy: accuracy)
    }
}
