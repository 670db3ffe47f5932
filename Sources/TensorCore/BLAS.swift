import COpenBLAS

/// Single-precision matrix products and vector kernels through OpenBLAS's CBLAS.
///
/// All matrices are row-major. These are thin, checked wrappers: the pointer forms
/// are for hot loops that already own contiguous buffers; the ``Tensor`` forms
/// validate shapes.
public enum BLAS {
    /// C = alpha · op(A) · op(B) + beta · C, with op(X) = X or Xᵀ.
    ///
    /// - Parameters:
    ///   - m: rows of op(A) and C.  - n: columns of op(B) and C.  - k: inner dimension.
    ///   - lda, ldb, ldc: row strides of A, B and C as stored.
    @inlinable
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {  // OpenBLAS leaves C untouched for k == 0; honour beta ourselves.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The matrix product of two rank-2 tensors, with optional transposes.
    public static func matmul(
        _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false
    ) throws -> Tensor {
        guard a.shape.count == 2, b.shape.count == 2 else {
            throw TensorError.invalidArgument(
                name: "matmul operands", value: "\(a.shape) × \(b.shape)", reason: "both must be rank 2")
        }
        let (m, ka) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard ka == kb else {
            throw TensorError.shapeMismatch(operation: "matmul inner dimension", expected: [ka], got: [kb])
        }
        var c = Tensor.zeros([m, n])
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm(
                        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: ka,
                        alpha: 1, a: pa.baseAddress!, lda: a.shape[1], b: pb.baseAddress!, ldb: b.shape[1],
                        beta: 0, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }

    /// y += alpha · x over `count` elements.
    @inlinable
    public static func axpy(count: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        guard count > 0 else { return }
        cblas_saxpy(Int32(count), alpha, x, 1, y, 1)
    }

    /// The number of threads OpenBLAS uses for one call.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(Swift.max(1, newValue))) }
    }
}
