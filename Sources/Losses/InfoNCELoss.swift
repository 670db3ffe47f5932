import Foundation
import TensorCore

/// InfoNCE / NT-Xent (Oord et al. 2018; Chen et al., SimCLR 2020) with in-batch negatives.
///
/// Every row is L2-normalised (norms clamped below at ``CosineDistance/epsilon``). Anchor i
/// is scored against candidate rows by cosine similarity / temperature, computed for all
/// anchors at once with one SGEMM (normalised anchors × all normalised rows), and the loss is
/// the mean over anchors of the cross-entropy with positive i as the target:
///
///     Lᵢ = −log( exp(sᵢ,ₚᵢ/τ) / Σ_{c ∈ Cᵢ} exp(sᵢ,c/τ) )
///
/// The candidate set Cᵢ is every row (other anchors, positives, stored negatives) except:
/// - the anchor's own row i, always;
/// - when ``TripletEmbeddings/sourceImages`` is given, every row from the anchor's source
///   image *other than its positive* (those are neither negatives nor the target).
/// Without source images only the anchor's own row is excluded (standard NT-Xent).
/// The log-sum-exp subtracts the row maximum, so small temperatures do not overflow.
///
/// Diagnostics: `meanPositiveDistance` = mean over anchors of 1 − cos(aᵢ, pᵢ);
/// `meanNegativeDistance` = mean of 1 − cos(aᵢ, c) over all candidates c ≠ pᵢ;
/// `activeFraction` = fraction of anchors whose positive is *not* strictly the most similar
/// candidate (a tie counts as not top-1); `isCollapsed` when all candidate similarities in the
/// batch lie within 1e-4 of each other.
public struct InfoNCELoss: ContrastiveLoss, Sendable {
    public let temperature: Float

    public init(temperature: Float = 0.1) { self.temperature = temperature }

    /// - Throws: ``LossError/invalidHyperparameter(name:value:reason:)`` unless the
    ///   temperature is finite and > 0.
    public func validate() throws {
        guard temperature.isFinite, temperature > 0 else {
            throw LossError.invalidHyperparameter(
                name: "temperature", value: temperature, reason: "must be finite and > 0")
        }
    }

    public func evaluate(_ batch: TripletEmbeddings) throws -> LossResult {
        try validate()
        let v = try ValidatedBatch(batch)
        let b = v.batchSize, r = v.rowCount, d = v.dimension
        let sources = batch.sourceImages

        // Candidates per anchor: every row but its own, minus same-source rows other than
        // its positive when sources are known. Checked up front so nothing throws mid-way.
        var excluded = [Int](repeating: 1, count: b)  // the anchor's own row
        if let sources {
            for i in 0..<b {
                let s = sources[i]
                for c in 0..<r where c != i && c != b + i && sources[c] == s { excluded[i] += 1 }
            }
        }
        for i in 0..<b where r - excluded[i] - 1 < 1 { throw LossError.noNegativeCandidates(anchor: i) }

        var unit = [Float](repeating: 0, count: r * d)  // normalised rows
        var inverseNorm = [Float](repeating: 0, count: r)
        var clamped = [Bool](repeating: false, count: r)
        var scores = [Float](repeating: 0, count: b * r)  // similarities, then ∂L/∂similarity
        var gradUnit = [Float](repeating: 0, count: r * d)
        var gradient = Tensor.uninitialized(shape: batch.embeddings.shape)
        let invT = 1 / temperature
        var sumLoss = 0.0, sumPos = 0.0, sumNeg = 0.0
        var negCount = 0, active = 0
        var minS = Float.infinity, maxS = -Float.infinity

        batch.embeddings.withUnsafeBufferPointer { eb in
            unit.withUnsafeMutableBufferPointer { ub in
                let e = eb.baseAddress!, u = ub.baseAddress!
                for row in 0..<r {
                    let x = e + row * d
                    let n = Kernels.dot(x, x, d).squareRoot()
                    clamped[row] = !(n > CosineDistance.epsilon)
                    let inv = 1 / Swift.max(n, CosineDistance.epsilon)
                    inverseNorm[row] = inv
                    for k in 0..<d { u[row * d + k] = x[k] * inv }
                }
                scores.withUnsafeMutableBufferPointer { sb in
                    let s = sb.baseAddress!
                    // s = Û_anchors · Ûᵀ: [B, R], the one similarity GEMM.
                    BLAS.gemm(
                        transposeA: false, transposeB: true, m: b, n: r, k: d,
                        alpha: 1, a: u, lda: d, b: u, ldb: d, beta: 0, c: s, ldc: r)
                    let scale = invT / Float(b)
                    for i in 0..<b {
                        let row = s + i * r, p = b + i
                        // Non-candidates become −∞: they drop out of max, min, sums and
                        // exp (→ 0) without a branch per element.
                        row[i] = -.infinity
                        if let sources {
                            let src = sources[i]
                            for c in 0..<r where c != p && sources[c] == src { row[c] = -.infinity }
                        }
                        let positive = row[p]
                        row[p] = -.infinity
                        let stats = Kernels.maskedStatistics(row, r)  // over negatives only
                        row[p] = positive
                        let negatives = r - excluded[i] - 1
                        sumNeg += Double(negatives) - stats.sum
                        negCount += negatives
                        sumPos += Double(1 - positive)
                        if stats.max >= positive { active += 1 }
                        let m = Swift.max(stats.max, positive)
                        minS = Swift.min(minS, Swift.min(stats.min, positive))
                        maxS = Swift.max(maxS, m)
                        // Stable log-sum-exp over logits sim/τ, shifted by the max logit; the
                        // row keeps exp(logit − max), each exponential taken once.
                        let z = Kernels.exponentiate(row, r, scale: invT, shift: m * invT)
                        sumLoss += Double(m * invT + log(z) - positive * invT)
                        // ∂L/∂s = (softmax − onehot) / (B τ), zero off the candidate set.
                        Kernels.scale(row, r, by: scale / z)
                        row[p] -= scale
                    }
                    gradUnit.withUnsafeMutableBufferPointer { gub in
                        let gu = gub.baseAddress!
                        // ∂L/∂Û_anchors = G · Û ;  ∂L/∂Û += Gᵀ · Û_anchors.
                        BLAS.gemm(
                            transposeA: false, transposeB: false, m: b, n: d, k: r,
                            alpha: 1, a: s, lda: r, b: u, ldb: d, beta: 0, c: gu, ldc: d)
                        BLAS.gemm(
                            transposeA: true, transposeB: false, m: r, n: d, k: b,
                            alpha: 1, a: s, lda: r, b: u, ldb: d, beta: 1, c: gu, ldc: d)
                        // Back through û = x / max(‖x‖, ε): (g − û (û·g)) / ‖x‖, or g / ε when clamped.
                        gradient.withUnsafeMutableBufferPointer { gb in
                            let g = gb.baseAddress!
                            for row in 0..<r {
                                let inv = inverseNorm[row]
                                let ur = u + row * d, gr = gu + row * d, out = g + row * d
                                let dot = clamped[row] ? 0 : Kernels.dot(ur, gr, d)
                                for k in 0..<d { out[k] = (gr[k] - ur[k] * dot) * inv }
                            }
                        }
                    }
                }
            }
        }

        let collapsed = maxS - minS < 1e-4
        return LossResult(
            value: Float(sumLoss / Double(b)), gradient: gradient,
            diagnostics: LossDiagnostics(
                meanPositiveDistance: Float(sumPos / Double(b)),
                meanNegativeDistance: Float(sumNeg / Double(Swift.max(negCount, 1))),
                activeFraction: Float(active) / Float(b), isCollapsed: collapsed))
    }
}
