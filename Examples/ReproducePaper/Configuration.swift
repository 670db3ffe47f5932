import ArgumentParser
import Foundation
import Layerwise

/// How much work each part of the experiment gets.
struct Budget {
    var name: String
    /// Classifier widths: conv1 filters, conv2 filters, hidden FC units.
    var conv1Filters: Int
    var conv2Filters: Int
    var hiddenUnits: Int
    /// Classifier training, per arm and seed.
    var epochs: Int
    var batchSize: Int
    var seeds: Int
    /// Contrastive pretraining: epochs of ⌈pretraining images / batch⌉ steps, at least
    /// `minimumPretrainSteps` steps per epoch so tiny samples still train.
    var pretrainEpochs: Int
    var pretrainBatchSize: Int
    var minimumPretrainStepsPerEpoch: Int
    /// Supervised pretraining on CIFAR-100 labels.
    var supervisedEpochs: Int
    /// Linear-probe epochs (Adam on standardised quadrant-pooled features; 200 reach the
    /// accuracy of a converged logistic regression within about a point on CIFAR-10).
    var probeEpochs: Int

    static func preset(_ preset: Preset) -> Budget {
        switch preset {
        case .quick:
            return Budget(
                name: "quick", conv1Filters: 32, conv2Filters: 64, hiddenUnits: 128, epochs: 8, batchSize: 64, seeds: 1,
                pretrainEpochs: 20, pretrainBatchSize: 128, minimumPretrainStepsPerEpoch: 10, supervisedEpochs: 8,
                probeEpochs: 100)
        case .paper:
            // The reference run's budget (../shared/RESEARCH.md, paper_ref.py defaults).
            return Budget(
                name: "paper", conv1Filters: 64, conv2Filters: 128, hiddenUnits: 256, epochs: 15, batchSize: 128,
                seeds: 2,
                pretrainEpochs: 10, pretrainBatchSize: 512, minimumPretrainStepsPerEpoch: 1, supervisedEpochs: 10,
                probeEpochs: 200)
        }
    }
}

/// The pretraining recipe of one contrastive stage: how positives and negatives are made
/// and which loss separates them.
struct Recipe {
    enum Loss {
        case triplet(distance: DistanceName, margin: Float, miner: MinerName?)
        case infoNCE(temperature: Float)
    }

    var name: String
    var objective: ObjectiveName
    /// Stage-1 patch size (7 = the minimum for 6x6 filters and 2x2 max pooling).
    var patchSize: Int
    /// Largest anchor–positive offset in pixels.
    var maxOffset: Int
    /// Colour jitter strength applied to positives only (0 = none).
    var positiveJitter: Float
    /// Rotation range in degrees applied to positives (0 = none).
    var positiveRotation: Float
    /// Colour jitter (brightness, contrast, saturation factors in 1 ± s) applied to every
    /// view independently with probability `viewJitterProbability` (0 = none).
    var viewJitter: Float = 0
    var viewJitterProbability: Float = 0
    /// Random grayscale of every view with this probability (0 = none).
    var viewGrayscale: Float = 0
    /// Mirror each source image (both views alike) with probability ½.
    var flipsImages = false
    /// ZCA whitening of stage-1 input windows with this ε (nil = none): the stage-1 conv
    /// is a `WhitenedConv2D`, transferred as its folded plain convolution.
    var whiteningEpsilon: Float? = nil
    /// ZCA whitening of the input windows of stages 2+ (nil = none), fitted to the frozen
    /// stages' output right before the stage trains (`InputWhitening`), with ε relative to
    /// the mean window variance.
    var upperWhiteningEpsilon: Float? = nil
    var sameImageNegatives: Bool
    var negativesPerAnchor: Int
    var loss: Loss
    var learningRate: Float
    /// Decoupled (AdamW) weight decay of the contrastive stages (0 = plain Adam). The
    /// embedding is L2-normalised, so the filters' scale is free and decay only removes the
    /// part of the initial weights that no gradient keeps.
    var weightDecay: Float = 0
    /// The contrastive stages' optimiser: Adam (per-coordinate steps) or SGD with momentum
    /// 0.9 (steps along the gradient, which in whitened coordinates is well conditioned).
    var optimizer: PretrainOptimizer = .adam
    /// The contrastive stages' learning-rate schedule over each stage's budget.
    var schedule: PretrainSchedule = .constant
    /// How the stage-1 whitened conv starts (see ``Stage1Init``).
    var stage1Init: Stage1Init = .random
    /// Exemplar objective: surrogate classes and copies per class per step.
    var surrogateClasses: Int
    var copiesPerClass: Int

    /// The paper's recipe as its code ran it: neighbouring 7x7 patches of an 8x8 crop,
    /// one random negative from another image, triplet loss on cosine distance with
    /// margin 0.5, Adam 1e-3.
    static let paper = Recipe(
        name: "paper", objective: .triplet, patchSize: 7, maxOffset: 1, positiveJitter: 0, positiveRotation: 0,
        sameImageNegatives: false, negativesPerAnchor: 1, loss: .triplet(distance: .cosine, margin: 0.5, miner: nil),
        learningRate: 1e-3, surrogateClasses: 0, copiesPerClass: 0)

    /// The library's default, the winner of the recipe study (Docs/RecipeFindings.md):
    /// ZCA-whitened input windows, InfoNCE (τ = 0.1) with in-batch negatives, positives a
    /// second 7x7 patch up to 4 px away in the same (identically mirrored) image, and
    /// strong colour jitter plus random grayscale on every view. Stage 1 starts from the
    /// k-means baseline's filters (Coates et al. 2011), which the contrastive training then
    /// refines: that start probes and transfers better than a random one (fourth pass of
    /// the study). Stage 2 (with `--layers 2`) sees its input whitened too, fitted to
    /// stage 1's trained output (ε 0.01 relative).
    static let layerwise = Recipe(
        name: "layerwise", objective: .infonce, patchSize: 7, maxOffset: 4, positiveJitter: 0, positiveRotation: 0,
        viewJitter: 0.8, viewJitterProbability: 0.8, viewGrayscale: 0.5, flipsImages: true, whiteningEpsilon: 0.1,
        upperWhiteningEpsilon: 0.01, sameImageNegatives: false, negativesPerAnchor: 1, loss: .infoNCE(temperature: 0.1),
        learningRate: 1e-3, stage1Init: .kmeans, surrogateClasses: 0, copiesPerClass: 0)

    static func named(_ name: RecipeName, objective: ObjectiveName?) -> Recipe {
        var recipe = name == .paper ? Recipe.paper : Recipe.layerwise
        if let objective, objective != recipe.objective {
            recipe.objective = objective
            switch objective {
            case .triplet: recipe.loss = .triplet(distance: .cosine, margin: 0.5, miner: nil)
            case .infonce: recipe.loss = .infoNCE(temperature: 0.1)
            case .exemplar:
                recipe.surrogateClasses = 4000  // capped at the number of images
                recipe.copiesPerClass = 2
            }
            recipe.name += "+\(objective.rawValue)"
        }
        return recipe
    }

    func makeLoss() throws -> any ContrastiveLoss {
        switch loss {
        case let .infoNCE(temperature):
            let l = InfoNCELoss(temperature: temperature)
            try l.validate()
            return l
        case let .triplet(distance, margin, miner):
            let l = TripletMarginLoss(distance: distance.make(), margin: margin, miner: miner?.make())
            try l.validate()
            return l
        }
    }

    func positiveAugmentation() throws -> (any Augmentation)? {
        var parts: [any Augmentation] = []
        if positiveRotation > 0 { parts.append(try RandomRotation(maxDegrees: positiveRotation, fill: .edge)) }
        if positiveJitter > 0 {
            parts.append(
                try ColorJitter(
                    brightness: positiveJitter, contrast: positiveJitter, saturation: positiveJitter,
                    hue: min(0.5, positiveJitter / 4)))
        }
        return parts.isEmpty ? nil : Compose(parts)
    }

    func viewAugmentation() throws -> (any Augmentation)? {
        var parts: [any Augmentation] = []
        if viewJitter > 0 {
            let jitter = try ColorJitter(brightness: viewJitter, contrast: viewJitter, saturation: viewJitter, hue: 0)
            parts.append(try RandomApply(jitter, probability: viewJitterProbability))
        }
        if viewGrayscale > 0 { parts.append(try RandomGrayscale(probability: viewGrayscale)) }
        return parts.isEmpty ? nil : Compose(parts)
    }

    /// The stage objective over `dataset` (unlabelled use) for a stage trained on
    /// `patchSize` patches.
    func makeObjective<G: RandomNumberGenerator>(
        dataset: any ImageDataset, normalization: ChannelNormalization, patchSize: Int, using generator: inout G
    ) throws -> any StageObjective {
        switch objective {
        case .triplet, .infonce:
            let sampler = try NeighborPatchSampler(
                dataset: dataset, maxOffset: maxOffset, negativesPerAnchor: negativesPerAnchor,
                sameImageNegatives: sameImageNegatives, positiveAugmentation: try positiveAugmentation(),
                viewAugmentation: try viewAugmentation(), flipsImages: flipsImages, normalization: normalization)
            return ContrastiveObjective(sampler: sampler, loss: try makeLoss())
        case .exemplar:
            // Exemplar-CNN: a seed region a little larger than the patch, distorted by
            // rotation, colour change, scale and translation; each seed is one class.
            let augmentation = Compose([
                try RandomRotation(maxDegrees: 20, fill: .edge),
                try ColorJitter(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1),
                try RandomResizedCrop(size: patchSize + 2, scale: 0.5...1, ratio: 0.8...1.25),
                try HorizontalFlip(probability: 0.5),
            ])
            let surrogates = try SurrogateClassDataset(
                dataset: dataset, classCount: min(surrogateClasses, dataset.count), seedPatchSize: patchSize + 2,
                selection: .highGradient(candidatesPerSeed: 8), augmentation: augmentation,
                normalization: normalization, using: &generator)
            return ExemplarObjective(surrogates: surrogates, copiesPerClass: copiesPerClass)
        }
    }
}

/// The optimiser of the contrastive stages.
enum PretrainOptimizer: String, ExpressibleByArgument, CaseIterable {
    case adam, sgd

    /// Weight decay is decoupled for Adam (AdamW) and plain L2 for SGD, which shrinks the
    /// weights by the same factor 1 − lr·wd per step.
    func make(learningRate: Float, weightDecay: Float) throws -> any Optimizer {
        switch self {
        case .adam:
            let adam = Adam(learningRate: learningRate, weightDecay: weightDecay, decoupledWeightDecay: true)
            try adam.validate()
            return adam
        case .sgd:
            let sgd = SGD(learningRate: learningRate, momentum: 0.9, weightDecay: weightDecay)
            try sgd.validate()
            return sgd
        }
    }
}

/// The learning-rate schedule of the contrastive stages.
enum PretrainSchedule: String, ExpressibleByArgument, CaseIterable {
    /// The recipe's constant rate.
    case constant
    /// Cosine decay from the rate to 0 over each stage's steps (no warm-up).
    case cosine

    func make(learningRate: Float) throws -> any LearningRateSchedule {
        switch self {
        case .constant: return ConstantSchedule(learningRate)
        case .cosine:
            let schedule = CosineSchedule(initial: learningRate)
            try schedule.validate()
            return schedule
        }
    }
}

/// The starting point of a whitened stage-1 conv.
enum Stage1Init: String, ExpressibleByArgument, CaseIterable {
    /// U(±1/√fanIn) in whitened coordinates (the layerwise recipe's start until the fourth
    /// pass of the recipe study).
    case random
    /// Exactly the k-means baseline's folded convolution, expressed in the whitened
    /// coordinates (W = W_eff Z⁻¹, b = b_eff + W_eff μ): a data-dependent initialisation,
    /// and the layerwise recipe's default (it probes and transfers best).
    case kmeans
    /// The same filters, all scaled by one positive constant so the mean filter norm in
    /// whitened coordinates equals that of the random init (the same function up to one
    /// scale, which the normalised embedding and the standardised probe do not see, but
    /// Adam's fixed-size steps then move the filters as far as from a random start).
    case kmeansMatched = "kmeans-matched"
}

enum ExperimentError: Error, CustomStringConvertible {
    case unavailable(String)
    case data(String)

    var description: String {
        switch self {
        case let .unavailable(what): return "\(what) is not available in this build"
        case let .data(reason): return reason
        }
    }
}

/// The images of one run and where they came from.
struct DataSources {
    var pretrain: InMemoryImageDataset
    var pretrainSource: String
    var train: InMemoryImageDataset
    var test: InMemoryImageDataset
    var testSource: String

    static func embeddedDirectory(_ name: String) throws -> String {
        // Foundation on Linux and on Darwin differ on whether resourcePath already ends
        // in the copied folder; look in both places.
        let bundle = Bundle.module
        let candidates = [bundle.resourcePath, bundle.bundlePath].compactMap { $0 }
            .flatMap { [$0 + "/Resources/" + name, $0 + "/" + name] }
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ExperimentError.data(
                "the embedded sample \(name) is missing from this build (looked in \(candidates))")
        }
        return found
    }

    static func load(
        cifar100: String?, cifar10: String?, cifar10Test: String?, validation: Int, limitPretrain: Int, limitTrain: Int
    ) throws -> DataSources {
        let c100Directory = try cifar100 ?? embeddedDirectory("cifar100_sample")
        var pretrain = try CIFAR.loadCIFAR100(directory: c100Directory, split: .train, labels: .fine)
        if limitPretrain > 0 { pretrain = pretrain.prefix(limitPretrain) }

        let c10Directory = try cifar10 ?? embeddedDirectory("cifar10_sample")
        var train = try CIFAR.loadCIFAR10(directory: c10Directory, split: .train)
        let test: InMemoryImageDataset
        let testSource: String
        let defaultTest = c10Directory + "/test_batch.bin"
        if let cifar10Test {
            test = try CIFAR.loadCIFAR10(files: [cifar10Test])
            testSource = "file \(cifar10Test)"
        } else if FileManager.default.fileExists(atPath: defaultTest) {
            test = try CIFAR.loadCIFAR10(files: [defaultTest])
            testSource =
                cifar10 == nil
                ? "embedded validation file (400 CIFAR-10 training images disjoint from the 1,200 used for training)"
                : "file \(defaultTest)"
        } else {
            let parts = try train.split(validationCount: validation)
            train = parts.train
            test = parts.validation
            testSource = "held-out validation split: the last \(validation) images of the CIFAR-10 training files"
        }
        if limitTrain > 0 { train = train.prefix(limitTrain) }
        return DataSources(
            pretrain: pretrain, pretrainSource: cifar100 == nil ? "embedded CIFAR-100 sample" : c100Directory,
            train: train, test: test, testSource: testSource)
    }
}
