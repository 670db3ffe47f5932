import TensorCore

/// Bilinear resampling shared by resize, crops and rotation.
enum Resampling {
    /// Resizes the region (y0, x0, h, w) of `image` to outHeight × outWidth with bilinear
    /// interpolation in the align-corners = false convention (PyTorch's `F.interpolate`,
    /// no antialiasing): output pixel centre `o` samples `(o + 0.5) · in/out − 0.5`, clamped
    /// into the region, so a region's edge pixels are repeated rather than mixed with outside.
    static func resizeRegion(
        _ image: Image, y0: Int, x0: Int, height h: Int, width w: Int, outHeight oh: Int, outWidth ow: Int
    ) -> Image {
        let c = image.channels, ih = image.height, iw = image.width
        var out = Tensor.uninitialized(shape: [c, oh, ow])
        let sy = Float(h) / Float(oh), sx = Float(w) / Float(ow)
        // Precompute the horizontal taps once per column.
        var xi0 = [Int](repeating: 0, count: ow), xi1 = xi0, xw = [Float](repeating: 0, count: ow)
        for ox in 0..<ow {
            let fx = Swift.min(Swift.max(0, (Float(ox) + 0.5) * sx - 0.5), Float(w - 1))
            let x = Swift.min(Int(fx), w - 1)
            xi0[ox] = x0 + x
            xi1[ox] = x0 + Swift.min(x + 1, w - 1)
            xw[ox] = fx - Float(x)
        }
        image.tensor.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<oh {
                    let fy = Swift.min(Swift.max(0, (Float(oy) + 0.5) * sy - 0.5), Float(h - 1))
                    let y = Swift.min(Int(fy), h - 1)
                    let ya = y0 + y, yb = y0 + Swift.min(y + 1, h - 1), wy = fy - Float(y)
                    for ch in 0..<c {
                        let plane = src.baseAddress! + ch * ih * iw
                        let rowA = plane + ya * iw, rowB = plane + yb * iw
                        let o = dst.baseAddress! + (ch * oh + oy) * ow
                        for ox in 0..<ow {
                            let a = xi0[ox], b = xi1[ox], t = xw[ox]
                            let top = rowA[a] + (rowA[b] - rowA[a]) * t
                            let bottom = rowB[a] + (rowB[b] - rowB[a]) * t
                            o[ox] = top + (bottom - top) * wy
                        }
                    }
                }
            }
        }
        return try! Image(out)  // shape [c, oh, ow] with all sizes ≥ 1 by construction
    }
}
