import Layers
import Losses
import Optimizers
import TensorCore

/// How long one stage trains.
public enum TrainingBudget: Sendable, Equatable, CustomStringConvertible {
    /// A fixed number of optimizer steps, reported as one epoch.
    case steps(Int)
    /// `epochs` epochs of `stepsPerEpoch` steps each (patch samplers draw fresh triplets
    /// every step, so an "epoch" is a reporting and evaluation period, not a data pass).
    case epochs(Int, stepsPerEpoch: Int)

    /// All optimizer steps of the budget.
    public var totalSteps: Int {
        switch self {
        case let .steps(n): return n
        case let .epochs(e, s): return e * s
        }
    }

    /// Steps in one reporting epoch.
    public var stepsPerEpoch: Int {
        switch self {
        case let .steps(n): return n
        case let .epochs(_, s): return s
        }
    }

    /// Number of epochs.
    public var epochCount: Int {
        switch self {
        case .steps: return 1
        case let .epochs(e, _): return e
        }
    }

    public var description: String {
        switch self {
        case let .steps(n): return ".steps(\(n))"
        case let .epochs(e, s): return ".epochs(\(e), stepsPerEpoch: \(s))"
        }
    }
}

/// One greedily trained block of the feature stack and everything needed to train it.
///
/// The trainer freezes stages `1…k−1` (inference mode) and trains only stage `k`'s
/// layers, its optional projection head and whatever extra parameters its objective
/// owns. The head is used only while its own stage pretrains; later stages and
/// transferred classifiers see the stage's layers alone.
public struct Stage {
    /// A display name (defaults to "stage<k>"). Checkpoints always use "stage<k>" so
    /// renaming a stage does not invalidate them.
    public var name: String?
    /// The stage's layers, applied in order. Checkpoint names are
    /// `stage<k>.<index>.<path>` (``StateKey``; e.g. `stage1.0.weight`, or
    /// `stage1.0.1.weight` for the second child of a ``Sequential`` at index 0).
    /// Use the same structure for the ``TransferClassifier`` that loads the weights and
    /// the names match.
    public var layers: [any Layer]
    /// Layers applied to the flattened stage output `[rows, D]` during this stage's
    /// pretraining only (e.g. a `Linear` projection). Checkpoint names are
    /// `"stage<k>.head.<parameter name>"`.
    public var projectionHead: (any Layer)?
    /// What one training step does (sample, forward, loss, backward).
    public var objective: any StageObjective
    /// Updates the stage's trainable parameters. One optimizer per stage, so its state
    /// (momentum, moments) never leaks between stages.
    public var optimizer: any Optimizer
    /// Sets ``Optimizer/learningRate`` before every step.
    public var schedule: any LearningRateSchedule
    /// Anchors (triplets) per step.
    public var batchSize: Int
    /// How many steps the stage trains.
    public var budget: TrainingBudget
    /// Run once before the stage trains, with the frozen stages below it (e.g.
    /// ``InputWhitening``); nil for none.
    public var preparation: (any StagePreparation)?

    public init(
        name: String? = nil,
        layers: [any Layer],
        projectionHead: (any Layer)? = nil,
        objective: any StageObjective,
        optimizer: any Optimizer,
        schedule: any LearningRateSchedule,
        batchSize: Int,
        budget: TrainingBudget,
        preparation: (any StagePreparation)? = nil
    ) {
        self.name = name
        self.layers = layers
        self.projectionHead = projectionHead
        self.objective = objective
        self.optimizer = optimizer
        self.schedule = schedule
        self.batchSize = batchSize
        self.budget = budget
        self.preparation = preparation
    }

    /// Every learnable parameter of the stage's layers (not the head), in order.
    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
}

/// What one step of an objective measured.
///
/// ``metrics`` are the objective's named measurements (derived from ``diagnostics`` and
/// ``accuracy`` unless the objective gives its own) and ``progress`` its extra progress
/// text, shown after the contrastive diagnostics and accuracy.
public struct StepStatistics: Sendable, Equatable {
    /// The loss of this step.
    public var loss: Float
    /// Contrastive diagnostics, when the objective is contrastive.
    public var diagnostics: LossDiagnostics?
    /// Training examples this step processed, in the objective's
    /// ``StageObjective/sampleUnit`` (triplets, images …); drives the throughput figure.
    public var samples: Int
    /// Accuracy on this step's batch, for objectives that classify (e.g. surrogate classes).
    public var accuracy: Float?
    /// Named measurements of this step; the trainer checks each is finite and forwards them
    /// in ``StepEvent/metrics``.
    public var metrics: [StepMetric]
    /// Extra progress-text fragments of the objective (e.g. `"temp 0.10"`), shown by
    /// ``ProgressLine`` after the diagnostics; empty by default.
    public var progress: [String]

    public init(
        loss: Float, diagnostics: LossDiagnostics? = nil, samples: Int, accuracy: Float? = nil,
        metrics: [StepMetric]? = nil, progress: [String]? = nil
    ) {
        self.loss = loss
        self.diagnostics = diagnostics
        self.samples = samples
        self.accuracy = accuracy
        self.metrics = metrics ?? StandardMetrics.metrics(diagnostics: diagnostics, accuracy: accuracy)
        self.progress = progress ?? []
    }
}

/// Thrown by an objective (or found by the trainer) when a value turned NaN or infinite.
/// The trainer rethrows it as ``TrainerError/nonFinite(stage:epoch:step:what:)`` with the
/// position filled in.
public struct NonFiniteValue: Error, Equatable, CustomStringConvertible {
    /// What was non-finite, e.g. "embeddings" or "loss".
    public var what: String
    public init(what: String) { self.what = what }
    public var description: String { "\(what) is not finite" }
}

/// The frozen stages below the stage being trained, run in inference mode.
///
/// Frozen stages cache nothing and receive no gradient: the objective only reads
/// their output.
public struct FrozenStack {
    /// The layers of stages `1…k−1`, flattened into one list (empty for stage 1).
    public let layers: [any Layer]

    public init(layers: [any Layer]) { self.layers = layers }

    /// The features of `input` (inference mode).
    public func callAsFunction(_ input: Tensor) -> Tensor {
        LayerChain.forward(layers, input, mode: .inference)
    }
}

/// The layers being trained in one step: the stage (or, end to end, the whole stack)
/// followed by the optional projection head.
///
/// ``forward(_:)`` runs in training mode and returns embeddings flattened to `[rows, D]`;
/// ``backward(_:)`` takes the gradient in that same shape and accumulates every
/// trainable parameter's gradient.
public final class TrainableBlock {
    /// The trained stage layers.
    public let layers: [any Layer]
    /// The projection head, applied to the flattened stage output.
    public let head: (any Layer)?
    private var stageOutputShape: [Int] = []
    private var headOutputShape: [Int] = []

    public init(layers: [any Layer], head: (any Layer)?) {
        self.layers = layers
        self.head = head
    }

    /// Parameters of the layers and the head.
    public var parameters: [Parameter] { layers.flatMap(\.parameters) + (head?.parameters ?? []) }

    /// Embeddings `[rows, D]` for `input` (training mode; caches for ``backward(_:)``).
    public func forward(_ input: Tensor) -> Tensor {
        let y = LayerChain.forward(layers, input, mode: .training)
        stageOutputShape = y.shape
        let flat = y.unsafeReshaped([y.shape[0], y.count / max(1, y.shape[0])])
        guard let head else { return flat }
        let h = head.forward(flat, mode: .training)
        headOutputShape = h.shape
        return h.unsafeReshaped([h.shape[0], h.count / max(1, h.shape[0])])
    }

    /// Back-propagates `gradient` (shape of the last ``forward(_:)`` result) through the
    /// head and the layers; returns the gradient for the block's input.
    @discardableResult
    public func backward(_ gradient: Tensor) -> Tensor {
        var g = gradient
        if let head {
            g = head.backward(g.unsafeReshaped(headOutputShape))
        }
        g = g.unsafeReshaped(stageOutputShape)
        return LayerChain.backward(layers, g)
    }
}

/// Everything an objective needs for one step.
public struct StageStepContext {
    /// The stage being trained (1-based; 0 when the whole stack trains end to end).
    public let stage: Int
    /// The patch size the receptive field of the stack demands.
    public let patchSize: Int
    /// Anchors per step.
    public let batchSize: Int
    /// Stages below, frozen, inference mode.
    public let frozen: FrozenStack
    /// Stage (+ head) being trained.
    public let trainable: TrainableBlock

    public init(stage: Int, patchSize: Int, batchSize: Int, frozen: FrozenStack, trainable: TrainableBlock) {
        self.stage = stage
        self.patchSize = patchSize
        self.batchSize = batchSize
        self.frozen = frozen
        self.trainable = trainable
    }
}

/// One training step of a stage: draw data, run the frozen stack and the trainable
/// block, evaluate a loss, and back-propagate into the trainable parameters.
///
/// The trainer owns everything around the step — learning-rate schedule, zeroing
/// gradients, the finiteness check, the optimizer update, events and checkpoints — so
/// an objective is only the part that differs between training signals. An objective
/// that needs its own trainable state (e.g. a temporary surrogate-class classifier) creates
/// it in ``prepare(embeddingFeatures:using:)`` and exposes it as
/// ``auxiliaryParameters``: the trainer updates, checks and checkpoints those alongside
/// the stage (under `"stage<k>.objective.<name>"`), with no special case.
public protocol StageObjective: AnyObject {
    /// Channels of the raw patches the objective feeds the stack (nil if unknown);
    /// checked against the trainer's `inputChannels`.
    var inputChannels: Int? { get }
    /// Extra trainable parameters the objective owns (empty by default).
    var auxiliaryParameters: [Parameter] { get }
    /// What one of ``StepStatistics/samples`` is, for throughput text (`"trip"` gives
    /// `"… trip/s"`; the default is `"sample"`).
    var sampleUnit: String { get }
    /// Components drawing from generators of their own, by stable name; the trainer saves
    /// and restores them in checkpoints (empty by default).
    var ownedGenerators: [(name: String, owner: any GeneratorOwning)] { get }
    /// Validates hyper-parameters (margins, temperatures …) before training.
    func validate() throws
    /// Checks, before training, that the objective can supply data for `patchSize`
    /// patches in batches of `batchSize` (e.g. that the patches fit in the images), so a
    /// stage that cannot run fails when the trainer is built, not after the stages below
    /// it have trained. The default accepts everything.
    func validate(patchSize: Int, batchSize: Int) throws
    /// Called before the stage's first step (and again on resume, before the checkpoint
    /// is loaded) with the width `D` of the flattened embeddings, to build auxiliary
    /// parameters. Draw any randomness from `generator`.
    func prepare(embeddingFeatures: Int, using generator: inout SeededGenerator) throws
    /// Computes one step's loss and accumulates gradients into the trainable block's
    /// (and the auxiliary) parameters. Gradients arrive zeroed; do not update weights.
    /// Throw ``NonFiniteValue`` when an intermediate value is NaN or infinite.
    func step(_ context: StageStepContext, using generator: inout SeededGenerator) throws -> StepStatistics
}

extension StageObjective {
    public var inputChannels: Int? { nil }
    public var auxiliaryParameters: [Parameter] { [] }
    public var sampleUnit: String { "sample" }
    public var ownedGenerators: [(name: String, owner: any GeneratorOwning)] { [] }
    public func validate() throws {}
    public func validate(patchSize: Int, batchSize: Int) throws {}
    public func prepare(embeddingFeatures: Int, using generator: inout SeededGenerator) throws {}
}

/// Runs layer lists in order (a stage, or several stages, as one chain).
enum LayerChain {
    static func forward(_ layers: [any Layer], _ input: Tensor, mode: Mode) -> Tensor {
        var x = input
        for layer in layers { x = layer.forward(x, mode: mode) }
        return x
    }

    static func backward(_ layers: [any Layer], _ gradient: Tensor) -> Tensor {
        var g = gradient
        for layer in layers.reversed() { g = layer.backward(g) }
        return g
    }
}
