import Dispatch
import TensorCore

/// How a ``Conv2D`` computes its products.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Winograd where it pays (3×3 or 5×5, stride 1, at least 16 input and output channels
    /// and a 4×4 output; see ``Conv2D/usesWinograd(for:)``), im2row + GEMM otherwise.
    case automatic
    /// One row per output position and one GEMM (works for every geometry).
    case im2row
    /// Winograd F(2×2, 3×3) for 3×3 kernels (16 GEMMs over 4×4 tiles, 2.25× fewer FLOPs,
    /// about 1e-5 relative from im2row) or F(2×2, 5×5) for 5×5 kernels (36 GEMMs over 6×6
    /// tiles, 2.8× fewer FLOPs, about 1e-4). Stride 1 only.
    case winograd
    /// Winograd F(4×4, 3×3): 36 GEMMs over transformed 6×6 tiles, 4× fewer FLOPs; about
    /// 1e-4 relative from im2row. Only for 3×3 kernels with stride 1.
    case winograd4x4
}

/// The Winograd transforms, dispatched to TensorCore's ``Winograd`` (F(2×2, 3×3)),
/// ``Winograd4x4`` (F(4×4, 3×3)) and ``Winograd5x5`` (F(2×2, 5×5)).
enum WinogradVariant: Sendable, Equatable {
    case f2x2, f4x4, f2x2k5

    var elements: Int { self == .f2x2 ? Winograd.elements : Winograd4x4.elements }

    func tilesPerImage(_ g: ConvGeometry) -> Int {
        switch self {
        case .f2x2: return Winograd.Tiling(geometry: g).perImage
        case .f4x4: return Winograd4x4.Tiling(geometry: g).perImage
        case .f2x2k5: return Winograd5x5.Tiling(geometry: g).perImage
        }
    }

    func transformWeights(_ w: UnsafePointer<Float>, outputs: Int, inputs: Int, into u: UnsafeMutablePointer<Float>) {
        switch self {
        case .f2x2: Winograd.transformWeights(w, outputs: outputs, inputs: inputs, into: u)
        case .f4x4: Winograd4x4.transformWeights(w, outputs: outputs, inputs: inputs, into: u)
        case .f2x2k5: Winograd5x5.transformWeights(w, outputs: outputs, inputs: inputs, into: u)
        }
    }

    func transformWeightGradientAdd(
        _ du: UnsafePointer<Float>, outputs: Int, inputs: Int, into dw: UnsafeMutablePointer<Float>
    ) {
        switch self {
        case .f2x2: Winograd.transformWeightGradientAdd(du, outputs: outputs, inputs: inputs, into: dw)
        case .f4x4: Winograd4x4.transformWeightGradientAdd(du, outputs: outputs, inputs: inputs, into: dw)
        case .f2x2k5: Winograd5x5.transformWeightGradientAdd(du, outputs: outputs, inputs: inputs, into: dw)
        }
    }

    func transformInput(
        _ x: UnsafePointer<Float>, count: Int, geometry g: ConvGeometry, into v: Winograd.TileMatrix, column: Int
    ) {
        switch self {
        case .f2x2: Winograd.transformInput(x, count: count, tiling: .init(geometry: g), into: v, column: column)
        case .f4x4: Winograd4x4.transformInput(x, count: count, tiling: .init(geometry: g), into: v, column: column)
        case .f2x2k5: Winograd5x5.transformInput(x, count: count, tiling: .init(geometry: g), into: v, column: column)
        }
    }

    func transformOutput(
        _ m: Winograd.TileMatrix, count: Int, geometry g: ConvGeometry, outputs: Int,
        bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>
    ) {
        switch self {
        case .f2x2:
            Winograd.transformOutput(
                m, column: 0, count: count, tiling: .init(geometry: g), outputs: outputs, bias: bias, into: y)
        case .f4x4:
            Winograd4x4.transformOutput(
                m, column: 0, count: count, tiling: .init(geometry: g), outputs: outputs, bias: bias, into: y)
        case .f2x2k5:
            Winograd5x5.transformOutput(
                m, column: 0, count: count, tiling: .init(geometry: g), outputs: outputs, bias: bias, into: y)
        }
    }

    func transformOutputGradient(
        _ dy: UnsafePointer<Float>, count: Int, geometry g: ConvGeometry, outputs: Int, into dm: Winograd.TileMatrix,
        column: Int
    ) {
        switch self {
        case .f2x2:
            Winograd.transformOutputGradient(
                dy, count: count, tiling: .init(geometry: g), outputs: outputs, into: dm, column: column)
        case .f4x4:
            Winograd4x4.transformOutputGradient(
                dy, count: count, tiling: .init(geometry: g), outputs: outputs, into: dm, column: column)
        case .f2x2k5:
            Winograd5x5.transformOutputGradient(
                dy, count: count, tiling: .init(geometry: g), outputs: outputs, into: dm, column: column)
        }
    }

    func transformInputGradientAdd(
        _ dv: Winograd.TileMatrix, column: Int, count: Int, geometry g: ConvGeometry,
        into dx: UnsafeMutablePointer<Float>
    ) {
        switch self {
        case .f2x2:
            Winograd.transformInputGradientAdd(dv, column: column, count: count, tiling: .init(geometry: g), into: dx)
        case .f4x4:
            Winograd4x4.transformInputGradientAdd(
                dv, column: column, count: count, tiling: .init(geometry: g), into: dx)
        case .f2x2k5:
            Winograd5x5.transformInputGradientAdd(
                dv, column: column, count: count, tiling: .init(geometry: g), into: dx)
        }
    }
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

extension WorkerPool {
    /// Elements a worker should get before a loop is split: below it, waking a second worker
    /// costs more than the work (ReLU, pooling, batch norm).
    static let elementsPerSlice = 1 << 16

    /// The fewest items of `elementsPerItem` elements (planes, channels) a slice should hold.
    static func minimumItems(elementsPerItem: Int) -> Int {
        Swift.max(1, elementsPerSlice / Swift.max(1, elementsPerItem))
    }

    /// Calls `body` on consecutive blocks of `block` items of `0..<count` (the last one shorter),
    /// on up to ``BLAS/threadCount`` workers. The blocks do not depend on the thread count, so
    /// code whose result depends on its blocks' sizes (GEMM shapes) gives the same bits on any.
    static func forEachBlock(_ count: Int, of block: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let tasks = (count + block - 1) / block
        run(tasks: tasks, workers: BLAS.threadCount) { _, t in body(t * block..<Swift.min(count, (t + 1) * block)) }
    }

    /// Calls `body` on consecutive disjoint slices of `0..<count`, one slice per BLAS thread
    /// (inline, as one slice, with one thread or when `count` is below two `minimumSlice`s).
    /// For loops whose iterations are independent the result is the same bits either way.
    static func forEachSlice(_ count: Int, minimumSlice: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let workers = Swift.max(1, Swift.min(BLAS.threadCount, count / Swift.max(1, minimumSlice)))
        guard workers > 1 else { return body(0..<count) }
        run(tasks: workers, workers: workers) { _, k in body(k * count / workers..<(k + 1) * count / workers) }
    }
}

/// An `Int32` buffer shared by workers that write disjoint parts (see ``SharedPointer``).
struct SharedIndices: @unchecked Sendable {
    var p: UnsafeMutablePointer<Int32>
    init(_ p: UnsafeMutablePointer<Int32>) { self.p = p }
    init(_ p: UnsafePointer<Int32>) { self.p = UnsafeMutablePointer(mutating: p) }
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
/// the bias. Backward (``Shape/chunkedBackward``): chunk by chunk, the output gradient's
/// tiles, per tile element one GEMM adding to the weight gradient of the chunk's group and
/// one for the input gradient, then the input transform's adjoint; a fixed number of groups
/// of chunks go to workers and their weight gradients are added in group order. Otherwise
/// (few tiles for a large weight): the output gradient's tiles for the whole batch, then per
/// tile element one GEMM for the weight gradient (over all tiles) and one for the input
/// gradient, elements spread over workers, then the input transform's adjoint per image.
final class WinogradConvolution {
    static let targetTiles = 256
    /// Groups of chunks with their own weight-gradient partial sums in a chunked backward
    /// (fixed, so that the sums are the same bits for every thread count).
    static let gradientGroups = 4

    private var u = ScratchBuffer()  // [16][O][C], the transformed weight of the last forward
    private var v = ScratchBuffer()  // training: [16][C][T] of the batch (then dV); inference: per worker
    private var m = ScratchBuffer()  // per worker [16][O][chunk tiles]
    private var dm = ScratchBuffer()  // [16][O][T]
    private var du = ScratchBuffer()  // [16][O][C]
    private var cached: Shape?
    /// The weight (a copy-on-write snapshot) and variant that `u` was transformed from:
    /// frozen or inference-only layers transform their weight once, not every batch.
    private var transformed: (weight: Tensor, variant: WinogradVariant)?

    struct Shape: Sendable {
        var variant: WinogradVariant
        var geometry: ConvGeometry
        var batch: Int, outputs: Int
        var perImage: Int
        init(variant: WinogradVariant, geometry: ConvGeometry, batch: Int, outputs: Int) {
            self.variant = variant
            self.geometry = geometry
            self.batch = batch
            self.outputs = outputs
            perImage = variant.tilesPerImage(geometry)
        }
        var inputs: Int { geometry.channels }
        var tiles: Int { batch * perImage }
        var chunkImages: Int { Swift.max(1, Swift.min(batch, WinogradConvolution.targetTiles / perImage)) }
        var chunks: Int { (batch + chunkImages - 1) / chunkImages }
        var chunkTiles: Int { chunkImages * perImage }
        /// Backward by chunks of images when the batch's tiles outnumber the input channels
        /// eightfold: the output gradient's tiles for the whole batch (150 MB for cnn conv2)
        /// would then dwarf the weight gradient's partial sums.
        var chunkedBackward: Bool { tiles >= 8 * inputs && chunks > 1 }
    }

    /// A tile matrix of `tiles` columns with the 16 elements of one row side by side
    /// (`[rows][16][tiles]`): a transform touches one contiguous block per channel instead
    /// of 16 blocks megabytes apart, and each element is still a strided matrix for GEMM.
    static func matrix(
        _ base: UnsafeMutablePointer<Float>, tiles: Int, _ variant: WinogradVariant
    )
        -> Winograd.TileMatrix
    {
        Winograd.TileMatrix(base: base, ld: variant.elements * tiles, elementStride: tiles)
    }

    func forward(
        _ x: UnsafePointer<Float>, weight weightTensor: Tensor, bias: UnsafePointer<Float>?,
        shape s: Shape, training: Bool, into out: UnsafeMutablePointer<Float>
    ) {
        let c = s.inputs
        let o = s.outputs
        let e16 = s.variant.elements
        let variant = s.variant
        let workers = Swift.min(BLAS.threadCount, s.chunks)
        let g = s.geometry
        let imageSize = c * g.height * g.width
        let outImage = o * g.outputPositions
        let vWorker = e16 * c * s.chunkTiles + Winograd.slack
        let mWorker = e16 * o * s.chunkTiles + Winograd.slack
        if u.capacity < e16 * o * c { transformed = nil }
        u.reserve(e16 * o * c)
        v.reserve(training ? e16 * c * s.tiles + Winograd.slack : workers * vWorker)
        m.reserve(workers * mWorker)
        if let t = transformed, t.variant == variant, t.weight.sharesStorage(with: weightTensor) {
            // unchanged since the last transform
        } else {
            weightTensor.withUnsafeBufferPointer { w in
                u.withMutablePointer { variant.transformWeights(w.baseAddress!, outputs: o, inputs: c, into: $0) }
            }
            transformed = (weightTensor, variant)
        }
        let up = u.withPointer { SharedPointer($0) }
        let vp = v.withMutablePointer { SharedPointer($0) }
        let mp = m.withMutablePointer { SharedPointer($0) }
        let xp = SharedPointer(x)
        let op = SharedPointer(out)
        let bp = bias.map { SharedPointer($0) }
        // A single chunk (few tiles for a large weight, e.g. wide stage 3) spreads its tile
        // elements' GEMMs over the workers: left to OpenBLAS's own threads, they would spin
        // after every call against the workers of the layers around it.
        let threads = BLAS.threadCount
        let spreadElements = s.chunks == 1 && threads > 1
        WorkerPool.run(tasks: s.chunks, workers: workers) { k, chunk in
            let first = chunk * s.chunkImages
            let count = Swift.min(s.chunkImages, s.batch - first)
            let tiles = count * s.perImage
            let vm =
                training
                ? Self.matrix(vp.p, tiles: s.tiles, variant)
                : Self.matrix(vp.p + k * vWorker, tiles: s.chunkTiles, variant)
            let column = training ? first * s.perImage : 0
            variant.transformInput(xp.p + first * imageSize, count: count, geometry: g, into: vm, column: column)
            let mm = Self.matrix(mp.p + k * mWorker, tiles: s.chunkTiles, variant)
            // M[e] (O × tiles) = U[e] (O × C) · V[e] (C × tiles); the same call on any worker
            WorkerPool.run(tasks: e16, workers: spreadElements ? threads : 1) { _, e in
                BLAS.gemm(
                    transposeA: false, transposeB: false, m: o, n: tiles, k: c,
                    alpha: 1, a: up.p + e * o * c, lda: c, b: vm.base + e * vm.elementStride + column, ldb: vm.ld,
                    beta: 0, c: mm.base + e * mm.elementStride, ldc: mm.ld)
            }
            variant.transformOutput(
                mm, count: count, geometry: g, outputs: o,
                bias: bp.map { UnsafePointer($0.p) }, into: op.p + first * outImage)
        }
        cached = training ? s : nil
    }

    /// Accumulates the weight and bias gradients (when given) and, when `dx` is given,
    /// **adds** the input gradient into it.
    func backward(
        _ dy: UnsafePointer<Float>, outputs o: Int, weightGradient dw: UnsafeMutablePointer<Float>?,
        biasGradient db: UnsafeMutablePointer<Float>?, inputGradient dx: UnsafeMutablePointer<Float>?
    ) {
        guard let s = cached else { preconditionFailure("Winograd backward without a training forward") }
        precondition(s.outputs == o, "Winograd backward: \(o) output channels, forward had \(s.outputs)")
        let c = s.inputs
        let t = s.tiles
        let e16 = s.variant.elements
        let threads = BLAS.threadCount
        let g = s.geometry
        let plane = g.outputPositions
        let batch = s.batch
        let variant = s.variant
        let dyp = SharedPointer(dy)
        if let db {
            let dbp = SharedPointer(db)
            // Per channel, images in order, each image's positions in eight lanes (Conv2D.sum): the same
            // sums for every thread count.
            WorkerPool.run(tasks: threads, workers: threads) { _, part in
                for ch in (part * o / threads)..<((part + 1) * o / threads) {
                    var sum: Float = 0
                    for n in 0..<batch { sum += Conv2D.sum(dyp.p + (n * o + ch) * plane, plane) }
                    dbp.p[ch] += sum
                }
            }
        }
        guard dw != nil || dx != nil else { return }
        if s.chunkedBackward { return backwardByChunks(dy, shape: s, weightGradient: dw, inputGradient: dx) }
        dm.reserve(e16 * o * t + Winograd.slack)
        let dmp = dm.withMutablePointer { SharedPointer($0) }
        let dmm = Self.matrix(dmp.p, tiles: t, variant)
        WorkerPool.run(tasks: s.chunks, workers: threads) { _, chunk in
            let first = chunk * s.chunkImages
            let count = Swift.min(s.chunkImages, batch - first)
            variant.transformOutputGradient(
                dyp.p + first * o * plane, count: count, geometry: g, outputs: o,
                into: dmm, column: first * s.perImage)
        }
        let vp = v.withMutablePointer { SharedPointer($0) }
        let up = u.withPointer { SharedPointer($0) }
        if let dw {
            du.reserve(e16 * o * c)
            let dup = du.withMutablePointer { SharedPointer($0) }
            WorkerPool.run(tasks: e16, workers: threads) { _, e in
                // dU[e] (O × C) = dM[e] (O × T) · V[e]ᵀ (T × C)
                BLAS.gemm(
                    transposeA: false, transposeB: true, m: o, n: c, k: t,
                    alpha: 1, a: dmp.p + e * t, lda: e16 * t, b: vp.p + e * t, ldb: e16 * t,
                    beta: 0, c: dup.p + e * o * c, ldc: c)
            }
            variant.transformWeightGradientAdd(dup.p, outputs: o, inputs: c, into: dw)
        }
        guard let dx else { return }
        WorkerPool.run(tasks: e16, workers: threads) { _, e in
            // dV[e] (C × T) = U[e]ᵀ (C × O) · dM[e] (O × T), over V (no longer needed)
            BLAS.gemm(
                transposeA: true, transposeB: false, m: c, n: t, k: o,
                alpha: 1, a: up.p + e * o * c, lda: c, b: dmp.p + e * t, ldb: e16 * t,
                beta: 0, c: vp.p + e * t, ldc: e16 * t)
        }
        let dvm = Self.matrix(vp.p, tiles: t, variant)
        let dxp = SharedPointer(dx)
        let imageSize = c * g.height * g.width
        WorkerPool.run(tasks: s.chunks, workers: threads) { _, chunk in
            let first = chunk * s.chunkImages
            let count = Swift.min(s.chunkImages, batch - first)
            variant.transformInputGradientAdd(
                dvm, column: first * s.perImage, count: count, geometry: g,
                into: dxp.p + first * imageSize)
        }
    }

    /// The chunked backward (see ``Shape/chunkedBackward``): each chunk's output-gradient
    /// tiles stay in cache for its weight- and input-gradient GEMMs, with `dV` written over
    /// the chunk's `V` after its weight-gradient GEMM has read it.
    private func backwardByChunks(
        _ dy: UnsafePointer<Float>, shape s: Shape, weightGradient dw: UnsafeMutablePointer<Float>?,
        inputGradient dx: UnsafeMutablePointer<Float>?
    ) {
        let (c, o, t, e16, variant, g) = (s.inputs, s.outputs, s.tiles, s.variant.elements, s.variant, s.geometry)
        let groups = Swift.min(Self.gradientGroups, s.chunks)
        let workers = Swift.min(BLAS.threadCount, groups)
        let dmWorker = e16 * o * s.chunkTiles + Winograd.slack
        let weightSize = e16 * o * c
        dm.reserve(workers * dmWorker)
        du.reserve(dw == nil ? 1 : groups * weightSize)
        let dyp = SharedPointer(dy)
        let dmp = dm.withMutablePointer { SharedPointer($0) }
        let dup = du.withMutablePointer { SharedPointer($0) }
        let vp = v.withMutablePointer { SharedPointer($0) }
        let up = u.withPointer { SharedPointer($0) }
        let dxp = dx.map { SharedPointer($0) }
        let vm = Self.matrix(vp.p, tiles: t, variant)
        let (plane, imageSize, hasWeightGradient) = (g.outputPositions, c * g.height * g.width, dw != nil)
        WorkerPool.run(tasks: groups, workers: workers) { k, group in
            let dmm = Self.matrix(dmp.p + k * dmWorker, tiles: s.chunkTiles, variant)
            let partial = dup.p + group * weightSize
            let firstChunk = group * s.chunks / groups
            for chunk in firstChunk..<((group + 1) * s.chunks / groups) {
                let first = chunk * s.chunkImages
                let count = Swift.min(s.chunkImages, s.batch - first)
                let (tiles, column) = (count * s.perImage, first * s.perImage)
                variant.transformOutputGradient(
                    dyp.p + first * o * plane, count: count, geometry: g, outputs: o, into: dmm, column: 0)
                for e in 0..<e16 {
                    let dme = dmm.base + e * dmm.elementStride
                    let ve = vm.base + e * vm.elementStride + column
                    if hasWeightGradient {
                        // dU[e] (O × C) += dM[e] (O × tiles) · V[e]ᵀ (tiles × C)
                        BLAS.gemm(
                            transposeA: false, transposeB: true, m: o, n: c, k: tiles,
                            alpha: 1, a: dme, lda: dmm.ld, b: ve, ldb: vm.ld,
                            beta: chunk == firstChunk ? 0 : 1, c: partial + e * o * c, ldc: c)
                    }
                    guard dxp != nil else { continue }
                    // dV[e] (C × tiles) = U[e]ᵀ (C × O) · dM[e] (O × tiles), over V[e]
                    BLAS.gemm(
                        transposeA: true, transposeB: false, m: c, n: tiles, k: o,
                        alpha: 1, a: up.p + e * o * c, lda: c, b: dme, ldb: dmm.ld,
                        beta: 0, c: ve, ldc: vm.ld)
                }
                if let dxp {
                    variant.transformInputGradientAdd(
                        vm, column: column, count: count, geometry: g, into: dxp.p + first * imageSize)
                }
            }
        }
        guard let dw else { return }
        for group in 1..<groups {
            let partial = dup.p + group * weightSize
            for i in 0..<weightSize { dup.p[i] += partial[i] }
        }
        variant.transformWeightGradientAdd(dup.p, outputs: o, inputs: c, into: dw)
    }
}
