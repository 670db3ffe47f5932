/// Why a loss refused its input or its configuration.
///
/// Every case names what is wrong and where, so a training run that stops on bad data
/// says which row or which option to look at.
public enum LossError: Error, Equatable, CustomStringConvertible {
    /// The embeddings are not a `[rows, features…]` tensor (rank ≥ 2) with at least one feature per row.
    case invalidEmbeddingShape(shape: [Int])
    /// The embeddings have `got` rows but the layout needs `expected` (= B · (2 + K)).
    case rowCountMismatch(expected: Int, got: Int)
    /// `sourceImages` has `got` entries but there are `expected` embedding rows.
    case sourceImageCountMismatch(expected: Int, got: Int)
    /// The batch has no anchors (B = 0) or no rows.
    case emptyBatch
    /// A ``TripletLayout`` with a negative batch size or negative count.
    case invalidLayout(batchSize: Int, negativesPerAnchor: Int)
    /// A NaN or infinity in `what` (e.g. "embeddings", "logits") at the given row.
    case nonFinite(what: String, row: Int)
    /// A hyper-parameter is outside its valid range; `name` is the option ("margin", "temperature").
    case invalidHyperparameter(name: String, value: Float, reason: String)
    /// The layout stores no negatives (K = 0) and the loss has no miner to find some.
    case noNegatives(negativesPerAnchor: Int)
    /// No row in the batch may serve as a negative for this anchor (every other row shares
    /// its source image).
    case noNegativeCandidates(anchor: Int)
    /// A custom ``NegativeMiner`` returned a row that is out of range or not allowed
    /// (same source image as the anchor).
    case invalidMinerChoice(anchor: Int, row: Int)
    /// The logits are not a rank-2 `[batch, classes]` tensor with at least one class.
    case invalidLogitShape(shape: [Int])
    /// `labels` has `got` entries but the logits have `expected` rows.
    case labelCountMismatch(expected: Int, got: Int)
    /// A label outside `0..<classCount`, at sample `index`.
    case labelOutOfRange(index: Int, label: Int, classCount: Int)

    public var description: String {
        switch self {
        case let .invalidEmbeddingShape(shape):
            return
                "embeddings have shape \(shape); a loss needs [rows, features…] (rank ≥ 2)"
                + " with at least one feature per row"
        case let .rowCountMismatch(expected, got):
            return "embeddings have \(got) rows but the triplet layout needs \(expected) (B · (2 + K))"
        case let .sourceImageCountMismatch(expected, got):
            return
                "sourceImages has \(got) entries but there are \(expected) embedding rows"
                + "; give one source image per row"
        case .emptyBatch:
            return "the batch is empty: a loss needs at least one anchor"
        case let .invalidLayout(b, k):
            return "invalid triplet layout: batchSize \(b), negativesPerAnchor \(k); both must be ≥ 0"
        case let .nonFinite(what, row):
            return "\(what) row \(row) contains NaN or infinity"
        case let .invalidHyperparameter(name, value, reason):
            return "invalid \(name) = \(value): \(reason)"
        case let .noNegatives(k):
            return
                "the layout stores \(k) negatives per anchor and the loss has no negative miner"
                + "; store negatives or pass a miner"
        case let .noNegativeCandidates(anchor):
            return
                "anchor \(anchor) has no negative candidate: every other row in the batch comes from its source image"
        case let .invalidMinerChoice(anchor, row):
            return
                "the negative miner chose row \(row) for anchor \(anchor)"
                + ", which is out of range or from the anchor's own source image"
        case let .invalidLogitShape(shape):
            return
                "logits have shape \(shape); cross-entropy needs a rank-2 tensor [batch, classes]"
                + " with at least one class"
        case let .labelCountMismatch(expected, got):
            return "\(got) labels for \(expected) logit rows; give one label per row"
        case let .labelOutOfRange(index, label, classCount):
            return "label \(label) at sample \(index) is outside 0..<\(classCount)"
        }
    }
}
