import Augmentations
import Datasets
import Foundation
import Layers
import Losses
import Optimizers
import TensorCore

/// One epoch of classifier training.
public struct EpochRecord: Sendable, Equatable {
    /// 1-based.
    public var epoch: Int
    /// Mean softmax cross-entropy over the epoch's batches (weighted by batch size).
    public var trainingLoss: Float
    /// Accuracy on the (augmented) training batches, measured during the epoch.
    public var trainingAccuracy: Float
    /// Accuracy on the validation set after the epoch, when one was given.
    public var validationAccuracy: Float?
    /// Wall-clock seconds of the epoch including validation.
    public var seconds: Double
    /// The learning rate of the epoch's last step.
    public var learningRate: Float

    public init(
        epoch: Int, trainingLoss: Float, trainingAccuracy: Float, validationAccuracy: Float?, seconds: Double,
        learningRate: Float
    ) {
        self.epoch = epoch
        self.trainingLoss = trainingLoss
        self.trainingAccuracy = trainingAccuracy
        self.validationAccuracy = validationAccuracy
        self.seconds = seconds
        self.learningRate = learningRate
    }
}

/// Progress of ``ClassifierTrainer``.
public enum ClassifierEvent: Sendable, Equatable {
    /// A batch finished (`step` is 1-based within the epoch).
    case step(epoch: Int, step: Int, stepsPerEpoch: Int, loss: Float, imagesPerSecond: Double)
    /// An epoch finished.
    case epochEnded(EpochRecord)
}

/// The outcome of ``ClassifierTrainer/train(on:validation:events:)``.
public struct ClassifierReport: Sendable, Equatable {
    public var epochs: [EpochRecord]
    public var totalSeconds: Double
    /// The last epoch's validation accuracy, if validated.
    public var finalValidationAccuracy: Float? { epochs.last?.validationAccuracy }
}

/// Hyper-parameters of supervised classifier training.
public struct ClassifierConfiguration {
    public var epochs: Int
    public var batchSize: Int
    /// Updates the trained parameters (fine-tuned and scratch stages, head).
    public var optimizer: any Optimizer
    /// The learning rate per step over all `epochs · ⌈N / batchSize⌉` steps.
    public var schedule: any LearningRateSchedule
    /// Applied to every training image (nil = none); see ``standardAugmentation(imageSize:)``.
    public var augmentation: (any Augmentation)?
    /// Per-channel normalisation for training and validation images.
    public var normalization: ChannelNormalization?
    /// Seeds shuffling and augmentation.
    public var seed: UInt64
    /// Batch size for validation passes.
    public var evaluationBatchSize: Int

    public init(
        epochs: Int, batchSize: Int, optimizer: any Optimizer, schedule: any LearningRateSchedule,
        augmentation: (any Augmentation)? = nil, normalization: ChannelNormalization? = nil, seed: UInt64,
        evaluationBatchSize: Int = 256
    ) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.optimizer = optimizer
        self.schedule = schedule
        self.augmentation = augmentation
        self.normalization = normalization
        self.seed = seed
        self.evaluationBatchSize = evaluationBatchSize
    }

    /// The CIFAR recipe: random crop with 4 pixels of zero padding, then a horizontal flip
    /// with probability ½.
    public static func standardAugmentation(imageSize: Int) throws -> any Augmentation {
        Compose([try RandomCrop(size: imageSize, padding: 4), try HorizontalFlip(probability: 0.5)])
    }
}

/// Trains a ``TransferClassifier`` with softmax cross-entropy: seeded shuffling, optional
/// augmentation and normalisation, a learning-rate schedule per step, validation accuracy
/// and wall time per epoch.
public final class ClassifierTrainer {
    public let classifier: TransferClassifier
    public let configuration: ClassifierConfiguration
    /// Shuffling and augmentation draw from it.
    public private(set) var generator: SeededGenerator

    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` for epochs or
    ///   batch size < 1, or invalid optimizer / schedule hyper-parameters.
    public init(classifier: TransferClassifier, configuration: ClassifierConfiguration) throws {
        guard configuration.epochs >= 1 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "epochs", value: "\(configuration.epochs)", reason: "must be ≥ 1")
        }
        guard configuration.batchSize >= 1 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "batchSize", value: "\(configuration.batchSize)", reason: "must be ≥ 1")
        }
        guard configuration.evaluationBatchSize >= 1 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "evaluationBatchSize", value: "\(configuration.evaluationBatchSize)",
                reason: "must be ≥ 1")
        }
        do {
            try configuration.optimizer.validate()
            try configuration.schedule.validate()
        } catch let OptimizerError.invalidHyperparameter(name, value, reason) {
            throw TrainerError.invalidOption(stage: nil, option: "optimizer.\(name)", value: "\(value)", reason: reason)
        }
        self.classifier = classifier
        self.configuration = configuration
        self.generator = SeededGenerator(seed: configuration.seed)
    }

    /// Trains for ``ClassifierConfiguration/epochs`` epochs.
    ///
    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` when the data's
    ///   image shape or class count does not match the classifier,
    ///   ``TrainerError/nonFinite(stage:epoch:step:what:)`` (stage 0) on divergence — the
    ///   update is not applied — and dataset errors.
    @discardableResult
    public func train(
        on data: any ImageDataset, validation: (any ImageDataset)? = nil, events: (ClassifierEvent) -> Void = { _ in }
    ) throws -> ClassifierReport {
        try Self.check(data, fits: classifier, name: "training data")
        if let validation { try Self.check(validation, fits: classifier, name: "validation data") }
        let c = configuration
        let n = data.count
        let stepsPerEpoch = (n + c.batchSize - 1) / c.batchSize
        let totalSteps = stepsPerEpoch * c.epochs
        for step in Set([0, totalSteps - 1]) {
            let lr = c.schedule.learningRate(atStep: step, totalSteps: totalSteps)
            guard lr.isFinite, lr >= 0 else {
                throw TrainerError.invalidOption(
                    stage: nil, option: "schedule", value: "learning rate \(lr) at step \(step)",
                    reason: "must be finite and ≥ 0")
            }
        }
        let named = classifier.trainableParameters
        let parameters = named.map(\.parameter)
        let loss = SoftmaxCrossEntropy()
        let clock = ContinuousClock()
        let start = clock.now
        var records: [EpochRecord] = []
        var order = Array(0..<n)
        for epoch in 1...c.epochs {
            let epochStart = clock.now
            generator.shuffle(&order)
            var lossSum = 0.0, correct = 0, seen = 0
            var lr: Float = 0
            for b in 0..<stepsPerEpoch {
                let globalStep = (epoch - 1) * stepsPerEpoch + b
                let indices = order[(b * c.batchSize)..<min(n, (b + 1) * c.batchSize)]
                let batch = try makeBatch(
                    from: data, indices: indices, augmentation: c.augmentation, normalization: c.normalization,
                    using: &generator)
                lr = c.schedule.learningRate(atStep: globalStep, totalSteps: totalSteps)
                c.optimizer.learningRate = lr
                for p in parameters { p.zeroGradient() }
                let logits = classifier.forward(batch.images, mode: .training)
                guard logits.isFinite else {
                    throw TrainerError.nonFinite(stage: 0, epoch: epoch, step: b + 1, what: "classifier logits")
                }
                let (value, gradient) = try loss.evaluate(logits: logits, labels: batch.labels)
                guard value.isFinite else {
                    throw TrainerError.nonFinite(stage: 0, epoch: epoch, step: b + 1, what: "loss")
                }
                classifier.backward(gradient)
                for (name, p) in named where !p.gradient.isFinite {
                    throw TrainerError.nonFinite(stage: 0, epoch: epoch, step: b + 1, what: "gradient of \(name)")
                }
                c.optimizer.update(parameters)
                lossSum += Double(value) * Double(indices.count)
                correct += Evaluation.correctCount(logits: logits, labels: batch.labels)
                seen += indices.count
                let elapsed = LayerwiseTrainer.seconds(clock.now - epochStart)
                events(
                    .step(
                        epoch: epoch, step: b + 1, stepsPerEpoch: stepsPerEpoch, loss: value,
                        imagesPerSecond: elapsed > 0 ? Double(seen) / elapsed : 0))
            }
            var validationAccuracy: Float?
            if let validation {
                validationAccuracy = try Evaluation.evaluate(
                    classifier, on: validation, normalization: c.normalization, batchSize: c.evaluationBatchSize
                ).accuracy
            }
            let record = EpochRecord(
                epoch: epoch, trainingLoss: Float(lossSum / Double(max(1, seen))),
                trainingAccuracy: Float(correct) / Float(max(1, seen)), validationAccuracy: validationAccuracy,
                seconds: LayerwiseTrainer.seconds(clock.now - epochStart), learningRate: lr)
            records.append(record)
            events(.epochEnded(record))
        }
        return ClassifierReport(epochs: records, totalSeconds: LayerwiseTrainer.seconds(clock.now - start))
    }

    static func check(_ data: any ImageDataset, fits classifier: TransferClassifier, name: String) throws {
        guard data.imageShape == classifier.inputShape else {
            throw TrainerError.invalidOption(
                stage: nil, option: name, value: "images \(data.imageShape)",
                reason: "the classifier was built for \(classifier.inputShape)")
        }
        guard data.count > 0 else {
            throw TrainerError.invalidOption(
                stage: nil, option: name, value: "0 images", reason: "needs at least one image")
        }
        guard let classes = data.classCount else {
            throw TrainerError.invalidOption(
                stage: nil, option: name, value: "unlabelled", reason: "classification needs labels")
        }
        guard classes <= classifier.classCount else {
            throw TrainerError.invalidOption(
                stage: nil, option: name, value: "\(classes) classes",
                reason: "the classifier head has only \(classifier.classCount) outputs")
        }
    }
}

/// Supervised pretraining: the same stage stack plus a temporary head trained on a
/// labelled dataset (e.g. CIFAR-100 with its labels) — the "supervised transfer" arm.
public enum SupervisedPretraining {
    /// Trains `stages` + `head` end to end as a classifier (every stage fine-tuned from
    /// its current weights) and returns the stage weights by name, ready for a
    /// ``TransferClassifier``'s `pretrained`, plus the training report.
    public static func run(
        stages: [[any Layer]], head: [any Layer], data: any ImageDataset, validation: (any ImageDataset)? = nil,
        configuration: ClassifierConfiguration, events: (ClassifierEvent) -> Void = { _ in }
    ) throws -> (weights: [String: Tensor], report: ClassifierReport) {
        let classifier = try TransferClassifier(
            stages: stages, mode: .fineTuned, head: head, inputShape: data.imageShape, seed: configuration.seed)
        let trainer = try ClassifierTrainer(classifier: classifier, configuration: configuration)
        let report = try trainer.train(on: data, validation: validation, events: events)
        return (classifier.stateTensors(), report)
    }
}
