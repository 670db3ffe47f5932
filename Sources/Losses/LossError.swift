/// Why a loss refused its input or its configuration.
///
/// Every case names what is wrong and where, so a training run that stops on bad data
/// says which row or which option to look at.
public enum LossError: Error, Equatable, CustomStringConvertible {
    /// The embeddings are not a rank-2 `[rows, dimension]` tensor with dimension > 0.
    case invalidEmbeddingShape(shape: [Int])
    /// The embeddings have `got` rows but the layout needs `expected` (= B · (2 + K)).
    case rowCountMismatch(expected: Int, got: Int)
    /// `sourceImages` has `got` entries but there are `expected` embedding rows.
    case sourceImageCountMismatch(expected: Int, got: Int)
    /// The batch has no anchors (B = 0) or no rows.
    case emptyBatch
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
            return "embeddings have shape \(shape); a loss needs a rank-2 tensor [rows, dimension] with dimension > 0"
        case let .rowCountMismatch(expected, got):
            return "embeddings have \(got) rows but the triplet layout needs \(expected) (B · (2 + K))"
        case let .sourceImageCountMismatch(expected, got):
            return "sourceImages has \(got) entries but there are \(expected) embedding rows; give one source image per row"
        case .emptyBatch:
            return "the batch is empty: a loss needs at least one anchor"
        case let .nonFinite(what, row):
            return "\(what) row \(row) contains NaN or infinity"
        case let .invalidHyperparameter(name, value, reason):
            return "invalid \(name) = \(value): \(reason)"
        case let .noNegatives(k):
            return "the layout stores \(k) negatives per anchor and the loss has no negative miner; store negatives or pass a miner"
        case let .noNegativeCandidates(anchor):
            return "anchor \(anchor) has no negative candidate: every other row in the batch comes from its source image"
        case let .invalidMinerChoice(anchor, row):
            return "the negative miner chose row \(row) for anchor \(anchor), which is out of range or from the anchor's own source image"
        case let .invalidLogitShape(shape):
            return "logits have shape \(shape); cross-entropy needs a rank-2 tensor [batch, classes] with at least one class"
        case let .labelCountMismatch(expected, got):
            return "\(got) labels for \(expected) logit rows; give one label per row"
        case let .labelOutOfRange(index, label, classCount):
            return "label \(label) at sample \(index) is outside 0..<\(classCount)"
        }
    }
}

/// The checked facts about a batch every loss needs: sizes, and where each row came from.
struct ValidatedBatch {
    let batchSize: Int
    let negativesPerAnchor: Int
    let rowCount: Int
    let dimension: Int

    /// Checks shape, row counts, source images and finiteness (reporting the first bad row).
    init(_ batch: TripletEmbeddings) throws {
        let shape = batch.embeddings.shape
        guard shape.count == 2, shape[1] > 0 else { throw LossError.invalidEmbeddingShape(shape: shape) }
        let layout = batch.layout
        guard layout.batchSize > 0, layout.negativesPerAnchor >= 0 else { throw LossError.emptyBatch }
        guard shape[0] == layout.rowCount else {
            throw LossError.rowCountMismatch(expected: layout.rowCount, got: shape[0])
        }
        if let sources = batch.sourceImages, sources.count != shape[0] {
            throw LossError.sourceImageCountMismatch(expected: shape[0], got: sources.count)
        }
        batchSize = layout.batchSize
        negativesPerAnchor = layout.negativesPerAnchor
        rowCount = shape[0]
        dimension = shape[1]
        let d = dimension
        let badRow: Int? = batch.embeddings.withUnsafeBufferPointer { b in
            for i in 0..<b.count where !b[i].isFinite { return i / d }
            return nil
        }
        if let row = badRow { throw LossError.nonFinite(what: "embeddings", row: row) }
    }

    /// The source image of `row`: from `sourceImages` when known, otherwise the anchor index
    /// the row belongs to (anchor i, positive i and anchor i's stored negatives all count as
    /// source i — the conservative choice: a row is never mined as a negative for the anchor
    /// it was sampled with).
    @inline(__always)
    func source(ofRow row: Int, _ sources: [Int]?) -> Int {
        if let sources { return sources[row] }
        if row < batchSize { return row }
        if row < 2 * batchSize { return row - batchSize }
        return (row - 2 * batchSize) / negativesPerAnchor
    }
}
