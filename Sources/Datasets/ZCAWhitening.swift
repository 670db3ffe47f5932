import TensorCore

/// Eigen-decomposition of a real symmetric matrix, in Double. Implemented here so the
/// library needs no LAPACK.
///
/// Up to ``jacobiLimit`` rows it uses the cyclic Jacobi method (very accurate; O(n³) per
/// sweep, under 10 sweeps — and the method every stage-1 whitening of 6x6x3 windows was
/// measured with). Larger matrices, such as the 576-d windows of a 64-channel stage-2
/// input, use Householder tridiagonalisation followed by the implicit QL method
/// (Wilkinson & Reinsch, the EISPACK `tred2`/`tql2` pair): about 10x fewer operations.
public enum SymmetricEigen {
    /// The largest matrix decomposed by Jacobi rotations.
    public static let jacobiLimit = 128

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
        if n > jacobiLimit { return tridiagonalQL(a, n: n) }
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

    /// Householder reduction to tridiagonal form, then implicit QL with Wilkinson shifts
    /// (`tred2` and `tql2` of EISPACK, as in JAMA). `a` is symmetric, row-major.
    static func tridiagonalQL(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
        var v = a  // v[i * n + j] = V[i][j]
        var d = [Double](repeating: 0, count: n), e = [Double](repeating: 0, count: n)
        // tred2: V becomes the accumulated orthogonal transform, d the diagonal, e the off-diagonal.
        for j in 0..<n { d[j] = v[(n - 1) * n + j] }
        for i in stride(from: n - 1, to: 0, by: -1) {
            var scale = 0.0, h = 0.0
            for k in 0..<i { scale += abs(d[k]) }
            if scale == 0 {
                e[i] = d[i - 1]
                for j in 0..<i {
                    d[j] = v[(i - 1) * n + j]
                    v[i * n + j] = 0
                    v[j * n + i] = 0
                }
            } else {
                for k in 0..<i { d[k] /= scale; h += d[k] * d[k] }
                var f = d[i - 1]
                var g = h.squareRoot()
                if f > 0 { g = -g }
                e[i] = scale * g
                h -= f * g
                d[i - 1] = f - g
                for j in 0..<i { e[j] = 0 }
                for j in 0..<i {
                    f = d[j]
                    v[j * n + i] = f
                    g = e[j] + v[j * n + j] * f
                    if j + 1 <= i - 1 {
                        for k in (j + 1)...(i - 1) {
                            g += v[k * n + j] * d[k]
                            e[k] += v[k * n + j] * f
                        }
                    }
                    e[j] = g
                }
                f = 0
                for j in 0..<i { e[j] /= h; f += e[j] * d[j] }
                let hh = f / (h + h)
                for j in 0..<i { e[j] -= hh * d[j] }
                for j in 0..<i {
                    f = d[j]
                    g = e[j]
                    for k in j...(i - 1) { v[k * n + j] -= f * e[k] + g * d[k] }
                    d[j] = v[(i - 1) * n + j]
                    v[i * n + j] = 0
                }
            }
            d[i] = h
        }
        for i in 0..<(n - 1) {
            v[(n - 1) * n + i] = v[i * n + i]
            v[i * n + i] = 1
            let h = d[i + 1]
            if h != 0 {
                for k in 0...i { d[k] = v[k * n + i + 1] / h }
                for j in 0...i {
                    var g = 0.0
                    for k in 0...i { g += v[k * n + i + 1] * v[k * n + j] }
                    for k in 0...i { v[k * n + j] -= g * d[k] }
                }
            }
            for k in 0...i { v[k * n + i + 1] = 0 }
        }
        for j in 0..<n { d[j] = v[(n - 1) * n + j]; v[(n - 1) * n + j] = 0 }
        v[(n - 1) * n + n - 1] = 1
        e[0] = 0

        // tql2 on the transposed transform, so each rotation touches two contiguous rows:
        // w[j * n + k] = V[k][j], row j of w is the j-th eigenvector.
        var w = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { w[j * n + i] = v[i * n + j] } }
        for i in 1..<n { e[i - 1] = e[i] }
        e[n - 1] = 0
        var f = 0.0, tst1 = 0.0
        let eps = Double.ulpOfOne
        w.withUnsafeMutableBufferPointer { w in
            for l in 0..<n {
                tst1 = Swift.max(tst1, abs(d[l]) + abs(e[l]))
                var m = l
                while m < n - 1, abs(e[m]) > eps * tst1 { m += 1 }
                if m > l {
                    var iterations = 0
                    repeat {
                        iterations += 1
                        var g = d[l]
                        var p = (d[l + 1] - g) / (2 * e[l])
                        var r = (p * p + 1).squareRoot()
                        if p < 0 { r = -r }
                        d[l] = e[l] / (p + r)
                        d[l + 1] = e[l] * (p + r)
                        let dl1 = d[l + 1]
                        var h = g - d[l]
                        if l + 2 < n { for i in (l + 2)..<n { d[i] -= h } }
                        f += h
                        p = d[m]
                        var c = 1.0, c2 = c, c3 = c
                        let el1 = e[l + 1]
                        var s = 0.0, s2 = 0.0
                        for i in stride(from: m - 1, through: l, by: -1) {
                            c3 = c2
                            c2 = c
                            s2 = s
                            g = c * e[i]
                            h = c * p
                            r = (p * p + e[i] * e[i]).squareRoot()
                            e[i + 1] = s * r
                            s = e[i] / r
                            c = p / r
                            p = c * d[i] - s * g
                            d[i + 1] = h + s * (c * g + s * d[i])
                            let rowI = w.baseAddress! + i * n, rowI1 = rowI + n
                            for k in 0..<n {
                                let t = rowI1[k]
                                rowI1[k] = s * rowI[k] + c * t
                                rowI[k] = c * rowI[k] - s * t
                            }
                        }
                        p = -s * s2 * c3 * el1 * e[l] / dl1
                        e[l] = s * p
                        d[l] = c * p
                    } while abs(e[l]) > eps * tst1 && iterations < 100
                }
                d[l] += f
                e[l] = 0
            }
        }
        let order = (0..<n).sorted { d[$0] > d[$1] }
        var vectors = [Double](repeating: 0, count: n * n)
        for (newCol, oldCol) in order.enumerated() { for i in 0..<n { vectors[i * n + newCol] = w[oldCol * n + i] } }
        return (order.map { d[$0] }, vectors)
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
        let cov = centredSecondMoment(of: patches, mean: meanF, count: n)
        return try fit(mean: Tensor(shape: [d], values: meanF), covariance: cov, epsilon: epsilon)
    }

    /// `(X − μ)ᵀ(X − μ) / count` [D, D] for the rows `X` of `patches` [N, D] (one SGEMM on a
    /// centred copy): the covariance when `count` is N, one rank's share of it when the rows
    /// are that rank's part of `count` rows.
    public static func centredSecondMoment(of patches: Tensor, mean: [Float], count: Int) -> Tensor {
        let n = patches.shape[0], d = patches.shape[1]
        var centred = patches
        centred.withUnsafeMutableBufferPointer { x in
            for r in 0..<n { for j in 0..<d { x[r * d + j] -= mean[j] } }
        }
        var cov = Tensor.zeros([d, d])
        guard n > 0 else { return cov }
        centred.withUnsafeBufferPointer { x in
            cov.withUnsafeMutableBufferPointer { c in
                BLAS.gemm(transposeA: true, transposeB: false, m: d, n: d, k: n, alpha: 1 / Float(count),
                          a: x.baseAddress!, lda: d, b: x.baseAddress!, ldb: d, beta: 0, c: c.baseAddress!, ldc: d)
            }
        }
        return cov
    }

    /// The whitening of data with mean `mean` [D] and covariance `covariance` [D, D] — for
    /// moments accumulated elsewhere, e.g. summed over the ranks of a data-parallel job.
    /// - Throws: ``DatasetError`` for mismatched shapes, ε ≤ 0 or non-finite moments.
    public static func fit(mean: Tensor, covariance cov: Tensor, epsilon: Float) throws -> ZCAWhitening {
        let d = mean.count
        guard d > 0, mean.shape == [d], cov.shape == [d, d] else {
            throw DatasetError.shapeMismatch(
                what: "ZCA mean/covariance", expected: "[D] and [D, D]", got: "\(mean.shape) and \(cov.shape)")
        }
        guard epsilon > 0, epsilon.isFinite else {
            throw DatasetError.invalidOption(
                name: "epsilon", value: "\(epsilon)", reason: "must be positive and finite")
        }
        guard mean.isFinite, cov.isFinite else {
            throw DatasetError.invalidOption(
                name: "covariance", value: "non-finite values", reason: "ZCA needs finite moments")
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
        return try ZCAWhitening(mean: mean, matrix: Tensor(shape: [d, d], values: w.map { Float($0) }))
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
