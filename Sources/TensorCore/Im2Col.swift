/// Geometry of a 2-D convolution or pooling window over NCHW input.
public struct ConvGeometry: Sendable, Equatable, Hashable {
    public var channels: Int
    public var height: Int
    public var width: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideY: Int
    public var strideX: Int
    public var paddingY: Int
    public var paddingX: Int

    public init(
        channels: Int, height: Int, width: Int,
        kernel: (Int, Int), stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0)
    ) {
        self.channels = channels
        self.height = height
        self.width = width
        (kernelHeight, kernelWidth) = kernel
        (strideY, strideX) = stride
        (paddingY, paddingX) = padding
    }

    /// (H + 2p − k) / s + 1, the output height.
    @inlinable public var outputHeight: Int { (height + 2 * paddingY - kernelHeight) / strideY + 1 }
    /// (W + 2p − k) / s + 1, the output width.
    @inlinable public var outputWidth: Int { (width + 2 * paddingX - kernelWidth) / strideX + 1 }
    /// Rows of one image's column matrix: C · kh · kw.
    @inlinable public var patchLength: Int { channels * kernelHeight * kernelWidth }
    /// Columns of one image's column matrix: output positions.
    @inlinable public var outputPositions: Int { outputHeight * outputWidth }

    /// Whether the window fits the (padded) input at least once.
    public var isValid: Bool {
        channels > 0 && height > 0 && width > 0 && kernelHeight > 0 && kernelWidth > 0
            && strideY > 0 && strideX > 0 && paddingY >= 0 && paddingX >= 0
            && height + 2 * paddingY >= kernelHeight && width + 2 * paddingX >= kernelWidth
    }
}

/// im2col / col2im: unfold image windows into matrix columns so a convolution is one GEMM.
///
/// Layout: for one image (C × H × W), the column matrix has `patchLength` rows
/// (c, ky, kx) and `outputPositions` columns (oy, ox), row-major, ldc = `outputPositions`.
/// This is the Caffe layout; weights [O, C·kh·kw] times columns gives [O, oh·ow] = NCHW output.
public enum Im2Col {
    /// Unfolds one image into `columns` (patchLength × outputPositions). Padding reads zero.
    @inlinable
    public static func im2col(
        _ image: UnsafePointer<Float>, geometry g: ConvGeometry, columns: UnsafeMutablePointer<Float>
    ) {
        let oh = g.outputHeight, ow = g.outputWidth
        var row = 0
        for c in 0..<g.channels {
            let plane = image + c * g.height * g.width
            for ky in 0..<g.kernelHeight {
                for kx in 0..<g.kernelWidth {
                    let dst = columns + row * oh * ow
                    for oy in 0..<oh {
                        let iy = oy * g.strideY - g.paddingY + ky
                        let out = dst + oy * ow
                        if iy < 0 || iy >= g.height {
                            out.update(repeating: 0, count: ow)
                            continue
                        }
                        let src = plane + iy * g.width
                        if g.strideX == 1 {
                            // Contiguous run; only the borders can fall into padding.
                            for ox in 0..<ow {
                                let ix = ox - g.paddingX + kx
                                out[ox] = (ix >= 0 && ix < g.width) ? src[ix] : 0
                            }
                        } else {
                            for ox in 0..<ow {
                                let ix = ox * g.strideX - g.paddingX + kx
                                out[ox] = (ix >= 0 && ix < g.width) ? src[ix] : 0
                            }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// Folds `columns` back into `image`, **adding** each column entry to the pixel it
    /// came from (the adjoint of ``im2col(_:geometry:columns:)``). The caller zeroes
    /// `image` first when it wants the plain gradient.
    @inlinable
    public static func col2imAdd(
        _ columns: UnsafePointer<Float>, geometry g: ConvGeometry, image: UnsafeMutablePointer<Float>
    ) {
        let oh = g.outputHeight, ow = g.outputWidth
        var row = 0
        for c in 0..<g.channels {
            let plane = image + c * g.height * g.width
            for ky in 0..<g.kernelHeight {
                for kx in 0..<g.kernelWidth {
                    let src = columns + row * oh * ow
                    for oy in 0..<oh {
                        let iy = oy * g.strideY - g.paddingY + ky
                        if iy < 0 || iy >= g.height { continue }
                        let dstRow = plane + iy * g.width
                        let colRow = src + oy * ow
                        for ox in 0..<ow {
                            let ix = ox * g.strideX - g.paddingX + kx
                            if ix >= 0 && ix < g.width { dstRow[ix] += colRow[ox] }
                        }
                    }
                    row += 1
                }
            }
        }
    }
}
