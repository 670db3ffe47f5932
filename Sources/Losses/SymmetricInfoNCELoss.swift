import TensorCore

/// NT-Xent in both directions (SimCLR's loss): the mean of ``InfoNCELoss`` with the anchors
/// as anchors and with the positives as anchors, so every one of the `2B` view rows is an
/// anchor once and scores its other view against all remaining rows.
///
/// With a ``TripletLayout`` of `negativesPerAnchor: 0` (two views of `B` images) the other
/// images' views are the negatives; stored negatives, when there are any, stay candidates of
/// both directions. Source images are swapped with their rows, so ``InfoNCELoss``'s
/// same-image exclusion holds in both directions. Diagnostics are the two directions' means
/// (collapsed when either direction is).
public struct SymmetricInfoNCELoss: ContrastiveLoss, Sendable {
    public let temperature: Float

    public init(temperature: Float = 0.1) { self.temperature = temperature }

    private var directed: InfoNCELoss { InfoNCELoss(temperature: temperature) }

    /// - Throws: ``LossError/invalidHyperparameter(name:value:reason:)`` unless the
    ///   temperature is finite and > 0.
    public func validate() throws { try directed.validate() }

    public func evaluate(_ batch: TripletEmbeddings) throws -> LossResult {
        let forward = try directed.evaluate(batch)
        let b = batch.layout.batchSize
        var swapped = batch
        swapped.embeddings = Self.swappingViews(batch.embeddings, batchSize: b)
        swapped.sourceImages = batch.sourceImages.map { s in Array(s[b..<(2 * b)] + s[..<b] + s[(2 * b)...]) }
        let backward = try directed.evaluate(swapped)
        var gradient = Self.swappingViews(backward.gradient, batchSize: b)
        gradient.withUnsafeMutableBufferPointer { g in
            forward.gradient.withUnsafeBufferPointer { f in
                for i in 0..<g.count { g[i] = 0.5 * (g[i] + f[i]) }
            }
        }
        let f = forward.diagnostics, r = backward.diagnostics
        return LossResult(
            value: 0.5 * (forward.value + backward.value), gradient: gradient,
            diagnostics: LossDiagnostics(
                meanPositiveDistance: 0.5 * (f.meanPositiveDistance + r.meanPositiveDistance),
                meanNegativeDistance: 0.5 * (f.meanNegativeDistance + r.meanNegativeDistance),
                activeFraction: 0.5 * (f.activeFraction + r.activeFraction), isCollapsed: f.isCollapsed || r.isCollapsed
            ))
    }

    /// `t` with its first `b` rows (anchors) and next `b` rows (positives) exchanged; later
    /// rows (stored negatives) stay in place. `t` has at least `2b` rows (checked by the loss).
    static func swappingViews(_ t: Tensor, batchSize b: Int) -> Tensor {
        let rows = t.shape[0], per = t.count / max(1, rows), half = b * per
        var out = t
        guard rows >= 2 * b, half > 0 else { return out }
        t.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                (d.baseAddress! + half).update(from: s.baseAddress!, count: half)
                d.baseAddress!.update(from: s.baseAddress! + half, count: half)
            }
        }
        return out
    }
}
