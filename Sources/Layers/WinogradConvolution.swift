import Dispatch
import TensorCore

/// How a ``Conv2D`` computes its products.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Winograd F(2×2, 3×3) where it pays (3×3, stride 1, at least 16 input and output
    /// channels and a 4×4 output), im2row + GEMM otherwise.
    case automatic
    /// One row per output position and one GEMM (works for every geometry).
    case im2row
    /// Winograd F(2×2, 3×3): 16 GEMMs over transformed 4×4 tiles, 2.25× fewer FLOPs.
    /// Only for 3×3 kernels with stride 1. Results agree with im2row to about 1e-5
    /// relative (different rounding, not different arithmetic).
    case winograd
}

/// Runs `tasks` independent jobs on `workers` threads, task `i` on worker `i % workers`,
/// with OpenBLAS single-threaded meanwhile so that its pool never spins against them.
/// The assignment does not change what each task computes, so results are the same bits
/// for every thread count.
enum WorkerPool {
    static func run(tasks: Int, workers: Int, _ body: @Sendable (_ worker: Int, _ task: Int) -> Void) {
        let workers = Swift.max(1, Swift.min(workers, tasks))
        guard workers > 1 else {
            for t in 0..<tasks { body(0, t) }
            return
        }
        let threads = BLAS.threadCount
        BLAS.threadCount = 1
        defer { BLAS.threadCount = threads }
        DispatchQueue.concurrentPerform(iterations: workers) { k in
            var t = k
            while t < tasks {
                body(k, t)
                t += workers
            }
        }
    }
}

/// Raw buffers shared by workers that write disjoint parts. `@unchecked`: every use
/// partitions the writes (by image, by tile element or by channel).
struct SharedPointer: @unchecked Sendable {
    var p: UnsafeMutablePointer<Float>
    init(_ p: UnsafeMutablePointer<Float>) { self.p = p }
    init(_ p: UnsafePointer<Float>) { self.p = UnsafeMutablePointer(mutating: p) }
}

/// The Winograd F(2×2, 3×3) path of ``Conv2D``: transforms from TensorCore's
/// ``Winograd``, 16 GEMMs per chunk of images, and the scratch they need.
///
/// Forward: the batch is cut into chunks of about ``targetTiles`` tiles (whole images,
/// a size that does not depend on the thread count); each worker transforms its chunk's
/// input, runs the 16 single-threaded GEMMs and transforms the products into NCHW with
/// the bias. Backward: the output gradient's tiles for the whole batch, then per tile
/// element one GEMM for the weight gradient (over all tiles) and one for the input
/// gradient, elements spread over workers, then the input transform's adjoint per image.
final class WinogradConvolution {
    static let targetTiles = 256

    private var u = ScratchBuffer()    // [16][O][C], the transformed weight of the last forward
    private var v = ScratchBuffer()    // training: [16][C][T] of the batch (then dV); inference: per worker
    private var m = ScratchBuffer()    // per worker [16][O][chunk tiles]
    private var dm = ScratchBuffer()   // [16][O][T]
    private var du = ScratchBuffer()   // [16][O][C]
    private var cached: (tiling: Winograd.Tiling, batch: Int)?

    struct Shape {
        var tiling: Winograd.Tiling
        var batch: Int, outputs: Int
        var inputs: Int { tiling.geometry.channels }
        var tiles: Int { batch * tiling.perImage }
        var chunkImages: Int { Swift.max(1, Swift.min(batch, WinogradConvolution.targetTiles / tiling.perImage)) }
        var chunks: Int { (batch + chunkImages - 1) / chunkImages }
        var chunkTiles: Int { chunkImages * tiling.perImage }
    }

    func forward(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        shape s: Shape, training: Bool, into out: UnsafeMutablePointer<Float>
    ) {
        let c = s.inputs, o = s.outputs, e16 = Winograd.elements
        let workers = Swift.min(BLAS.threadCount, s.chunks)
        let g = s.tiling.geometry, imageSize = c * g.height * g.width, outImage = o * g.outputPositions
        let vWorker = e16 * c * s.chunkTiles + Winograd.slack
        let mWorker = e16 * o * s.chunkTiles + Winograd.slack
        u.reserve(e16 * o * c)
        v.reserve(training ? e16 * c * s.tiles + Winograd.slack : workers * vWorker)
        m.reserve(workers * mWorker)
        u.withMutablePointer { Winograd.transformWeights(weight, outputs: o, inputs: c, into: $0) }
        let up = u.withPointer { SharedPointer($0) }, vp = v.withMutablePointer { SharedPointer($0) }
        let mp = m.withMutablePointer { SharedPointer($0) }
        let xp = SharedPointer(x), op = SharedPointer(out), bp = bias.map { SharedPointer($0) }
        WorkerPool.run(tasks: s.chunks, workers: workers) { k, chunk in
            let first = chunk * s.chunkImages, count = Swift.min(s.chunkImages, s.batch - first)
            let tiles = count * s.tiling.perImage
            let vm = training
                ? Winograd.TileMatrix(base: vp.p, ld: s.tiles, elementStride: c * s.tiles)
                : Winograd.TileMatrix(base: vp.p + k * vWorker, ld: s.chunkTiles, elementStride: c * s.chunkTiles)
            let column = training ? first * s.tiling.perImage : 0
            Winograd.transformInput(xp.p + first * imageSize, count: count, tiling: s.tiling, into: vm, column: column)
            let mm = Winograd.TileMatrix(base: mp.p + k * mWorker, ld: s.chunkTiles, elementStride: o * s.chunkTiles)
            for e in 0..<e16 {
                // M[e] (O × tiles) = U[e] (O × C) · V[e] (C × tiles)
                BLAS.gemm(
                    transposeA: false, transposeB: false, m: o, n: tiles, k: c,
                    alpha: 1, a: up.p + e * o * c, lda: c, b: vm.base + e * vm.elementStride + column, ldb: vm.ld,
                    beta: 0, c: mm.base + e * mm.elementStride, ldc: mm.ld)
            }
            Winograd.transformOutput(mm, column: 0, count: count, tiling: s.tiling, outputs: o,
                                     bias: bp.map { UnsafePointer($0.p) }, into: op.p + first * outImage)
        }
        cached = training ? (s.tiling, s.batch) : nil
    }

    /// Accumulates the weight and bias gradients (when given) and, when `dx` is given,
    /// **adds** the input gradient into it.
    func backward(
        _ dy: UnsafePointer<Float>, outputs o: Int, weightGradient dw: UnsafeMutablePointer<Float>?,
        biasGradient db: UnsafeMutablePointer<Float>?, inputGradient dx: UnsafeMutablePointer<Float>?
    ) {
        guard let (tiling, batch) = cached else { preconditionFailure("Winograd backward without a training forward") }
        let s = Shape(tiling: tiling, batch: batch, outputs: o)
        let c = s.inputs, t = s.tiles, e16 = Winograd.elements, threads = BLAS.threadCount
        let g = tiling.geometry, plane = g.outputPositions
        let dyp = SharedPointer(dy)
        if let db {
            let dbp = SharedPointer(db)
            // Per channel, images and positions in order: the same sums for every thread count.
            WorkerPool.run(tasks: threads, workers: threads) { _, part in
                for ch in (part * o / threads)..<((part + 1) * o / threads) {
                    var sum: Float = 0
                    for n in 0..<batch {
                        let row = dyp.p + (n * o + ch) * plane
                        for q in 0..<plane { sum += row[q] }
                    }
                    dbp.p[ch] += sum
                }
            }
        }
        guard dw != nil || dx != nil else { return }
        dm.reserve(e16 * o * t + Winograd.slack)
        let dmp = dm.withMutablePointer { SharedPointer($0) }
        let dmm = Winograd.TileMatrix(base: dmp.p, ld: t, elementStride: o * t)
        WorkerPool.run(tasks: s.chunks, workers: threads) { _, chunk in
            let first = chunk * s.chunkImages, count = Swift.min(s.chunkImages, batch - first)
            Winograd.transformOutputGradient(dyp.p + first * o * plane, count: count, tiling: tiling, outputs: o,
                                             into: dmm, column: first * tiling.perImage)
        }
        let vp = v.withMutablePointer { SharedPointer($0) }, up = u.withPointer { SharedPointer($0) }
        if let dw {
            du.reserve(e16 * o * c)
            let dup = du.withMutablePointer { SharedPointer($0) }
            WorkerPool.run(tasks: e16, workers: threads) { _, e in
                // dU[e] (O × C) = dM[e] (O × T) · V[e]ᵀ (T × C)
                BLAS.gemm(
                    transposeA: false, transposeB: true, m: o, n: c, k: t,
                    alpha: 1, a: dmp.p + e * o * t, lda: t, b: vp.p + e * c * t, ldb: t,
                    beta: 0, c: dup.p + e * o * c, ldc: c)
            }
            Winograd.transformWeightGradientAdd(dup.p, outputs: o, inputs: c, into: dw)
        }
        guard let dx else { return }
        WorkerPool.run(tasks: e16, workers: threads) { _, e in
            // dV[e] (C × T) = U[e]ᵀ (C × O) · dM[e] (O × T), over V (no longer needed)
            BLAS.gemm(
                transposeA: true, transposeB: false, m: c, n: t, k: o,
                alpha: 1, a: up.p + e * o * c, lda: c, b: dmp.p + e * o * t, ldb: t,
                beta: 0, c: vp.p + e * c * t, ldc: t)
        }
        let dvm = Winograd.TileMatrix(base: vp.p, ld: t, elementStride: c * t)
        let dxp = SharedPointer(dx), imageSize = c * g.height * g.width
        WorkerPool.run(tasks: s.chunks, workers: threads) { _, chunk in
            let first = chunk * s.chunkImages, count = Swift.min(s.chunkImages, batch - first)
            Winograd.transformInputGradientAdd(dvm, column: first * tiling.perImage, count: count, tiling: tiling,
                                               into: dxp.p + first * imageSize)
        }
    }
}
