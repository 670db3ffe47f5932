/// im2row / row2im over a whole NCHW batch: one row per output position, so a batched
/// convolution is a single GEMM.
///
/// Layout: the patch matrix has `batch · outputPositions` rows, ordered (n, oy, ox), and
/// `patchLength` columns, ordered (c, ky, kx) — the same order as a PyTorch weight
/// `[O, C, kh, kw]` flattened to `[O, C·kh·kw]`. So `rows × weightᵀ` is `[N·oh·ow, O]`.
///
/// Why rows rather than Caffe columns: each patch row is filled by copying runs of
/// `kernelWidth` contiguous input pixels, which stays efficient when the output is tiny
/// and the kernel large (the reference stage 1: 6×6 kernels over 7×7 patches, 2×2 output).
extension Im2Col {
    /// Copies a short kernel row; fixed sizes compile to one or two vector moves instead
    /// of a variable-length loop.
    @usableFromInline @inline(__always)
    static func copyRun(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
        switch n {
        case 3: dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2]
        case 5:
            UnsafeMutableRawPointer(dst).storeBytes(
                of: UnsafeRawPointer(src).loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
            dst[4] = src[4]
        case 6:
            UnsafeMutableRawPointer(dst).storeBytes(
                of: UnsafeRawPointer(src).loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
            dst[4] = src[4]; dst[5] = src[5]
        default:
            for k in 0..<n { dst[k] = src[k] }
        }
    }

    /// Unfolds `batch` images (each `channels × height × width`, contiguous) into `rows`
    /// (`batch · outputPositions` × `patchLength`, row-major). Padding reads as zero.
    @inlinable
    public static func im2row(
        _ images: UnsafePointer<Float>, batch: Int, geometry g: ConvGeometry, rows: UnsafeMutablePointer<Float>
    ) {
        let oh = g.outputHeight, ow = g.outputWidth
        let kh = g.kernelHeight, kw = g.kernelWidth
        let h = g.height, w = g.width, plane = h * w, imageSize = g.channels * plane
        var dst = rows
        for n in 0..<batch {
            let image = images + n * imageSize
            for oy in 0..<oh {
                let iy0 = oy * g.strideY - g.paddingY
                for ox in 0..<ow {
                    let ix0 = ox * g.strideX - g.paddingX
                    let interiorX = ix0 >= 0 && ix0 + kw <= w
                    for c in 0..<g.channels {
                        let channel = image + c * plane
                        for ky in 0..<kh {
                            let iy = iy0 + ky
                            if iy < 0 || iy >= h {
                                for kx in 0..<kw { dst[kx] = 0 }
                            } else if interiorX {
                                let src = channel + iy * w + ix0
                                Self.copyRun(dst, src, kw)
                            } else {
                                let src = channel + iy * w
                                for kx in 0..<kw {
                                    let ix = ix0 + kx
                                    dst[kx] = (ix >= 0 && ix < w) ? src[ix] : 0
                                }
                            }
                            dst += kw
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of ``im2row(_:batch:geometry:rows:)``: **adds** every patch-matrix
    /// entry to the pixel it was read from. Entries that came from padding are dropped.
    /// The caller zeroes `images` first when it wants the plain gradient.
    @inlinable
    public static func row2imAdd(
        _ rows: UnsafePointer<Float>, batch: Int, geometry g: ConvGeometry, images: UnsafeMutablePointer<Float>
    ) {
        let oh = g.outputHeight, ow = g.outputWidth
        let kh = g.kernelHeight, kw = g.kernelWidth
        let h = g.height, w = g.width, plane = h * w, imageSize = g.channels * plane
        var src = rows
        for n in 0..<batch {
            let image = images + n * imageSize
            for oy in 0..<oh {
                let iy0 = oy * g.strideY - g.paddingY
                for ox in 0..<ow {
                    let ix0 = ox * g.strideX - g.paddingX
                    let interiorX = ix0 >= 0 && ix0 + kw <= w
                    for c in 0..<g.channels {
                        let channel = image + c * plane
                        for ky in 0..<kh {
                            let iy = iy0 + ky
                            if iy >= 0 && iy < h {
                                if interiorX {
                                    let dst = channel + iy * w + ix0
                                    for kx in 0..<kw { dst[kx] += src[kx] }
                                } else {
                                    let dst = channel + iy * w
                                    for kx in 0..<kw {
                                        let ix = ix0 + kx
                                        if ix >= 0 && ix < w { dst[ix] += src[kx] }
                                    }
                                }
                            }
                            src += kw
                        }
                    }
                }
            }
        }
    }
}
