import TensorCore

/// A distance between two embedding rows, with its gradient.
///
/// Losses call these on pointers into the contiguous embedding buffer: no allocation per
/// row. Conform to train with your own distance; ``TripletMarginLoss`` uses only this.
public protocol Distance: Sendable {
    /// A short name for logs ("cosine", "euclidean", …). Defaults to the type name.
    var name: String { get }

    /// d(a, b) for two rows of `dimension` floats.
    func distance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int) -> Float

    /// Adds `upstream · ∂d(a, b)/∂a` to `gradA` and `upstream · ∂d(a, b)/∂b` to `gradB`.
    ///
    /// `gradA` and `gradB` never alias `a` or `b`.
    func accumulateGradient(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int, upstream: Float,
        gradA: UnsafeMutablePointer<Float>, gradB: UnsafeMutablePointer<Float>)

    /// Writes d(aᵢ, bⱼ) for every row pair into `out` (row-major `[aCount, bCount]`).
    ///
    /// Used by negative miners. The default calls ``distance(_:_:dimension:)`` per pair; the
    /// library's distances override it with one SGEMM, so values may differ from the row-wise
    /// ones in the last bits.
    func distances(
        from a: UnsafePointer<Float>, count aCount: Int, to b: UnsafePointer<Float>, count bCount: Int,
        dimension: Int, into out: UnsafeMutablePointer<Float>)
}

extension Distance {
    /// The type's name, unless the conformer says better.
    public var name: String { String(describing: Self.self) }

    public func distances(
        from a: UnsafePointer<Float>, count aCount: Int, to b: UnsafePointer<Float>, count bCount: Int,
        dimension: Int, into out: UnsafeMutablePointer<Float>
    ) {
        for i in 0..<aCount {
            for j in 0..<bCount {
                out[i * bCount + j] = distance(a + i * dimension, b + j * dimension, dimension: dimension)
            }
        }
    }
}

/// Squared norms of `count` rows, and the Gram block a·bᵀ through one SGEMM.
@inline(__always)
func squaredNorms(_ x: UnsafePointer<Float>, count: Int, dimension: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0..<count {
        let row = x + i * dimension
        out[i] = Kernels.dot(row, row, dimension)
    }
}

@inline(__always)
func gram(
    _ a: UnsafePointer<Float>, count aCount: Int, _ b: UnsafePointer<Float>, count bCount: Int,
    dimension: Int, into out: UnsafeMutablePointer<Float>
) {
    BLAS.gemm(
        transposeA: false, transposeB: true, m: aCount, n: bCount, k: dimension,
        alpha: 1, a: a, lda: dimension, b: b, ldb: dimension, beta: 0, c: out, ldc: bCount)
}

/// The shared first half of the matrix distances: `out` ← a·bᵀ (one SGEMM), and `body`
/// receives the squared norms of the `aCount` rows of `a` followed by those of `b`.
@inline(__always)
func withGramAndSquaredNorms(
    _ a: UnsafePointer<Float>, count aCount: Int, _ b: UnsafePointer<Float>, count bCount: Int,
    dimension: Int, into out: UnsafeMutablePointer<Float>, _ body: (UnsafeMutablePointer<Float>) -> Void
) {
    let norms = UnsafeMutablePointer<Float>.allocate(capacity: aCount + bCount)
    defer { norms.deallocate() }
    squaredNorms(a, count: aCount, dimension: dimension, into: norms)
    squaredNorms(b, count: bCount, dimension: dimension, into: norms + aCount)
    gram(a, count: aCount, b, count: bCount, dimension: dimension, into: out)
    body(norms)
}

/// Cosine distance 1 − a·b / (‖a‖ ‖b‖), in [0, 2].
///
/// Each norm is clamped below at ``epsilon`` (1e-8, as PyTorch's `cosine_similarity`), so a
/// zero vector has distance 1 to everything and a finite gradient. Where a norm is clamped
/// the gradient treats it as the constant ``epsilon``.
public struct CosineDistance: Distance {
    /// The smallest norm used in the denominator.
    public static let epsilon: Float = 1e-8

    public init() {}

    public var name: String { "cosine" }

    @inline(__always)
    func moments(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> (dot: Float, aa: Float, bb: Float) {
        let m = Kernels.moments(a, b, n)
        return (m.0, m.1, m.2)
    }

    public func distance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int) -> Float {
        let m = moments(a, b, dimension)
        let na = Swift.max(m.aa.squareRoot(), Self.epsilon)
        let nb = Swift.max(m.bb.squareRoot(), Self.epsilon)
        return 1 - m.dot / (na * nb)
    }

    public func accumulateGradient(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int, upstream: Float,
        gradA: UnsafeMutablePointer<Float>, gradB: UnsafeMutablePointer<Float>
    ) {
        let m = moments(a, b, dimension)
        let ra = m.aa.squareRoot(), rb = m.bb.squareRoot()
        let na = Swift.max(ra, Self.epsilon), nb = Swift.max(rb, Self.epsilon)
        let inv = 1 / (na * nb)
        let c = m.dot * inv
        // d = 1 − c;  ∂c/∂a = b/(‖a‖‖b‖) − c·a/‖a‖² (second term absent where the norm is clamped).
        let sa = ra > Self.epsilon ? upstream * c / (na * na) : 0
        let sb = rb > Self.epsilon ? upstream * c / (nb * nb) : 0
        let u = upstream * inv
        Kernels.accumulate(a, b, dimension, sa, -u, -u, sb, gradA, gradB)
    }

    public func distances(
        from a: UnsafePointer<Float>, count aCount: Int, to b: UnsafePointer<Float>, count bCount: Int,
        dimension: Int, into out: UnsafeMutablePointer<Float>
    ) {
        guard aCount > 0, bCount > 0 else { return }
        withGramAndSquaredNorms(a, count: aCount, b, count: bCount, dimension: dimension, into: out) { norms in
            for i in 0..<(aCount + bCount) { norms[i] = 1 / Swift.max(norms[i].squareRoot(), Self.epsilon) }
            for i in 0..<aCount {
                let ia = norms[i]
                for j in 0..<bCount { out[i * bCount + j] = 1 - out[i * bCount + j] * ia * norms[aCount + j] }
            }
        }
    }
}

/// Euclidean distance ‖a − b‖.
///
/// The gradient (a − b)/‖a − b‖ is undefined at a = b; there the denominator is clamped at
/// ``epsilon`` so the gradient is (a − b)/ε, which is zero for identical rows (a valid
/// subgradient) and bounded by 1 in norm everywhere.
public struct EuclideanDistance: Distance {
    public static let epsilon: Float = 1e-12

    public init() {}

    public var name: String { "euclidean" }

    @inline(__always)
    func squared(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        Kernels.squaredDistance(a, b, n)
    }

    public func distance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int) -> Float {
        squared(a, b, dimension).squareRoot()
    }

    public func accumulateGradient(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int, upstream: Float,
        gradA: UnsafeMutablePointer<Float>, gradB: UnsafeMutablePointer<Float>
    ) {
        let d = squared(a, b, dimension).squareRoot()
        let s = upstream / Swift.max(d, Self.epsilon)
        Kernels.accumulate(a, b, dimension, s, -s, -s, s, gradA, gradB)
    }

    public func distances(
        from a: UnsafePointer<Float>, count aCount: Int, to b: UnsafePointer<Float>, count bCount: Int,
        dimension: Int, into out: UnsafeMutablePointer<Float>
    ) {
        SquaredEuclideanDistance().distances(
            from: a, count: aCount, to: b, count: bCount, dimension: dimension, into: out)
        for i in 0..<(aCount * bCount) { out[i] = out[i].squareRoot() }
    }
}

/// Squared Euclidean distance ‖a − b‖², smooth everywhere (gradient 2(a − b)).
public struct SquaredEuclideanDistance: Distance {
    public init() {}

    public var name: String { "squared-euclidean" }

    public func distance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int) -> Float {
        Kernels.squaredDistance(a, b, dimension)
    }

    public func accumulateGradient(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int, upstream: Float,
        gradA: UnsafeMutablePointer<Float>, gradB: UnsafeMutablePointer<Float>
    ) {
        let s = 2 * upstream
        Kernels.accumulate(a, b, dimension, s, -s, -s, s, gradA, gradB)
    }

    /// ‖a‖² + ‖b‖² − 2 a·b through one SGEMM, clamped at 0 against cancellation.
    public func distances(
        from a: UnsafePointer<Float>, count aCount: Int, to b: UnsafePointer<Float>, count bCount: Int,
        dimension: Int, into out: UnsafeMutablePointer<Float>
    ) {
        guard aCount > 0, bCount > 0 else { return }
        withGramAndSquaredNorms(a, count: aCount, b, count: bCount, dimension: dimension, into: out) { norms in
            for i in 0..<aCount {
                let na = norms[i]
                for j in 0..<bCount {
                    out[i * bCount + j] = Swift.max(0, na + norms[aCount + j] - 2 * out[i * bCount + j])
                }
            }
        }
    }
}
