import Augmentations
import Datasets
import Layers
import Losses
import Optimizers
import PatchSamplers
import TensorCore

/// How ``WideStack/contrastiveStages(layers:dataset:normalization:views:options:using:)``
/// trains each stage: two augmented views of every image, NT-Xent over the `2B` rows.
public struct WideContrastiveOptions: Sendable, Equatable {
    /// NT-Xent temperature (> 0).
    public var temperature: Float
    /// Images per step (≥ 2); each gives two views, so a step embeds `2B` rows.
    public var batchSize: Int
    /// Adam's learning rate as a fraction of the stage's initial weight scale
    /// (`radius / √fan-in`, what ``WideStack/layers(_:inputChannels:radius:using:)`` draws),
    /// so one value suits every depth.
    public var relativeLearningRate: Float
    /// Passes over the images per stage (one pass = `count / batchSize` steps).
    public var epochs: Int
    /// The stage's map is average-pooled to this many cells per side (1: the global average
    /// pool) and flattened into the embedding.
    public var embeddingGrid: Int
    /// Width of a linear projection after the pooling (nil: the pooled stage output itself
    /// is the embedding).
    public var projection: Int?
    /// With the default views: colour jitter and grey as well as crop and flip
    /// (``WideStack/contrastiveViews(side:colour:)``).
    public var colourViews: Bool

    public init(
        temperature: Float = 0.2, batchSize: Int = 64, relativeLearningRate: Float = 0.01, epochs: Int = 1,
        embeddingGrid: Int = 1, projection: Int? = nil, colourViews: Bool = true
    ) {
        self.temperature = temperature
        self.batchSize = batchSize
        self.relativeLearningRate = relativeLearningRate
        self.epochs = epochs
        self.embeddingGrid = embeddingGrid
        self.projection = projection
        self.colourViews = colourViews
    }

    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` naming the option.
    public func validate() throws {
        func fail(_ option: String, _ value: Any, _ reason: String) -> TrainerError {
            .invalidOption(stage: nil, option: "contrastive.\(option)", value: "\(value)", reason: reason)
        }
        guard temperature > 0, temperature.isFinite else { throw fail("temperature", temperature, "must be > 0") }
        guard batchSize >= 2 else {
            throw fail("batchSize", batchSize, "must be ≥ 2: the batch's other images are the negatives")
        }
        guard relativeLearningRate > 0, relativeLearningRate.isFinite else {
            throw fail("relativeLearningRate", relativeLearningRate, "must be > 0 and finite")
        }
        guard epochs >= 1 else { throw fail("epochs", epochs, "must be ≥ 1") }
        guard embeddingGrid >= 1 else { throw fail("embeddingGrid", embeddingGrid, "must be ≥ 1") }
        if let projection, projection < 1 { throw fail("projection", projection, "must be ≥ 1") }
    }
}

extension WideStack {
    /// SimCLR's views at CIFAR scale for `side` × `side` images in [0, 1]: a random crop
    /// after zero padding by `side / 8` and a horizontal flip with probability ½, then, with
    /// `colour`, colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with
    /// probability 0.8 and grey with probability 0.2.
    public static func contrastiveViews(side: Int, colour: Bool = true) throws -> any Augmentation {
        let geometric: [any Augmentation] = [
            try RandomCrop(size: side, padding: max(1, side / 8)), try HorizontalFlip(probability: 0.5),
        ]
        guard colour else { return Compose(geometric) }
        return Compose(
            geometric + [
                try RandomApply(
                    ColorJitter(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1), probability: 0.8),
                try RandomGrayscale(probability: 0.2),
            ])
    }

    /// Contrastive stages over `layers` (built by ``layers(_:inputChannels:radius:using:)``):
    /// each step two views of `batchSize` whole images (``TwoViewImageSampler``), the frozen
    /// stages below in inference mode, the stage in training mode, the embedding the stage's
    /// map average-pooled to an `embeddingGrid` grid (``AdaptiveAveragePool``; then the
    /// optional linear projection; a head used only while the stage trains),
    /// ``SymmetricInfoNCELoss`` over all `2B` rows and Adam on the stage alone. The same
    /// stages train end to end with ``LayerwiseTrainer/pretrainEndToEnd(resume:events:)``.
    ///
    /// - Parameter views: the augmentation of every view (nil: ``contrastiveViews(side:colour:)``
    ///   with the options' `colourViews`).
    /// - Throws: ``TrainerError`` for bad options or a stage without a ``Conv2D``;
    ///   ``SamplerError`` for a dataset of fewer than 2 images; ``AugmentationError``.
    public static func contrastiveStages(
        layers: [[any Layer]], dataset: any ImageDataset, normalization: ChannelNormalization? = nil,
        views: (any Augmentation)? = nil, options: WideContrastiveOptions = WideContrastiveOptions(),
        radius: Float = initialRadius, using generator: inout SeededGenerator
    ) throws -> [Stage] {
        try options.validate()
        guard options.batchSize <= dataset.count else {
            throw TrainerError.invalidOption(
                stage: nil, option: "contrastive.batchSize", value: "\(options.batchSize)",
                reason: "a batch holds distinct images and the dataset has \(dataset.count)")
        }
        let sampler = try TwoViewImageSampler(
            dataset: dataset,
            views: try views ?? contrastiveViews(side: dataset.imageShape.height, colour: options.colourViews),
            normalization: normalization)
        let steps = max(1, dataset.count / options.batchSize)
        return try layers.enumerated().map { k, stage in
            guard let conv = convolution(of: stage) else {
                throw TrainerError.invalidOption(
                    stage: k + 1, option: "layers", value: "no Conv2D", reason: "a wide stage has one convolution")
            }
            let scale = radius / Float(conv.inputChannels * conv.kernelSize * conv.kernelSize).squareRoot()
            let rate = options.relativeLearningRate * scale
            let grid = options.embeddingGrid
            var head: any Layer = try AdaptiveAveragePool(channels: conv.outputChannels, grid: grid)
            if let width = options.projection {
                let pooled = conv.outputChannels * grid * grid
                head = Sequential([head, try Linear(inputFeatures: pooled, outputFeatures: width, using: &generator)])
            }
            return Stage(
                layers: stage, projectionHead: head,
                objective: ContrastiveObjective(
                    sampler: sampler, loss: SymmetricInfoNCELoss(temperature: options.temperature)),
                optimizer: Adam(learningRate: rate), schedule: ConstantSchedule(rate), batchSize: options.batchSize,
                budget: .epochs(options.epochs, stepsPerEpoch: steps))
        }
    }
}
