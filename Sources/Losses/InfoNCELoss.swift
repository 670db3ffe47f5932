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

        // Allowed mask: which columns are candidates for each anchor (positive included).
        var allowed = [Bool](repeating: true, count: b * r)
        for i in 0..<b {
            allowed[i * r + i] = false
            var negatives = 0
            if let sources {
                let s = sources[i]
                for c in 0..<r where c != b + i && sources[c] == s { allowed[i * r + c] = false }
            }
            for c in 0..<r where c != b + i && allowed[i * r + c] { negatives += 1 }
            if negatives == 0 { throw LossError.noNegativeCandidates(anchor: i) }
        }

        var unit = [Float](repeating: 0, count: r * d)  // normalised rows
        var inverseNorm = [Float](repeating: 0, count: r)
        var clamped = [Bool](repeating: false, count: r)
        var scores = [Float](repeating: 0, count: b * r)  // similarities, then ∂L/∂similarity
        var gradUnit = [Float](repeating: 0, count: r * d)
        var gradient = Tensor.zeros([r, d])
        let invT = 1 / temperature
        var sumLoss = 0.0, sumPos = 0.0, sumNeg = 0.0
        var negCount = 0, active = 0
        var minS = Float.infinity, maxS = -Float.infinity

        batch.embeddings.withUnsafeBufferPointer { eb in
            unit.withUnsafeMutableBufferPointer { ub in
                let e = eb.baseAddress!, u = ub.baseAddress!
                for row in 0..<r {
                    var ss: Float = 0
                    for k in 0..<d { ss += e[row * d + k] * e[row * d + k] }
                    let n = ss.squareRoot()
                    clamped[row] = !(n > CosineDistance.epsilon)
                    let inv = 1 / Swift.max(n, CosineDistance.epsilon)
                    inverseNorm[row] = inv
                    for k in 0..<d { u[row * d + k] = e[row * d + k] * inv }
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
                        var m = -Float.infinity
                        var bestNegative = -Float.infinity
                        for c in 0..<r where allowed[i * r + c] {
                            let sim = row[c]
                            m = Swift.max(m, sim)
                            minS = Swift.min(minS, sim)
                            maxS = Swift.max(maxS, sim)
                            if c != p {
                                bestNegative = Swift.max(bestNegative, sim)
                                sumNeg += Double(1 - sim)
                                negCount += 1
                            }
                        }
                        let positive = row[p]
                        sumPos += Double(1 - positive)
                        if bestNegative >= positive { active += 1 }
                        // Stable log-sum-exp over logits sim/τ, shifted by the max logit.
                        let shift = m * invT
                        var z: Float = 0
                        for c in 0..<r where allowed[i * r + c] { z += exp(row[c] * invT - shift) }
                        let lse = shift + log(z)
                        sumLoss += Double(lse - positive * invT)
                        // ∂L/∂s = (softmax − onehot) / (B τ), zero off the candidate set.
                        for c in 0..<r {
                            if allowed[i * r + c] {
                                let softmax = exp(row[c] * invT - lse)
                                row[c] = (softmax - (c == p ? 1 : 0)) * scale
                            } else {
                                row[c] = 0
                            }
                        }
                    }
                    gradUnit.withUnsafeMutableBufferPointer { gub in
                        let gu = gub.baseAddress!
                        // ∂L/∂Û_anchors += G · Û ;  ∂L/∂Û += Gᵀ · Û_anchors.
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
                                var dot: Float = 0
                                if !clamped[row] { for k in 0..<d { dot += u[row * d + k] * gu[row * d + k] } }
                                for k in 0..<d { g[row * d + k] = (gu[row * d + k] - u[row * d + k] * dot) * inv }
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
