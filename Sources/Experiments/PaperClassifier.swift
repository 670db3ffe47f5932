import Augmentations
import Datasets
import Layers
import Optimizers
import TensorCore
import Training

/// The classifier of the paper's transfer experiment, for 32x32 images: conv6 → pool → BN →
/// ReLU → conv3 → pool → BN → ReLU → FC → ReLU → BN → FC.
///
/// Transferable stages are `[conv1, pool]` and, with two stages, `[BN, ReLU, conv2, pool]`;
/// everything after them is the head. Layers are drawn in the same order for every arm, so
/// one seed gives every arm the same initialisation of all layers it does not transfer.
public struct PaperClassifier: Sendable, Equatable {
    /// Filters of the first (6x6) convolution.
    public var conv1Filters: Int
    /// Filters of the second (3x3) convolution.
    public var conv2Filters: Int
    /// Units of the hidden fully connected layer.
    public var hiddenUnits: Int
    /// Stages that receive pretrained weights: 1 or 2.
    public var transferredStages: Int

    /// - Throws: ``PaperSetupError/invalidOption(name:value:reason:)`` for a width
    ///   below 1 or a stage count other than 1 or 2.
    public init(
        conv1Filters: Int, conv2Filters: Int, hiddenUnits: Int, transferredStages: Int = 1
    ) throws(PaperSetupError) {
        let widths = [("conv1Filters", conv1Filters), ("conv2Filters", conv2Filters), ("hiddenUnits", hiddenUnits)]
        for (name, value) in widths where value < 1 {
            throw .invalidOption(name: name, value: "\(value)", reason: "must be ≥ 1")
        }
        guard transferredStages == 1 || transferredStages == 2 else {
            throw .invalidOption(name: "transferredStages", value: "\(transferredStages)", reason: "must be 1 or 2")
        }
        self.conv1Filters = conv1Filters
        self.conv2Filters = conv2Filters
        self.hiddenUnits = hiddenUnits
        self.transferredStages = transferredStages
    }

    /// The classifier's layers for `classes` outputs, drawn from a generator seeded with `seed`.
    public func layers(classes: Int, seed: UInt64) throws -> (stages: [[any Layer]], head: [any Layer]) {
        var g = SeededGenerator(seed: seed)
        let (w1, w2, f) = (conv1Filters, conv2Filters, hiddenUnits)
        let stage1: [any Layer] = [
            try Conv2D(inputChannels: 3, outputChannels: w1, kernelSize: 6, using: &g), try MaxPool2D(kernelSize: 2),
        ]
        let block2: [any Layer] = [
            try BatchNorm(features: w1), ReLU(),
            try Conv2D(inputChannels: w1, outputChannels: w2, kernelSize: 3, using: &g), try MaxPool2D(kernelSize: 2),
        ]
        // 32 → conv6 27 → pool 13 → conv3 11 → pool 5: a 5x5 map per filter.
        let top: [any Layer] = [
            try BatchNorm(features: w2), ReLU(), Flatten(),
            try Linear(inputFeatures: w2 * 25, outputFeatures: f, using: &g), ReLU(), try BatchNorm(features: f),
            try Linear(inputFeatures: f, outputFeatures: classes, using: &g),
        ]
        return transferredStages == 1 ? ([stage1], block2 + top) : ([stage1, block2], top)
    }

    /// The name of conv1's weight, in pretrained and classifier state alike (`"stage1.0.weight"`).
    public static let conv1Weight = LayerTree.join(StateKey.layer(stage: 1, index: 0), "weight")
    /// The name of conv1's bias (`"stage1.0.bias"`).
    public static let conv1Bias = LayerTree.join(StateKey.layer(stage: 1, index: 0), "bias")

    /// A ``TransferClassifier`` for `arm`: fresh layers from `seed`, with `pretrained`
    /// weights (mapped onto the classifier's names unless they already carry them) in the
    /// transferred stages. `pretrained` is ignored by ``TransferArm/scratch``.
    ///
    /// - Throws: ``PaperSetupError/missingPretrainedWeights(arm:)`` when an arm that
    ///   transfers gets no weights; the classifier's own errors.
    public func transferClassifier(
        _ arm: TransferArm, classes: Int, pretrained: [String: Tensor]?, inputShape: ImageShape, seed: UInt64
    ) throws -> TransferClassifier {
        let (stages, head) = try layers(classes: classes, seed: seed)
        var weights: [String: Tensor]?
        if let source = arm.source {
            guard let pretrained else { throw PaperSetupError.missingPretrainedWeights(arm: arm.rawValue) }
            weights =
                source.carriesClassifierNames
                ? pretrained : Self.classifierWeights(fromPretrained: pretrained, stages: stages)
        }
        return try TransferClassifier(
            stages: stages, mode: arm.mode, head: head, inputShape: inputShape, pretrained: weights, seed: seed)
    }

    /// Maps pretrained stage weights (`"stage<k>.0.*"`, the conv of pretraining stage k)
    /// onto the classifier's names; every other layer of a classifier stage (its pool, and
    /// stage 2's own BatchNorm, identity in inference mode so a frozen stage 2 sees exactly
    /// what it was pretrained on) keeps its fresh values.
    public static func classifierWeights(
        fromPretrained weights: [String: Tensor], stages: [[any Layer]]
    ) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, layers) in stages.enumerated() {
            let pretrainedConv = StateKey.layer(stage: k + 1, index: 0)
            for (i, layer) in layers.enumerated() {
                for p in layer.parameters + layer.buffers {
                    let name = LayerTree.join(StateKey.layer(stage: k + 1, index: i), p.name)
                    if layer is Conv2D, let t = weights[LayerTree.join(pretrainedConv, p.name)] {
                        out[name] = t
                    } else {
                        out[name] = p.value
                    }
                }
            }
        }
        return out
    }

    /// Pretrained stage weights ready for ``classifierWeights(fromPretrained:stages:)``: a
    /// whitened conv is exported as its folded plain convolution, which is what the
    /// classifier's `Conv2D` loads.
    public static func transferableWeights(of trainer: LayerwiseTrainer) -> [String: Tensor] {
        var weights = trainer.stateTensors()
        for (k, stage) in trainer.stages.enumerated() {
            guard let whitened = stage.layers.first as? WhitenedConv2D else { continue }
            let (w, b) = whitened.foldedParameters()
            let conv = StateKey.layer(stage: k + 1, index: 0)
            weights[LayerTree.join(conv, "weight")] = w
            weights[LayerTree.join(conv, "bias")] = b
        }
        return weights
    }

    /// The paper's classifier training: Adam 1e-3, the rate ×0.1 after two thirds of the
    /// steps, the standard crop-and-flip augmentation of 32x32 images. `normalization` nil
    /// feeds raw pixels (for a stack whose first layer normalises its input itself).
    public static func trainingConfiguration(
        epochs: Int, batchSize: Int, normalization: ChannelNormalization?, seed: UInt64
    ) throws -> ClassifierConfiguration {
        ClassifierConfiguration(
            epochs: epochs, batchSize: batchSize, optimizer: Adam(learningRate: 1e-3),
            schedule: StepDecaySchedule(initial: 1e-3, factor: 0.1, milestones: [2.0 / 3.0]),
            augmentation: try ClassifierConfiguration.standardAugmentation(imageSize: 32), normalization: normalization,
            seed: seed)
    }
}
