import Foundation
import Layerwise

/// The fixed budget of the experiment suite (documented in Docs/Experiments.md). Sized
/// for a release build on 2 shared cores: about ten minutes for the whole suite.
struct ExperimentBudget {
    /// Classifier widths: conv1 filters, conv2 filters, hidden FC units.
    var conv1Filters = 32
    var conv2Filters = 64
    var hiddenUnits = 128
    /// CIFAR-100 training images used for pretraining (the first N of `train.bin`).
    var pretrainImages = 10_000
    /// Contrastive pretraining of conv1 (stage 1): steps of `pretrainBatchSize` anchors.
    var pretrainSteps = 600
    var pretrainStepsPerEpoch = 100
    var pretrainBatchSize = 128
    /// Supervised pretraining on the CIFAR-100 fine labels of the same images. (With 3
    /// epochs, the first budget tried, the network reached only 16.8% training accuracy and
    /// its conv1 was barely trained; see Docs/Experiments.md.)
    var supervisedEpochs = 8
    /// CIFAR-10: `data_batch_1` + `data_batch_2` (20,000 images), the last
    /// `validationImages` held out, the first `trainImages` of the rest used for training.
    var validationImages = 4_000
    var trainImages = 10_000
    /// Classifier training per arm: Adam 1e-3, ×0.1 after two thirds of the steps.
    var epochs = 3
    var batchSize = 64
    /// One seed for everything (pretraining, heads, data order).
    var seed: UInt64 = 1

    static let standard = ExperimentBudget()

    var summary: String {
        "widths \(conv1Filters)/\(conv2Filters)/FC \(hiddenUnits); "
            + "contrastive pretraining \(pretrainSteps) steps × \(pretrainBatchSize) anchors "
            + "(InfoNCE τ 0.1, 7x7 patches, offsets ≤ 3, colour-jittered positives) "
            + "on \(pretrainImages) CIFAR-100 images; "
            + "supervised pretraining \(supervisedEpochs) epochs on the same images with labels; "
            + "CIFAR-10 \(trainImages) training images, "
            + "\(validationImages) held-out validation images (last of data_batch_1+2), "
            + "\(epochs) epochs, batch \(batchSize), seed \(seed)"
    }
}

/// Builds and caches everything the experiments share: data, the contrastive and the
/// supervised pretraining, and each transfer arm's training report. Every experiment test
/// asks for what it needs; whatever ran before in the same process is reused.
final class ExperimentFixture: @unchecked Sendable {
    static let shared = ExperimentFixture()

    let budget = ExperimentBudget.standard
    private let lock = NSLock()

    struct Data {
        var pretrain: InMemoryImageDataset
        var train: InMemoryImageDataset
        var validation: InMemoryImageDataset
        var pretrainNormalization: ChannelNormalization
        var trainNormalization: ChannelNormalization
    }

    struct Contrastive {
        /// `LayerwiseTrainer.stateTensors()`: `"stage1.0.weight"`, `"stage1.0.bias"`.
        var weights: [String: Tensor]
        /// conv1's weights as initialised, before pretraining.
        var initialWeights: Tensor
        var report: PretrainingReport
    }

    private var data: Data?
    private var contrastive: Contrastive?
    private var supervised: [String: Tensor]?
    private var arms: [String: ClassifierReport] = [:]

    // MARK: - Data

    func loadData(directory: String) throws -> Data {
        lock.lock(); defer { lock.unlock() }
        if let data { return data }
        BLAS.threadCount = ExperimentEnvironment.threads
        let c10 = directory + "/cifar-10-batches-bin"
        let c100 = directory + "/cifar-100-binary"
        let cifar10 = try CIFAR.loadCIFAR10(files: [c10 + "/data_batch_1.bin", c10 + "/data_batch_2.bin"])
        let parts = try cifar10.split(validationCount: budget.validationImages)
        let train = parts.train.prefix(budget.trainImages)
        let pretrain = try CIFAR.loadCIFAR100(file: c100 + "/train.bin", labels: .fine).prefix(budget.pretrainImages)
        let loaded = Data(
            pretrain: pretrain, train: train, validation: parts.validation,
            pretrainNormalization: ChannelNormalization.fit(pretrain),
            trainNormalization: ChannelNormalization.fit(train))
        report(
            "data: \(directory) │ CIFAR-100 pretraining \(pretrain.count) "
                + "│ CIFAR-10 train \(train.count) │ validation \(parts.validation.count) "
                + "│ BLAS threads \(BLAS.threadCount)"
        )
        report("budget: \(budget.summary)")
        data = loaded
        return loaded
    }

    // MARK: - Layers

    /// The paper's classifier at the budget's widths, one transferred stage `[conv1, pool]`.
    var classifier: PaperClassifier {
        get throws {
            try PaperClassifier(
                conv1Filters: budget.conv1Filters, conv2Filters: budget.conv2Filters, hiddenUnits: budget.hiddenUnits)
        }
    }

    // MARK: - Pretraining

    /// Layer-wise contrastive pretraining of conv1 on CIFAR-100 images, labels unused:
    /// the library's default recipe (neighbouring 7x7 patches up to 3 pixels apart,
    /// colour-jittered positives, InfoNCE with temperature 0.1, Adam 1e-3).
    func contrastivePretraining(directory: String) throws -> Contrastive {
        let data = try loadData(directory: directory)
        lock.lock(); defer { lock.unlock() }
        if let contrastive { return contrastive }
        var g = SeededGenerator(seed: budget.seed &+ 1000)
        let conv = try Conv2D(inputChannels: 3, outputChannels: budget.conv1Filters, kernelSize: 6, using: &g)
        let initial = conv.weight.value
        let sampler = try NeighborPatchSampler(
            dataset: data.pretrain, maxOffset: 3, negativesPerAnchor: 1, sameImageNegatives: false,
            positiveAugmentation: try ColorJitter(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1),
            normalization: data.pretrainNormalization)
        let stage = Stage(
            layers: [conv, try MaxPool2D(kernelSize: 2), ReLU()],
            objective: ContrastiveObjective(sampler: sampler, loss: InfoNCELoss(temperature: 0.1)),
            optimizer: Adam(learningRate: 1e-3), schedule: ConstantSchedule(1e-3), batchSize: budget.pretrainBatchSize,
            budget: .epochs(
                budget.pretrainSteps / budget.pretrainStepsPerEpoch, stepsPerEpoch: budget.pretrainStepsPerEpoch))
        let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 7, seed: budget.seed)
        let result = try trainer.pretrain { event in
            if case let .epochEnded(_, epoch, loss, _) = event {
                report(String(format: "contrastive pretraining epoch %d: mean loss %.4f", epoch, loss))
            }
        }
        report(
            String(
                format: "contrastive pretraining: %d steps in %.1f s, final loss %.4f",
                result.stages[0].steps, result.totalSeconds, result.finalLoss ?? .nan))
        let made = Contrastive(weights: trainer.stateTensors(), initialWeights: initial, report: result)
        contrastive = made
        return made
    }

    /// Supervised pretraining: the same classifier architecture with a 100-way head,
    /// trained on the CIFAR-100 fine labels of the pretraining images.
    func supervisedPretraining(directory: String) throws -> [String: Tensor] {
        let data = try loadData(directory: directory)
        lock.lock(); defer { lock.unlock() }
        if let supervised { return supervised }
        let (stages, head) = try classifier.layers(classes: 100, seed: budget.seed &+ 2000)
        let config = try PaperClassifier.trainingConfiguration(
            epochs: budget.supervisedEpochs, batchSize: budget.batchSize, normalization: data.pretrainNormalization,
            seed: budget.seed &+ 2000)
        let (weights, result) = try SupervisedPretraining.run(
            stages: stages, head: head, data: data.pretrain, configuration: config,
            events: epochLogger("supervised pretraining"))
        report(
            String(
                format: "supervised pretraining: %d epochs in %.1f s, final training loss %.4f, ",
                result.epochs.count, result.totalSeconds, result.epochs.last?.trainingLoss ?? .nan)
                + "training accuracy \(percent(result.epochs.last?.trainingAccuracy))")
        supervised = weights
        return weights
    }

    // MARK: - Transfer arms

    /// Trains one arm on the CIFAR-10 training images and validates after every epoch.
    /// Every arm uses the same seed: the same head initialisation, data order and
    /// augmentation draws; only conv1's weights and whether they train differ.
    func run(_ arm: TransferArm, directory: String) throws -> ClassifierReport {
        let data = try loadData(directory: directory)
        var pretrained: [String: Tensor]?
        switch arm.source {
        case nil: pretrained = nil
        case .contrastive: pretrained = try contrastivePretraining(directory: directory).weights
        case .supervised: pretrained = try supervisedPretraining(directory: directory)
        case .kmeans: throw ExperimentSetupError.data("the experiment suite has no k-means arms")
        }
        lock.lock(); defer { lock.unlock() }
        if let done = arms[arm.rawValue] { return done }
        let classifier = try self.classifier.transferClassifier(
            arm, classes: 10, pretrained: pretrained, inputShape: data.train.imageShape, seed: budget.seed)
        let config = try PaperClassifier.trainingConfiguration(
            epochs: budget.epochs, batchSize: budget.batchSize, normalization: data.trainNormalization,
            seed: budget.seed)
        let result = try ClassifierTrainer(classifier: classifier, configuration: config)
            .train(on: data.train, validation: data.validation, events: epochLogger(arm.rawValue))
        let curve = result.epochs.map { percent($0.validationAccuracy) }.joined(separator: ", ")
        report(
            "\(arm.rawValue): validation accuracy per epoch [\(curve)], "
                + String(format: "%.1f s", result.totalSeconds))
        arms[arm.rawValue] = result
        return result
    }

    func epochLogger(_ label: String) -> (ClassifierEvent) -> Void {
        { event in
            if case let .epochEnded(r) = event {
                report(
                    "\(label) epoch \(r.epoch): " + String(format: "training loss %.4f, ", r.trainingLoss)
                        + "training accuracy \(percent(r.trainingAccuracy)), "
                        + "validation accuracy \(percent(r.validationAccuracy)), "
                        + String(format: "%.1f s", r.seconds))
            }
        }
    }
}
