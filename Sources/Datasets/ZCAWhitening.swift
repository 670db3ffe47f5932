import TensorCore

/// Eigen-decomposition of a real symmetric matrix by the cyclic Jacobi method, in Double.
///
/// Meant for the small matrices of patch whitening (D ≤ a few hundred); O(D³) per sweep,
/// typically converging in under 10 sweeps. Implemented here so the library needs no LAPACK.
public enum SymmetricEigen {
    /// Eigenvalues (descending) and eigenvectors of the `n` × `n` symmetric row-major `matrix`.
    /// Column `j` of `vectors` (row-major, `vectors[i * n + j]`) is the eigenvector of `values[j]`.
    /// - Throws: ``DatasetError`` when `matrix.count ≠ n²` or it holds a non-finite value.
    public static func decompose(_ matrix: [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
        guard n > 0, matrix.count == n * n else {
            throw DatasetError.shapeMismatch(what: "symmetric matrix", expected: "\(n)×\(n) = \(n * n) values", got: "\(matrix.count)")
        }
        guard matrix.allSatisfy({ $0.isFinite }) else {
            throw DatasetError.invalidOption(name: "matrix", value: "non-finite entry", reason: "eigen-decomposition needs finite values")
        }
        var a = matrix
        // Symmetrise to remove rounding asymmetry from the caller.
        for i in 0..<n { for j in (i + 1)..<Swift.max(i + 1, n) { let m = 0.5 * (a[i * n + j] + a[j * n + i]); a[i * n + j] = m; a[j * n + i] = m } }
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        a.withUnsafeMutableBufferPointer { A in
            v.withUnsafeMutableBufferPointer { V in
                var total = 0.0
                for i in 0..<(n * n) { total += A[i] * A[i] }
                let tiny = 1e-30 * Swift.max(total, 1e-300)
                for _ in 0..<100 {
                    var off = 0.0
                    for i in 0..<n { for j in (i + 1)..<Swift.max(i + 1, n) { off += A[i * n + j] * A[i * n + j] } }
                    if off <= 1e-24 * total || off < tiny { break }
                    for p in 0..<(n - 1) {
                        for q in (p + 1)..<n {
                            let apq = A[p * n + q]
                            if abs(apq) < 1e-300 { continue }
                            let app = A[p * n + p], aqq = A[q * n + q]
                            // Rotation angle that zeroes A[p][q] (Golub & Van Loan, Alg. 8.4.1).
                            let theta = (aqq - app) / (2 * apq)
                            let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                            let c = 1 / (t * t + 1).squareRoot(), s = t * c
                            for k in 0..<n {  // A ← A·J (columns p, q)
                                let akp = A[k * n + p], akq = A[k * n + q]
                                A[k * n + p] = c * akp - s * akq
                                A[k * n + q] = s * akp + c * akq
                            }
                            for k in 0..<n {  // A ← Jᵀ·A (rows p, q)
                                let apk = A[p * n + k], aqk = A[q * n + k]
                                A[p * n + k] = c * apk - s * aqk
                                A[q * n + k] = s * apk + c * aqk
                            }
                            for k in 0..<n {  // V ← V·J
                                let vkp = V[k * n + p], vkq = V[k * n + q]
                                V[k * n + p] = c * vkp - s * vkq
                                V[k * n + q] = s * vkp + c * vkq
                            }
                        }
                    }
                }
            }
        }
        let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
        let values = order.map { a[$0 * n + $0] }
        var vectors = [Double](repeating: 0, count: n * n)
        for (newCol, oldCol) in order.enumerated() { for i in 0..<n { vectors[i * n + newCol] = v[i * n + oldCol] } }
        return (values, vectors)
    }
}

/// ZCA whitening of flattened patches: `x ↦ (x − mean) · W` with
/// `W = U · diag(1 / sqrt(λ + ε)) · Uᵀ` from the eigen-decomposition of the patch covariance.
///
/// Whitened patches have (nearly) identity covariance while staying as close as possible to
/// the originals (Bell & Sejnowski 1997; Coates et al. 2011). ``mean`` and ``matrix`` are
/// plain tensors so a trainer can save them in a checkpoint and restore with ``init(mean:matrix:)``.
public struct ZCAWhitening: Sendable {
    /// [D], the mean patch.
    public var mean: Tensor
    /// [D, D], the symmetric whitening matrix.
    public var matrix: Tensor

    /// Patch length D.
    public var dimension: Int { mean.count }

    /// Restores a fitted whitening.
    /// - Throws: ``DatasetError`` unless `mean` is [D] and `matrix` is [D, D].
    public init(mean: Tensor, matrix: Tensor) throws {
        let d = mean.count
        guard mean.shape == [d], d > 0, matrix.shape == [d, d] else {
            throw DatasetError.shapeMismatch(what: "ZCA mean/matrix", expected: "[D] and [D, D]", got: "\(mean.shape) and \(matrix.shape)")
        }
        self.mean = mean
        self.matrix = matrix
    }

    /// Fits the whitening on `patches` [N, D] (N ≥ 2).
    /// - Parameter epsilon: added to every eigenvalue; limits the gain on near-zero-variance
    ///   directions (0.1 suits contrast-normalised patches, Coates et al. 2011).
    /// - Throws: ``DatasetError`` for a wrong rank, fewer than 2 rows, ε ≤ 0 or non-finite data.
    public static func fit(patches: Tensor, epsilon: Float = 0.1) throws -> ZCAWhitening {
        guard patches.shape.count == 2, patches.shape[0] >= 2, patches.shape[1] >= 1 else {
            throw DatasetError.shapeMismatch(what: "ZCA patches", expected: "[N ≥ 2, D ≥ 1]", got: "\(patches.shape)")
        }
        guard epsilon > 0, epsilon.isFinite else {
            throw DatasetError.invalidOption(name: "epsilon", value: "\(epsilon)", reason: "must be positive and finite")
        }
        guard patches.isFinite else {
            throw DatasetError.invalidOption(name: "patches", value: "non-finite values", reason: "ZCA needs finite data")
        }
        let n = patches.shape[0], d = patches.shape[1]
        // Mean in Double, centred copy in Float, covariance by one SGEMM (Xcᵀ·Xc / N).
        var meanD = [Double](repeating: 0, count: d)
        patches.withUnsafeBufferPointer { x in
            for r in 0..<n { for j in 0..<d { meanD[j] += Double(x[r * d + j]) } }
        }
        for j in 0..<d { meanD[j] /= Double(n) }
        let meanF = meanD.map { Float($0) }
        var centred = patches
        centred.withUnsafeMutableBufferPointer { x in
            for r in 0..<n { for j in 0..<d { x[r * d + j] -= meanF[j] } }
        }
        var cov = Tensor.zeros([d, d])
        centred.withUnsafeBufferPointer { x in
            cov.withUnsafeMutableBufferPointer { c in
                BLAS.gemm(transposeA: true, transposeB: false, m: d, n: d, k: n, alpha: 1 / Float(n),
                          a: x.baseAddress!, lda: d, b: x.baseAddress!, ldb: d, beta: 0, c: c.baseAddress!, ldc: d)
            }
        }
        let (values, vectors) = try SymmetricEigen.decompose(cov.scalars.map(Double.init), n: d)
        var w = [Double](repeating: 0, count: d * d)
        let scale = values.map { 1 / (Swift.max($0, 0) + Double(epsilon)).squareRoot() }
        for i in 0..<d {
            for j in i..<d {
                var s = 0.0
                for k in 0..<d { s += vectors[i * d + k] * scale[k] * vectors[j * d + k] }
                w[i * d + j] = s
                w[j * d + i] = s
            }
        }
        return try ZCAWhitening(
            mean: Tensor(shape: [d], values: meanF), matrix: Tensor(shape: [d, d], values: w.map { Float($0) }))
    }

    /// Whitens `patches` in place. Accepts [N, D] or any [N, …] whose trailing size is D.
    /// - Throws: ``DatasetError/shapeMismatch(what:expected:got:)`` when the patch length is not D.
    public func apply(to patches: inout Tensor) throws {
        let d = dimension
        guard let n = patches.shape.first, n > 0, patches.count == n * d else {
            throw DatasetError.shapeMismatch(what: "ZCA input", expected: "[N, \(d)] (or [N, …] with \(d) values per row)", got: "\(patches.shape)")
        }
        var centred = patches
        mean.withUnsafeBufferPointer { m in
            centred.withUnsafeMutableBufferPointer { x in
                for r in 0..<n { for j in 0..<d { x[r * d + j] -= m[j] } }
            }
        }
        centred.withUnsafeBufferPointer { x in
            matrix.withUnsafeBufferPointer { w in
                patches.withUnsafeMutableBufferPointer { out in
                    BLAS.gemm(transposeA: false, transposeB: false, m: n, n: d, k: d, alpha: 1,
                              a: x.baseAddress!, lda: d, b: w.baseAddress!, ldb: d, beta: 0, c: out.baseAddress!, ldc: d)
                }
            }
        }
    }
}
