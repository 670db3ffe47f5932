import TensorCore

/// The checked facts about a batch every loss needs: sizes, and where each row came from.
struct ValidatedBatch {
    let batchSize: Int
    let negativesPerAnchor: Int
    let rowCount: Int
    let dimension: Int

    /// Checks shape, row counts, source images and finiteness (reporting the first bad row).
    init(_ batch: TripletEmbeddings) throws {
        // Rank ≥ 2: trailing dimensions are the features of a row, so [N, C, 1, 1] straight
        // from a conv stage works like [N, C]. Gradients come back in the input's shape.
        let shape = batch.embeddings.shape
        guard shape.count >= 2, shape.dropFirst().reduce(1, *) > 0 else {
            throw LossError.invalidEmbeddingShape(shape: shape)
        }
        let layout = batch.layout
        guard layout.batchSize >= 0, layout.negativesPerAnchor >= 0 else {
            throw LossError.invalidLayout(batchSize: layout.batchSize, negativesPerAnchor: layout.negativesPerAnchor)
        }
        guard layout.batchSize > 0 else { throw LossError.emptyBatch }
        guard shape[0] == layout.rowCount else {
            throw LossError.rowCountMismatch(expected: layout.rowCount, got: shape[0])
        }
        if let sources = batch.sourceImages, sources.count != shape[0] {
            throw LossError.sourceImageCountMismatch(expected: shape[0], got: sources.count)
        }
        batchSize = layout.batchSize
        negativesPerAnchor = layout.negativesPerAnchor
        rowCount = shape[0]
        dimension = shape.dropFirst().reduce(1, *)
        let d = dimension
        let badRow: Int? = batch.embeddings.withUnsafeBufferPointer { b in
            Kernels.firstNonFinite(b).map { $0 / d }
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
