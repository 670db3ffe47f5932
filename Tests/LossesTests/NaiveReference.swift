import LayerwiseTestSupport
import Losses
import TensorCore
import XCTest

/// Plain Double re-implementations, one sample at a time, to test the buffer code against.
enum Naive {
    enum Kind: CaseIterable { case cosine, euclidean, squaredEuclidean }

    static func distance(for kind: Kind) -> any Distance {
        switch kind {
        case .cosine: return CosineDistance()
        case .euclidean: return EuclideanDistance()
        case .squaredEuclidean: return SquaredEuclideanDistance()
        }
    }

    static func rows(_ t: Tensor) -> [[Double]] {
        let d = t.shape[1]
        let s = t.scalars.map(Double.init)
        return (0..<t.shape[0]).map { Array(s[($0 * d)..<(($0 + 1) * d)]) }
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    static func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }

    static func distance(_ kind: Kind, _ a: [Double], _ b: [Double]) -> Double {
        switch kind {
        case .cosine: return 1 - dot(a, b) / (norm(a) * norm(b))
        case .euclidean: return zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        case .squaredEuclidean: return zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        }
    }

    /// (∂d/∂a, ∂d/∂b) from the textbook formulas.
    static func distanceGradient(_ kind: Kind, _ a: [Double], _ b: [Double]) -> ([Double], [Double]) {
        switch kind {
        case .cosine:
            let na = norm(a), nb = norm(b), c = dot(a, b) / (na * nb)
            let ga = a.indices.map { -(b[$0] / (na * nb) - c * a[$0] / (na * na)) }
            let gb = b.indices.map { -(a[$0] / (na * nb) - c * b[$0] / (nb * nb)) }
            return (ga, gb)
        case .euclidean:
            let d = distance(.euclidean, a, b)
            let ga = a.indices.map { (a[$0] - b[$0]) / d }
            return (ga, ga.map { -$0 })
        case .squaredEuclidean:
            let ga = a.indices.map { 2 * (a[$0] - b[$0]) }
            return (ga, ga.map { -$0 })
        }
    }

    /// Triplet loss over explicit (anchor, positive, negative) row triples.
    static func triplet(
        _ kind: Kind, rows x: [[Double]], triplets: [(Int, Int, Int)], margin: Double, overActive: Bool
    ) -> (loss: Double, gradient: [[Double]], hinges: [Double]) {
        var grad = x.map { $0.map { _ in 0.0 } }
        let hinges = triplets.map { distance(kind, x[$0.0], x[$0.1]) - distance(kind, x[$0.0], x[$0.2]) + margin }
        let active = hinges.filter { $0 > 0 }.count
        let denominator = overActive ? Double(max(active, 1)) : Double(triplets.count)
        var loss = 0.0
        for (t, (a, p, n)) in triplets.enumerated() where hinges[t] > 0 {
            loss += hinges[t] / denominator
            let (gap, gp) = distanceGradient(kind, x[a], x[p])
            let (gan, gn) = distanceGradient(kind, x[a], x[n])
            for k in x[a].indices {
                grad[a][k] += (gap[k] - gan[k]) / denominator
                grad[p][k] += gp[k] / denominator
                grad[n][k] -= gn[k] / denominator
            }
        }
        return (loss, grad, hinges)
    }

    static func storedTriplets(_ layout: TripletLayout) -> [(Int, Int, Int)] {
        var out: [(Int, Int, Int)] = []
        for i in 0..<layout.batchSize {
            for j in 0..<layout.negativesPerAnchor {
                out.append((layout.anchorRow(i), layout.positiveRow(i), layout.negativeRow(i, j)))
            }
        }
        return out
    }

    /// InfoNCE with the documented candidate set, loss and gradient by per-pair loops.
    static func infoNCE(
        rows x: [[Double]], batchSize b: Int, sources: [Int]?, temperature t: Double
    ) -> (loss: Double, gradient: [[Double]]) {
        let r = x.count
        var grad = x.map { $0.map { _ in 0.0 } }
        var loss = 0.0
        func cosGrad(_ u: [Double], _ v: [Double]) -> [Double] {
            let nu = norm(u), nv = norm(v), c = dot(u, v) / (nu * nv)
            return u.indices.map { v[$0] / (nu * nv) - c * u[$0] / (nu * nu) }
        }
        for i in 0..<b {
            let candidates = (0..<r).filter { c in
                c != i && (c == b + i || sources == nil || sources![c] != sources![i])
            }
            let logits = candidates.map { dot(x[i], x[$0]) / (norm(x[i]) * norm(x[$0])) / t }
            let m = logits.max()!
            let z = logits.reduce(0) { $0 + exp($1 - m) }
            let lse = m + log(z)
            let posIndex = candidates.firstIndex(of: b + i)!
            loss += (lse - logits[posIndex]) / Double(b)
            for (k, c) in candidates.enumerated() {
                let w = (exp(logits[k] - lse) - (k == posIndex ? 1 : 0)) / (Double(b) * t)
                let gi = cosGrad(x[i], x[c]), gc = cosGrad(x[c], x[i])
                for q in x[i].indices {
                    grad[i][q] += w * gi[q]
                    grad[c][q] += w * gc[q]
                }
            }
        }
        return (loss, grad)
    }

    static func crossEntropy(logits z: [[Double]], labels: [Int]) -> (loss: Double, gradient: [[Double]]) {
        let n = Double(z.count)
        var loss = 0.0
        var grad: [[Double]] = []
        for (row, y) in zip(z, labels) {
            let m = row.max()!
            let e = row.map { exp($0 - m) }
            let s = e.reduce(0, +)
            loss += (m + log(s) - row[y]) / n
            grad.append(e.indices.map { (e[$0] / s - ($0 == y ? 1 : 0)) / n })
        }
        return (loss, grad)
    }
}

/// Asserts a loss gradient against central differences, both element-wise (absolute for
/// small entries) and relative in norm, so a gradient wrong by a constant factor fails
/// even when every entry is small.
func assertGradientMatchesFiniteDifferences(
    _ loss: @autoclosure () -> any ContrastiveLoss, _ batch: TripletEmbeddings, tolerance: Double = 2e-3,
    _ label: String, file: StaticString = #filePath, line: UInt = #line
) throws {
    let l = loss()
    let analytic = try l.evaluate(batch).gradient
    let numeric = try GradientCheck.numericGradient(at: batch.embeddings, epsilon: 1e-3) { x in
        var probe = batch
        probe.embeddings = x
        return Double(try loss().evaluate(probe).value)
    }
    let report = GradientCheck.compare(analytic: analytic, numeric: numeric, label: label)
    XCTAssertTrue(report.passes(tolerance: tolerance), "\(label): \(report)", file: file, line: line)
    XCTAssertLessThan(relativeError(analytic, numeric), 1e-2, "\(label): relative norm error", file: file, line: line)
    XCTAssertGreaterThan(norm(numeric), 1e-3, "\(label): gradient is trivially zero", file: file, line: line)
}

func norm(_ t: Tensor) -> Double { t.scalars.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }

func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
    var diff = 0.0
    for i in 0..<a.count { diff += pow(Double(a[flat: i]) - Double(b[flat: i]), 2) }
    return diff.squareRoot() / max(norm(b), 1e-12)
}

func assertClose(
    _ t: Tensor, _ rows: [[Double]], accuracy: Double, _ label: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    let flat = rows.flatMap { $0 }
    XCTAssertEqual(t.count, flat.count, label, file: file, line: line)
    var worst = 0.0
    for i in 0..<min(t.count, flat.count) { worst = max(worst, abs(Double(t[flat: i]) - flat[i])) }
    XCTAssertLessThan(worst, accuracy, "\(label): max abs gradient difference", file: file, line: line)
}

func randomBatch(
    batchSize: Int, negatives: Int, dimension: Int, seed: UInt64, sources: [Int]? = nil
) -> TripletEmbeddings {
    var rng = SeededGenerator(seed: seed)
    let layout = TripletLayout(batchSize: batchSize, negativesPerAnchor: negatives)
    let x = Tensor.normal([layout.rowCount, dimension], using: &rng)
    return TripletEmbeddings(x, layout: layout, sourceImages: sources)
}
