import TensorCore

/// The embeddings of one Siamese forward pass, rows laid out by a ``TripletLayout``.
public struct TripletEmbeddings: Sendable {
    /// [layout.rowCount, D] embeddings.
    public var embeddings: Tensor
    public var layout: TripletLayout
    /// The source image of every row (same order), when known. Miners use it to never
    /// pick a negative from the anchor's own image.
    public var sourceImages: [Int]?

    public init(_ embeddings: Tensor, layout: TripletLayout, sourceImages: [Int]? = nil) {
        self.embeddings = embeddings
        self.layout = layout
        self.sourceImages = sourceImages
    }
}

/// What a loss reports besides its value, for progress lines and for catching collapse.
public struct LossDiagnostics: Sendable, Equatable {
    /// Mean anchor–positive distance (1 − cosine similarity for ``InfoNCELoss``).
    public var meanPositiveDistance: Float
    /// Mean anchor–negative distance (for ``InfoNCELoss``: 1 − cosine similarity averaged
    /// over every negative candidate).
    public var meanNegativeDistance: Float
    /// Fraction of triplets with non-zero loss (for ``InfoNCELoss``: fraction of anchors
    /// whose positive is not strictly the most similar candidate).
    public var activeFraction: Float
    /// True when the embeddings have collapsed: positive and negative distances are
    /// equal and every triplet is active (the loss sits at the margin); for ``InfoNCELoss``,
    /// when every candidate similarity in the batch is the same.
    public var isCollapsed: Bool

    public init(meanPositiveDistance: Float, meanNegativeDistance: Float, activeFraction: Float, isCollapsed: Bool) {
        self.meanPositiveDistance = meanPositiveDistance
        self.meanNegativeDistance = meanNegativeDistance
        self.activeFraction = activeFraction
        self.isCollapsed = isCollapsed
    }
}

/// A loss value with the gradient for every embedding row.
public struct LossResult: Sendable {
    public var value: Float
    /// ∂loss/∂embeddings, same shape as the embeddings.
    public var gradient: Tensor
    public var diagnostics: LossDiagnostics

    public init(value: Float, gradient: Tensor, diagnostics: LossDiagnostics) {
        self.value = value
        self.gradient = gradient
        self.diagnostics = diagnostics
    }
}

/// A training signal over the embeddings of anchors, positives and negatives.
///
/// Conform to train with your own loss: ``LayerwiseTrainer`` calls only this.
public protocol ContrastiveLoss {
    /// The loss value, its gradient for every row, and diagnostics.
    /// - Throws: ``LossError`` for mismatched layouts, empty batches, non-finite values.
    func evaluate(_ batch: TripletEmbeddings) throws -> LossResult
    /// Validates hyper-parameters (margin ≥ 0, temperature > 0 …) before training.
    func validate() throws
    /// Components that draw from generators of their own (e.g. a random miner), by a
    /// stable name; the trainer checkpoints them. Empty by default.
    var ownedGenerators: [(name: String, owner: any GeneratorOwning)] { get }
}

extension ContrastiveLoss {
    public func validate() throws {}
    public var ownedGenerators: [(name: String, owner: any GeneratorOwning)] { [] }
}
