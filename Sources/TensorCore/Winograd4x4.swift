import CKernels

/// Winograd F(4×4, 3×3): 6×6 transformed tiles, 36 GEMMs, 4× fewer multiplies than
/// im2row + GEMM (2.25× for F(2×2, 3×3)), at the price of larger transforms and more
/// rounding (about 1e-4 relative instead of 1e-6).
///
/// Same tile-matrix conventions as ``Winograd`` (element `e = 6·i + j` of a 6×6 tile at
/// `e · elementStride + row · ld + t`), with 4×4 output tiles. Matrices (Lavin & Gray,
/// points 0, ±1, ±2, ∞):
///
///     Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0;
///           0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
///     G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1⁄24 1⁄12 ⅙; 1⁄24 −1⁄12 ⅙; 0 0 1]
///     Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
///
/// The transforms work on eight tiles at once: the tile transforms are C kernels
/// (`CKernels`, with AVX-512 and AVX2 versions), which these functions feed with padded rows
/// and tile tables; the weight transforms stay in Swift (SIMD8, once per weight update).
public enum Winograd4x4 {
    public static let elements = 36
    public static let slack = 8
    static let bt: [Float] = [
        4, 0, -5, 0, 1, 0, 0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
        0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1,
    ]
    static let g: [Float] = [
        1.0 / 4, 0, 0, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
        1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0, 0, 1,
    ]
    static let at: [Float] = [1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1]

    /// How a convolution's output is cut into 4×4 tiles.
    public struct Tiling: Sendable, Equatable {
        public var geometry: ConvGeometry
        public var rows: Int, columns: Int
        public var perImage: Int { rows * columns }

        public init(geometry g: ConvGeometry) {
            precondition(Winograd.supports(g), "Winograd F(4×4, 3×3) needs a 3×3 stride-1 window: \(g)")
            geometry = g
            rows = (g.outputHeight + 3) / 4
            columns = (g.outputWidth + 3) / 4
        }
    }

    // MARK: weights

    /// `U[e][o][c] = (G · w[o, c] · Gᵀ)[e]`, eight input channels at a time so that each
    /// of the 36 outputs is one contiguous vector store.
    public static func transformWeights(
        _ w: UnsafePointer<Float>, outputs: Int, inputs: Int, into u: UnsafeMutablePointer<Float>
    ) {
        let stride = outputs * inputs
        Winograd.forEachChannelGroup(of: w, outputs: outputs, inputs: inputs, kernelArea: 9) { o, c, lanes, tap in
            // G · k: six rows per kernel column b.
            func gColumn(_ b: Int) -> Six {
                let k0 = tap(b)
                let k1 = tap(3 + b)
                let k2 = tap(6 + b)
                let s = k0 + k2
                return (
                    0.25 * k0, -(s + k1) / 6, (k1 - s) / 6,
                    k0 / 24 + k1 / 12 + k2 / 6, k0 / 24 - k1 / 12 + k2 / 6, k2
                )
            }
            let t0 = gColumn(0)
            let t1 = gColumn(1)
            let t2 = gColumn(2)
            let dst = u + o * inputs + c
            for i in 0..<6 {
                let a = element(t0, i)
                let b = element(t1, i)
                let d = element(t2, i)
                let s = a + d
                let row: Six = (
                    0.25 * a, -(s + b) / 6, (b - s) / 6, a / 24 + b / 12 + d / 6, a / 24 - b / 12 + d / 6, d
                )
                for j in 0..<6 { Winograd.store(element(row, j), dst + (6 * i + j) * stride, lanes) }
            }
        }
    }

    /// Adds `Gᵀ · dU[·][o][c] · G` to `dw[o, c]`.
    public static func transformWeightGradientAdd(
        _ du: UnsafePointer<Float>, outputs: Int, inputs: Int, into dw: UnsafeMutablePointer<Float>
    ) {
        let stride = outputs * inputs
        g.withUnsafeBufferPointer { gm in
            for o in 0..<outputs {
                for c in 0..<inputs {
                    let src = du + o * inputs + c
                    // t[i][b] = Σ_j dU[i][j] G[j][b], i < 6, b < 3
                    var t = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
                    for j in 0..<6 {
                        var col = SIMD8<Float>()
                        for i in 0..<6 { col[i] = src[(6 * i + j) * stride] }
                        t.0 += gm[3 * j] * col
                        t.1 += gm[3 * j + 1] * col
                        t.2 += gm[3 * j + 2] * col
                    }
                    let k = dw + (o * inputs + c) * 9
                    for a in 0..<3 {
                        var r0: Float = 0
                        var r1: Float = 0
                        var r2: Float = 0
                        for i in 0..<6 {
                            let gi = gm[3 * i + a]
                            r0 += gi * t.0[i]
                            r1 += gi * t.1[i]
                            r2 += gi * t.2[i]
                        }
                        k[3 * a] += r0
                        k[3 * a + 1] += r1
                        k[3 * a + 2] += r2
                    }
                }
            }
        }
    }

    // MARK: input

    /// Padded input rows of one tile row: `step` columns per tile plus the 6-wide tail.
    @inline(__always)
    static func rowBufferWidth(columns: Int, step: Int) -> Int { step * ((columns + 7) & ~7) + 8 }

    /// `V[e][c][column + t] = (Bᵀ · d · B)[e]` for every 6×6 input tile `d` (padding reads 0).
    public static func transformInput(
        _ images: UnsafePointer<Float>, count: Int, tiling: Tiling, into v: Winograd.TileMatrix, column: Int
    ) {
        transformInput6(
            images, count: count, geometry: tiling.geometry, rows: tiling.rows, columns: tiling.columns,
            step: 4, into: v, column: column)
    }

    /// The input transform of any 6×6-tile Winograd variant: tiles every `step` pixels
    /// (4 for F(4×4, 3×3), 2 for F(2×2, 5×5), which share Bᵀ).
    static func transformInput6(
        _ images: UnsafePointer<Float>, count: Int, geometry geo: ConvGeometry, rows tileRows: Int, columns: Int,
        step: Int, into v: Winograd.TileMatrix, column: Int
    ) {
        let width = rowBufferWidth(columns: columns, step: step)
        let plane = geo.height * geo.width
        let used = step * columns + 6 - step
        let paddedRows = step * tileRows + 6 - step
        // The whole padded plane first, then its tile rows: the kernel's vector loads then read
        // rows written well before (loads right after the copy stalled on store forwarding).
        withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedRows * width) { buffer in
            let padded = buffer.baseAddress!
            padded.initialize(repeating: 0, count: paddedRows * width)
            for n in 0..<count {
                for c in 0..<geo.channels {
                    let src = images + (n * geo.channels + c) * plane
                    for py in 0..<paddedRows {
                        let iy = py - geo.paddingY
                        let dst = padded + py * width
                        guard iy >= 0 && iy < geo.height else {
                            dst.update(repeating: 0, count: used)
                            continue
                        }
                        copyPaddedRow(
                            src + iy * geo.width, width: geo.width, padding: geo.paddingX, into: dst, count: used)
                    }
                    for ty in 0..<tileRows {
                        let t0 = column + (n * tileRows + ty) * columns
                        inputTileRow(
                            padded + step * ty * width, width: width, columns: columns, step: step,
                            into: v.base + c * v.ld + t0, elementStride: v.elementStride)
                    }
                }
            }
        }
    }

    typealias Six = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)

    @inline(__always)
    static func element(_ s: Six, _ i: Int) -> SIMD8<Float> {
        switch i {
        case 0: return s.0
        case 1: return s.1
        case 2: return s.2
        case 3: return s.3
        case 4: return s.4
        default: return s.5
        }
    }

    /// `dst[x] = line[x − padding]` for `x < count`, 0 outside the line: one copy, no branch per pixel.
    @inline(__always)
    static func copyPaddedRow(
        _ line: UnsafePointer<Float>, width: Int, padding: Int, into dst: UnsafeMutablePointer<Float>, count: Int
    ) {
        let start = Swift.min(padding, count)
        let end = Swift.max(start, Swift.min(count, padding + width))
        dst.update(repeating: 0, count: start)
        (dst + start).update(from: line + (start - padding), count: end - start)
        (dst + end).update(repeating: 0, count: count - end)
    }

    /// One row of tiles (C kernel, step 2 or 4: the variants' tile spacings).
    @inline(__always)
    static func inputTileRow(
        _ rows: UnsafePointer<Float>, width: Int, columns: Int, step: Int,
        into dst: UnsafeMutablePointer<Float>, elementStride es: Int
    ) {
        lw_winograd6_input_tile_row(rows, width, columns, step, dst, es)
    }

    /// The adjoint of ``transformInput``: adds `B · dV · Bᵀ` of every tile into `dx`.
    public static func transformInputGradientAdd(
        _ dv: Winograd.TileMatrix, column: Int, count: Int, tiling: Tiling, into dx: UnsafeMutablePointer<Float>
    ) {
        transformInputGradientAdd6(
            dv, column: column, count: count, geometry: tiling.geometry, rows: tiling.rows,
            columns: tiling.columns, step: 4, into: dx)
    }

    /// The adjoint of ``transformInput6``.
    static func transformInputGradientAdd6(
        _ dv: Winograd.TileMatrix, column: Int, count: Int, geometry geo: ConvGeometry, rows tileRows: Int,
        columns: Int,
        step: Int, into dx: UnsafeMutablePointer<Float>
    ) {
        let width = rowBufferWidth(columns: columns, step: step)
        let plane = geo.height * geo.width
        let paddedRows = step * tileRows + 6 - step
        withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedRows * width) { buffer in
            let acc = buffer.baseAddress!
            for n in 0..<count {
                for c in 0..<geo.channels {
                    acc.initialize(repeating: 0, count: paddedRows * width)
                    for ty in 0..<tileRows {
                        let src = dv.base + c * dv.ld + column + (n * tileRows + ty) * columns
                        lw_winograd6_input_gradient_tile_row(
                            src, dv.elementStride, columns, step, acc + step * ty * width, width)
                    }
                    let dst = dx + (n * geo.channels + c) * plane
                    let usable = Swift.max(0, Swift.min(geo.width, step * columns + 6 - step - geo.paddingX))
                    for iy in 0..<geo.height {
                        let py = iy + geo.paddingY
                        guard py < paddedRows else { break }
                        let line = acc + py * width + geo.paddingX
                        let out = dst + iy * geo.width
                        for ix in 0..<usable { out[ix] += line[ix] }
                    }
                }
            }
        }
    }

    // MARK: output

    /// `y[n, o] = Aᵀ · M-tile · A (+ bias[o])`, cropped at the output edges.
    ///
    /// Eight consecutive tiles at a time, across tile rows and images (small outputs have
    /// only two tiles per row), each lane stored to its own tile's place.
    public static func transformOutput(
        _ m: Winograd.TileMatrix, column: Int, count: Int, tiling: Tiling, outputs: Int,
        bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>
    ) {
        let geo = tiling.geometry
        let oh = geo.outputHeight
        let ow = geo.outputWidth
        let plane = oh * ow
        let tiles = count * tiling.perImage
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * tiles) { table in
            // Per tile: offset of its top-left output within image n's channel 0, and how
            // many of its rows and columns lie inside the output.
            let offset = table.baseAddress!
            let validRows = offset + tiles
            let validColumns = offset + 2 * tiles
            var allFull = true
            for t in 0..<tiles {
                let n = t / tiling.perImage
                let r = t % tiling.perImage
                let ty = r / tiling.columns
                let tx = r % tiling.columns
                offset[t] = n * outputs * plane + 4 * ty * ow + 4 * tx
                validRows[t] = Swift.min(4, oh - 4 * ty)
                validColumns[t] = Swift.min(4, ow - 4 * tx)
                allFull = allFull && validRows[t] == 4 && validColumns[t] == 4
            }
            for o in 0..<outputs {
                lw_winograd6x4_output(
                    m.base + o * m.ld + column, m.elementStride, tiles, offset, validRows, validColumns,
                    allFull ? 1 : 0, ow, bias?[o] ?? 0, y + o * plane)
            }
        }
    }

    /// The adjoint of ``transformOutput``: `dM-tile = A · dY-tile · Aᵀ` (zero past the
    /// edges), eight consecutive tiles at a time as there.
    public static func transformOutputGradient(
        _ dy: UnsafePointer<Float>, count: Int, tiling: Tiling, outputs: Int, into dm: Winograd.TileMatrix, column: Int
    ) {
        let geo = tiling.geometry
        let oh = geo.outputHeight
        let ow = geo.outputWidth
        let plane = oh * ow
        let es = dm.elementStride
        let tiles = count * tiling.perImage
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * tiles) { table in
            let offset = table.baseAddress!
            let validRows = offset + tiles
            let validColumns = offset + 2 * tiles
            for t in 0..<tiles {
                let n = t / tiling.perImage
                let r = t % tiling.perImage
                let ty = r / tiling.columns
                let tx = r % tiling.columns
                offset[t] = n * outputs * plane + 4 * ty * ow + 4 * tx
                validRows[t] = Swift.min(4, oh - 4 * ty)
                validColumns[t] = Swift.min(4, ow - 4 * tx)
            }
            for o in 0..<outputs {
                lw_winograd6x4_output_gradient(
                    dy + o * plane, tiles, offset, validRows, validColumns, ow, dm.base + o * dm.ld + column, es)
            }
        }
    }
}
