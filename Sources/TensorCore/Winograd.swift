/// Winograd F(2×2, 3×3) transforms for stride-1 3×3 convolutions (Lavin & Gray, 2016).
///
/// A convolution becomes 16 independent matrix products, one per element `e` of a 4×4
/// transformed tile: `M[e] (O × T) = U[e] (O × C) · V[e] (C × T)`, where `T` counts 2×2
/// output tiles. Each output tile costs 16 multiplies per (input, output) channel pair
/// instead of 36, 2.25× fewer FLOPs than im2row + GEMM. These functions do the
/// transforms and their adjoints; the caller runs the GEMMs (``BLAS/gemm``).
///
/// Tile matrices (`V`, `M` and their gradients) are laid out `[16][rows][ld]`: element
/// `e`, row `r` (a channel) and tile column `t` live at `e · elementStride + r · ld + t`.
/// Tiles are ordered (image, tile row, tile column), so one image's tiles of one channel
/// are contiguous. Every loop reads and writes whole rows of tiles with SIMD8 vectors.
///
/// Matrices (F(2, 3), interpolation points 0, 1, −1, ∞):
/// `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`, `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`,
/// `Aᵀ = [1 1 1 0; 0 1 −1 −1]`.
public enum Winograd {
    /// Transformed tile elements (4 × 4): the number of GEMMs per convolution.
    public static let elements = 16
    /// Floats a tile-matrix buffer must have beyond its last used column: the SIMD8
    /// loads of the output transforms read up to 7 columns past a row of tiles.
    public static let slack = 8

    /// How a convolution's output is cut into 2×2 tiles.
    public struct Tiling: Sendable, Equatable {
        public var geometry: ConvGeometry
        /// Tile rows and columns per image: ⌈output / 2⌉.
        public var rows: Int, columns: Int
        public var perImage: Int { rows * columns }

        /// The tiling of a 3×3, stride-1 convolution.
        public init(geometry g: ConvGeometry) {
            precondition(Winograd.supports(g), "Winograd F(2×2, 3×3) needs a 3×3 stride-1 window: \(g)")
            geometry = g
            rows = (g.outputHeight + 1) / 2
            columns = (g.outputWidth + 1) / 2
        }
    }

    /// Whether F(2×2, 3×3) computes this convolution: 3×3 kernel, stride 1.
    public static func supports(_ g: ConvGeometry) -> Bool {
        g.isValid && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideY == 1 && g.strideX == 1
    }

    // MARK: weights

    /// `U[e][o][c] = (G · w[o, c] · Gᵀ)[e]` for a weight `[O, C, 3, 3]`.
    public static func transformWeights(
        _ w: UnsafePointer<Float>, outputs: Int, inputs: Int, into u: UnsafeMutablePointer<Float>
    ) {
        let stride = outputs * inputs
        for o in 0..<outputs {
            for c in 0..<inputs {
                let g = w + (o * inputs + c) * 9
                let dst = u + o * inputs + c
                // t = G · g (4 × 3), one column j at a time; then each row of t times Gᵀ.
                func row(_ i: Int, _ r0: Float, _ r1: Float, _ r2: Float) {
                    dst[(4 * i) * stride] = r0
                    dst[(4 * i + 1) * stride] = 0.5 * (r0 + r1 + r2)
                    dst[(4 * i + 2) * stride] = 0.5 * (r0 - r1 + r2)
                    dst[(4 * i + 3) * stride] = r2
                }
                let a0 = g[0]
                let a1 = g[1]
                let a2 = g[2]
                let b0 = g[3]
                let b1 = g[4]
                let b2 = g[5]
                let c0 = g[6]
                let c1 = g[7]
                let c2 = g[8]
                row(0, a0, a1, a2)
                row(1, 0.5 * (a0 + b0 + c0), 0.5 * (a1 + b1 + c1), 0.5 * (a2 + b2 + c2))
                row(2, 0.5 * (a0 - b0 + c0), 0.5 * (a1 - b1 + c1), 0.5 * (a2 - b2 + c2))
                row(3, c0, c1, c2)
            }
        }
    }

    /// The adjoint of ``transformWeights(_:outputs:inputs:into:)``: **adds**
    /// `Gᵀ · dU[·][o][c] · G` to `dw[o, c]`.
    public static func transformWeightGradientAdd(
        _ du: UnsafePointer<Float>, outputs: Int, inputs: Int, into dw: UnsafeMutablePointer<Float>
    ) {
        let stride = outputs * inputs
        for o in 0..<outputs {
            for c in 0..<inputs {
                let src = du + o * inputs + c
                // t = dU · G (4 × 3), row i at a time; then Gᵀ · t.
                func row(_ i: Int) -> (Float, Float, Float) {
                    let d0 = src[(4 * i) * stride]
                    let d1 = src[(4 * i + 1) * stride]
                    let d2 = src[(4 * i + 2) * stride]
                    let d3 = src[(4 * i + 3) * stride]
                    return (d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3)
                }
                let t0 = row(0)
                let t1 = row(1)
                let t2 = row(2)
                let t3 = row(3)
                let g = dw + (o * inputs + c) * 9
                g[0] += t0.0 + 0.5 * (t1.0 + t2.0)
                g[1] += t0.1 + 0.5 * (t1.1 + t2.1)
                g[2] += t0.2 + 0.5 * (t1.2 + t2.2)
                g[3] += 0.5 * (t1.0 - t2.0)
                g[4] += 0.5 * (t1.1 - t2.1)
                g[5] += 0.5 * (t1.2 - t2.2)
                g[6] += 0.5 * (t1.0 + t2.0) + t3.0
                g[7] += 0.5 * (t1.1 + t2.1) + t3.1
                g[8] += 0.5 * (t1.2 + t2.2) + t3.2
            }
        }
    }
}

// MARK: input tiles

extension Winograd {
    /// Where one image's tiles go in a tile matrix.
    public struct TileMatrix: @unchecked Sendable {  // callers partition the writes
        public var base: UnsafeMutablePointer<Float>
        /// Distance between rows (channels) of one element.
        public var ld: Int
        /// Distance between elements.
        public var elementStride: Int

        public init(base: UnsafeMutablePointer<Float>, ld: Int, elementStride: Int) {
            self.base = base
            self.ld = ld
            self.elementStride = elementStride
        }
    }

    /// The padded input rows of one tile row: 4 rows of `2 · columns + 2` values plus room
    /// for the SIMD16 loads past the end.
    @inline(__always)
    static func rowBufferWidth(_ t: Tiling) -> Int { 2 * ((t.columns + 7) & ~7) + 18 }

    /// `V[e][c][column + t] = (Bᵀ · d · B)[e]` for every tile `t` of `count` images
    /// (`images` is NCHW, `channels × height × width` each). Padding reads as zero.
    public static func transformInput(
        _ images: UnsafePointer<Float>, count: Int, tiling: Tiling, into v: TileMatrix, column: Int
    ) {
        let g = tiling.geometry
        let width = rowBufferWidth(tiling)
        let plane = g.height * g.width
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * width) { buffer in
            let rows = buffer.baseAddress!
            rows.initialize(repeating: 0, count: 4 * width)
            for n in 0..<count {
                for c in 0..<g.channels {
                    let src = images + (n * g.channels + c) * plane
                    for ty in 0..<tiling.rows {
                        loadRows(src, tileRow: ty, geometry: g, into: rows, width: width)
                        let t0 = column + (n * tiling.rows + ty) * tiling.columns
                        inputTileRow(
                            rows, width: width, columns: tiling.columns, into: v.base + c * v.ld + t0,
                            elementStride: v.elementStride)
                    }
                }
            }
        }
    }

    /// Copies input rows `2·ty − p … 2·ty − p + 3` (zero outside the image) into `rows`.
    @inline(__always)
    static func loadRows(
        _ src: UnsafePointer<Float>, tileRow ty: Int, geometry g: ConvGeometry,
        into rows: UnsafeMutablePointer<Float>, width: Int
    ) {
        let used = Swift.min(width, 2 * ((g.outputWidth + 1) / 2) + 2)
        for k in 0..<4 {
            let iy = 2 * ty - g.paddingY + k
            let dst = rows + k * width
            guard iy >= 0 && iy < g.height else {
                dst.update(repeating: 0, count: used)
                continue
            }
            let line = src + iy * g.width
            for x in 0..<used {
                let ix = x - g.paddingX
                dst[x] = ix >= 0 && ix < g.width ? line[ix] : 0
            }
        }
    }

    typealias Quad = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)

    /// One row of tiles from four padded input rows, eight tiles per step.
    @inline(__always)
    static func inputTileRow(
        _ rows: UnsafePointer<Float>, width: Int, columns: Int,
        into dst: UnsafeMutablePointer<Float>, elementStride es: Int
    ) {
        var tx = 0
        while tx < columns {
            // Bᵀ along x for input row k: even/odd columns of 2·tx … 2·tx + 17.
            func xRow(_ k: Int) -> Quad {
                let r = UnsafeRawPointer(rows + k * width + 2 * tx)
                let a = r.loadUnaligned(as: SIMD16<Float>.self)
                let b = r.loadUnaligned(fromByteOffset: 8, as: SIMD16<Float>.self)
                let e0 = a.evenHalf
                let o0 = a.oddHalf
                let e1 = b.evenHalf
                let o1 = b.oddHalf
                return (e0 - e1, o0 + e1, e1 - o0, o0 - o1)
            }
            let u0 = xRow(0)
            let u1 = xRow(1)
            let u2 = xRow(2)
            let u3 = xRow(3)
            let lanes = Swift.min(8, columns - tx)
            func column(_ j: Int, _ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>, _ d: SIMD8<Float>) {
                store(a - c, dst + j * es + tx, lanes)
                store(b + c, dst + (4 + j) * es + tx, lanes)
                store(c - b, dst + (8 + j) * es + tx, lanes)
                store(b - d, dst + (12 + j) * es + tx, lanes)
            }
            column(0, u0.0, u1.0, u2.0, u3.0)
            column(1, u0.1, u1.1, u2.1, u3.1)
            column(2, u0.2, u1.2, u2.2, u3.2)
            column(3, u0.3, u1.3, u2.3, u3.3)
            tx += 8
        }
    }

    /// Calls `body(o, c, lanes, tap)` for every filter `o` of a weight `[outputs, inputs, k·k]`
    /// and every group of up to eight input channels starting at `c`; `tap(q)` gathers kernel
    /// element `q` of the group's `lanes` channels into one vector (zeros past `lanes`). The
    /// larger-tile weight transforms work on such vectors so each output is one vector store.
    static func forEachChannelGroup(
        of w: UnsafePointer<Float>, outputs: Int, inputs: Int, kernelArea: Int,
        _ body: (_ o: Int, _ c: Int, _ lanes: Int, _ tap: (Int) -> SIMD8<Float>) -> Void
    ) {
        for o in 0..<outputs {
            for c in Swift.stride(from: 0, to: inputs, by: 8) {
                let lanes = Swift.min(8, inputs - c)
                let base = w + (o * inputs + c) * kernelArea
                body(o, c, lanes) { q in
                    var v = SIMD8<Float>()
                    for l in 0..<lanes { v[l] = base[kernelArea * l + q] }
                    return v
                }
            }
        }
    }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
        if lanes == 8 {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
        } else {
            for l in 0..<lanes { p[l] = v[l] }
        }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
}

// MARK: output tiles

extension Winograd {
    /// `y[n, o] = Aᵀ · M[·][o][column + t] · A (+ bias[o])` for `count` images, each
    /// `outputs × outputHeight × outputWidth` in NCHW; the odd last row or column of a
    /// tile is dropped when the output size is odd.
    public static func transformOutput(
        _ m: TileMatrix, column: Int, count: Int, tiling: Tiling, outputs: Int,
        bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>
    ) {
        let g = tiling.geometry
        let oh = g.outputHeight
        let ow = g.outputWidth
        let plane = oh * ow
        for n in 0..<count {
            for o in 0..<outputs {
                let out = y + (n * outputs + o) * plane
                let shift = bias?[o] ?? 0
                for ty in 0..<tiling.rows {
                    let src = m.base + o * m.ld + column + (n * tiling.rows + ty) * tiling.columns
                    var tx = 0
                    while tx < tiling.columns {
                        // Aᵀ along y: rows a = 0, 1 of (Aᵀ · M), per column j.
                        func yColumn(_ j: Int) -> (SIMD8<Float>, SIMD8<Float>) {
                            let m0 = load(src + j * m.elementStride + tx)
                            let m1 = load(src + (4 + j) * m.elementStride + tx)
                            let m2 = load(src + (8 + j) * m.elementStride + tx)
                            let m3 = load(src + (12 + j) * m.elementStride + tx)
                            return (m0 + m1 + m2, m1 - m2 - m3)
                        }
                        let c0 = yColumn(0)
                        let c1 = yColumn(1)
                        let c2 = yColumn(2)
                        let c3 = yColumn(3)
                        let lanes = Swift.min(8, tiling.columns - tx)
                        let rowsA = ((c0.0, c1.0, c2.0, c3.0), (c0.1, c1.1, c2.1, c3.1))
                        for a in 0..<2 {
                            let yy = 2 * ty + a
                            guard yy < oh else { break }
                            let r = a == 0 ? rowsA.0 : rowsA.1
                            let even = r.0 + r.1 + r.2 + shift
                            let odd = r.1 - r.2 - r.3 + shift
                            let line = out + yy * ow + 2 * tx
                            if lanes == 8 && 2 * tx + 16 <= ow {
                                for l in 0..<8 {
                                    line[2 * l] = even[l]
                                    line[2 * l + 1] = odd[l]
                                }
                            } else {
                                for l in 0..<lanes {
                                    line[2 * l] = even[l]
                                    if 2 * (tx + l) + 1 < ow { line[2 * l + 1] = odd[l] }
                                }
                            }
                        }
                        tx += 8
                    }
                }
            }
        }
    }

    /// The adjoint of ``transformOutput``: `dM[·][o][column + t] = A · dY-tile · Aᵀ`
    /// (positions past an odd output edge count as zero).
    public static func transformOutputGradient(
        _ dy: UnsafePointer<Float>, count: Int, tiling: Tiling, outputs: Int, into dm: TileMatrix, column: Int
    ) {
        let g = tiling.geometry
        let oh = g.outputHeight
        let ow = g.outputWidth
        let plane = oh * ow
        let es = dm.elementStride
        for n in 0..<count {
            for o in 0..<outputs {
                let src = dy + (n * outputs + o) * plane
                for ty in 0..<tiling.rows {
                    let dst = dm.base + o * dm.ld + column + (n * tiling.rows + ty) * tiling.columns
                    var tx = 0
                    while tx < tiling.columns {
                        let lanes = Swift.min(8, tiling.columns - tx)
                        // Row a of the dY tile times Aᵀ (zero past an odd edge).
                        func xRow(_ a: Int) -> Quad {
                            let yy = 2 * ty + a
                            var even = SIMD8<Float>.zero
                            var odd = SIMD8<Float>.zero
                            if yy < oh {
                                let line = src + yy * ow + 2 * tx
                                for l in 0..<lanes {
                                    even[l] = line[2 * l]
                                    if 2 * (tx + l) + 1 < ow { odd[l] = line[2 * l + 1] }
                                }
                            }
                            return (even, even + odd, even - odd, -odd)
                        }
                        let w0 = xRow(0)
                        let w1 = xRow(1)
                        func column(_ j: Int, _ a: SIMD8<Float>, _ b: SIMD8<Float>) {
                            store(a, dst + j * es + tx, lanes)
                            store(a + b, dst + (4 + j) * es + tx, lanes)
                            store(a - b, dst + (8 + j) * es + tx, lanes)
                            store(-b, dst + (12 + j) * es + tx, lanes)
                        }
                        column(0, w0.0, w1.0)
                        column(1, w0.1, w1.1)
                        column(2, w0.2, w1.2)
                        column(3, w0.3, w1.3)
                        tx += 8
                    }
                }
            }
        }
    }

    /// The adjoint of ``transformInput``: **adds** `B · dV-tile · Bᵀ` of every tile into
    /// the input gradient `dx` (NCHW, `count` images); contributions to padding are dropped.
    public static func transformInputGradientAdd(
        _ dv: TileMatrix, column: Int, count: Int, tiling: Tiling, into dx: UnsafeMutablePointer<Float>
    ) {
        let g = tiling.geometry
        let width = rowBufferWidth(tiling)
        let plane = g.height * g.width
        let paddedRows = 2 * tiling.rows + 2
        withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedRows * width) { buffer in
            let acc = buffer.baseAddress!
            for n in 0..<count {
                for c in 0..<g.channels {
                    acc.initialize(repeating: 0, count: paddedRows * width)
                    for ty in 0..<tiling.rows {
                        let src = UnsafePointer(dv.base + c * dv.ld + column + (n * tiling.rows + ty) * tiling.columns)
                        inputGradientTileRow(
                            src, elementStride: dv.elementStride, columns: tiling.columns,
                            into: acc + 2 * ty * width, width: width)
                    }
                    let dst = dx + (n * g.channels + c) * plane
                    for iy in 0..<g.height {
                        let py = iy + g.paddingY
                        guard py < paddedRows else { break }
                        let line = acc + py * width + g.paddingX
                        let out = dst + iy * g.width
                        let usable = Swift.min(g.width, 2 * tiling.columns + 2 - g.paddingX)
                        for ix in 0..<Swift.max(0, usable) { out[ix] += line[ix] }
                    }
                }
            }
        }
    }

    /// Adds `B · dV · Bᵀ` of one row of tiles into four accumulator rows (tiles overlap by
    /// two columns and two rows; the fixed order of tiles fixes every sum's order).
    @inline(__always)
    static func inputGradientTileRow(
        _ src: UnsafePointer<Float>, elementStride es: Int, columns: Int,
        into acc: UnsafeMutablePointer<Float>, width: Int
    ) {
        var tx = 0
        while tx < columns {
            let lanes = Swift.min(8, columns - tx)
            // B along y for column j: the four input rows k of the tile.
            func yColumn(_ j: Int) -> Quad {
                let v0 = load(src + j * es + tx)
                let v1 = load(src + (4 + j) * es + tx)
                let v2 = load(src + (8 + j) * es + tx)
                let v3 = load(src + (12 + j) * es + tx)
                return (v0, v1 - v2 + v3, v1 + v2 - v0, -v3)
            }
            let z0 = yColumn(0)
            let z1 = yColumn(1)
            let z2 = yColumn(2)
            let z3 = yColumn(3)
            func addRow(_ k: Int, _ a0: SIMD8<Float>, _ a1: SIMD8<Float>, _ a2: SIMD8<Float>, _ a3: SIMD8<Float>) {
                let p0 = a0
                let p1 = a1 - a2 + a3
                let p2 = a1 + a2 - a0
                let p3 = -a3
                let row = acc + k * width + 2 * tx
                for l in 0..<lanes {
                    row[2 * l] += p0[l]
                    row[2 * l + 1] += p1[l]
                    row[2 * l + 2] += p2[l]
                    row[2 * l + 3] += p3[l]
                }
            }
            addRow(0, z0.0, z1.0, z2.0, z3.0)
            addRow(1, z0.1, z1.1, z2.1, z3.1)
            addRow(2, z0.2, z1.2, z2.2, z3.2)
            addRow(3, z0.3, z1.3, z2.3, z3.3)
            tx += 8
        }
    }
}
