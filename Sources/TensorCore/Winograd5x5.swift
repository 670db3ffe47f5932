import CKernels

/// Winograd F(2×2, 5×5) for stride-1 5×5 convolutions: 6×6 transformed tiles every two
/// pixels, 36 GEMMs, 36 multiplies per 2×2 outputs instead of 100 (2.8× fewer FLOPs).
///
/// Same tile-matrix conventions as ``Winograd4x4``, and the same points (0, ±1, ±2, ∞),
/// so the input transform Bᵀ is shared; the Toom–Cook construction gives
///
///     G  = [¼ 0 0 0 0; −⅙ −⅙ −⅙ −⅙ −⅙; −⅙ ⅙ −⅙ ⅙ −⅙;
///           1⁄24 1⁄12 ⅙ ⅓ ⅔; 1⁄24 −1⁄12 ⅙ −⅓ ⅔; 0 0 0 0 1]
///     Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 1]
public enum Winograd5x5 {
    public static let elements = 36
    typealias Six = Winograd4x4.Six

    /// Whether F(2×2, 5×5) computes this convolution: 5×5 kernel, stride 1.
    public static func supports(_ g: ConvGeometry) -> Bool {
        g.isValid && g.kernelHeight == 5 && g.kernelWidth == 5 && g.strideY == 1 && g.strideX == 1
    }

    /// How a convolution's output is cut into 2×2 tiles.
    public struct Tiling: Sendable, Equatable {
        public var geometry: ConvGeometry
        public var rows: Int, columns: Int
        public var perImage: Int { rows * columns }
        /// Every group of eight consecutive tiles is one whole row of 16 outputs, none cut by an edge.
        var isRowAligned: Bool {
            columns % 8 == 0 && 2 * columns == geometry.outputWidth && 2 * rows == geometry.outputHeight
        }

        public init(geometry g: ConvGeometry) {
            precondition(Winograd5x5.supports(g), "Winograd F(2×2, 5×5) needs a 5×5 stride-1 window: \(g)")
            geometry = g
            rows = (g.outputHeight + 1) / 2
            columns = (g.outputWidth + 1) / 2
        }
    }

    /// G applied to five values: six outputs.
    @inline(__always)
    static func gApply(
        _ k0: SIMD8<Float>, _ k1: SIMD8<Float>, _ k2: SIMD8<Float>, _ k3: SIMD8<Float>, _ k4: SIMD8<Float>
    ) -> Six {
        let even: SIMD8<Float> = k0 + k2 + k4
        let odd: SIMD8<Float> = k1 + k3
        let e2: SIMD8<Float> = k0 / 24 + k2 / 6 + k4 * (2.0 / 3)
        let o2: SIMD8<Float> = k1 / 12 + k3 / 3
        return (k0 / 4, -(even + odd) / 6, (odd - even) / 6, e2 + o2, e2 - o2, k4)
    }

    /// `U[e][o][c] = (G · w[o, c] · Gᵀ)[e]`, eight input channels at a time.
    public static func transformWeights(
        _ w: UnsafePointer<Float>, outputs: Int, inputs: Int, into u: UnsafeMutablePointer<Float>
    ) {
        let stride = outputs * inputs
        Winograd.forEachChannelGroup(of: w, outputs: outputs, inputs: inputs, kernelArea: 25) { o, c, lanes, tap in
            func gColumn(_ b: Int) -> Six { gApply(tap(b), tap(5 + b), tap(10 + b), tap(15 + b), tap(20 + b)) }
            let t0 = gColumn(0)
            let t1 = gColumn(1)
            let t2 = gColumn(2)
            let t3 = gColumn(3)
            let t4 = gColumn(4)
            let dst = u + o * inputs + c
            for i in 0..<6 {
                let e = Winograd4x4.element
                let row = gApply(e(t0, i), e(t1, i), e(t2, i), e(t3, i), e(t4, i))
                for j in 0..<6 { Winograd.store(e(row, j), dst + (6 * i + j) * stride, lanes) }
            }
        }
    }

    /// The rows of G, for the weight gradient.
    static let g: [Float] = [
        1.0 / 4, 0, 0, 0, 0,
        -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6,
        -1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
        1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3,
        1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3,
        0, 0, 0, 0, 1,
    ]

    /// Adds `Gᵀ · dU[·][o][c] · G` to `dw[o, c]`.
    public static func transformWeightGradientAdd(
        _ du: UnsafePointer<Float>, outputs: Int, inputs: Int, into dw: UnsafeMutablePointer<Float>
    ) {
        let stride = outputs * inputs
        g.withUnsafeBufferPointer { gm in
            for o in 0..<outputs {
                for c in 0..<inputs {
                    let src = du + o * inputs + c
                    // t[i][b] = Σ_j dU[i][j] G[j][b]
                    var t = [SIMD8<Float>](repeating: .zero, count: 5)
                    for j in 0..<6 {
                        var col = SIMD8<Float>()
                        for i in 0..<6 { col[i] = src[(6 * i + j) * stride] }
                        for b in 0..<5 { t[b] += gm[5 * j + b] * col }
                    }
                    let k = dw + (o * inputs + c) * 25
                    for a in 0..<5 {
                        for b in 0..<5 {
                            var r: Float = 0
                            for i in 0..<6 { r += gm[5 * i + a] * t[b][i] }
                            k[5 * a + b] += r
                        }
                    }
                }
            }
        }
    }

    public static func transformInput(
        _ images: UnsafePointer<Float>, count: Int, tiling: Tiling, into v: Winograd.TileMatrix, column: Int
    ) {
        Winograd4x4.transformInput6(
            images, count: count, geometry: tiling.geometry, rows: tiling.rows,
            columns: tiling.columns, step: 2, into: v, column: column)
    }

    public static func transformInputGradientAdd(
        _ dv: Winograd.TileMatrix, column: Int, count: Int, tiling: Tiling, into dx: UnsafeMutablePointer<Float>
    ) {
        Winograd4x4.transformInputGradientAdd6(
            dv, column: column, count: count, geometry: tiling.geometry,
            rows: tiling.rows, columns: tiling.columns, step: 2, into: dx)
    }

    /// Per tile of `count` images: the offset of its top-left output in image n's channel
    /// 0, and whether its second row and column lie inside the output.
    static func tileTable(
        _ tiling: Tiling, count: Int, outputs: Int, _ body: (UnsafePointer<Int>, UnsafePointer<Int>, Int) -> Void
    ) {
        let geo = tiling.geometry
        let oh = geo.outputHeight
        let ow = geo.outputWidth
        let plane = oh * ow
        let tiles = count * tiling.perImage
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * tiles) { table in
            let offset = table.baseAddress!
            let edge = offset + tiles  // bit 0: second row valid, bit 1: second column
            for t in 0..<tiles {
                let n = t / tiling.perImage
                let r = t % tiling.perImage
                let ty = r / tiling.columns
                let tx = r % tiling.columns
                offset[t] = n * outputs * plane + 2 * ty * ow + 2 * tx
                edge[t] = (2 * ty + 1 < oh ? 1 : 0) | (2 * tx + 1 < ow ? 2 : 0)
            }
            body(offset, edge, tiles)
        }
    }

    /// `y[n, o] = Aᵀ · M-tile · A (+ bias[o])`, eight consecutive tiles at a time.
    public static func transformOutput(
        _ m: Winograd.TileMatrix, column: Int, count: Int, tiling: Tiling, outputs: Int,
        bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>
    ) {
        let geo = tiling.geometry
        let ow = geo.outputWidth
        let plane = geo.outputHeight * ow
        tileTable(tiling, count: count, outputs: outputs) { offset, edge, tiles in
            for o in 0..<outputs {
                lw_winograd6x2_output(
                    m.base + o * m.ld + column, m.elementStride, tiles, offset, edge, tiling.isRowAligned ? 1 : 0, ow,
                    bias?[o] ?? 0, y + o * plane)
            }
        }
    }

    /// The adjoint of ``transformOutput``: `dM-tile = A · dY-tile · Aᵀ` (zero past the edges).
    public static func transformOutputGradient(
        _ dy: UnsafePointer<Float>, count: Int, tiling: Tiling, outputs: Int, into dm: Winograd.TileMatrix, column: Int
    ) {
        let geo = tiling.geometry
        let ow = geo.outputWidth
        let plane = geo.outputHeight * ow
        let es = dm.elementStride
        tileTable(tiling, count: count, outputs: outputs) { offset, edge, tiles in
            for o in 0..<outputs {
                lw_winograd6x2_output_gradient(
                    dy + o * plane, tiles, offset, edge, tiling.isRowAligned ? 1 : 0, ow, dm.base + o * dm.ld + column,
                    es)
            }
        }
    }
}
