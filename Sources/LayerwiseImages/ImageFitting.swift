import TensorCore

/// How an image of any size becomes a `size`×`size` training image.
public enum CropMode: Sendable, Equatable {
    /// Resize the shorter side to `size` (antialiased), then cut the centre square —
    /// torchvision's `Resize(size)` + `CenterCrop(size)`.
    case center
    /// Resize the shorter side to `size`, then cut a square at a random offset along the
    /// longer side, drawn from a generator seeded with `seed` and the image's index.
    case random(seed: UInt64)
}

/// Antialiased resampling of RGB8 images (a triangle filter widened by the downscale
/// factor, as Pillow's bilinear resize), fused with the crop: only the kept output
/// pixels are computed.
enum ImageFitting {
    /// Per output pixel: the first input index and its normalised weights.
    struct Taps {
        var first: [Int] = []
        var count: [Int] = []
        var weights: [Float] = []
        var stride = 0
    }

    /// Taps of `outputs` pixels starting at `offset` of an axis of `input` pixels resized to `resized`.
    static func taps(input: Int, resized: Int, offset: Int, outputs: Int) -> Taps {
        let scale = Double(input) / Double(resized)
        let support = max(1, scale)
        var t = Taps()
        t.stride = Int((2 * support).rounded(.up)) + 2
        t.weights = [Float](repeating: 0, count: outputs * t.stride)
        for o in 0..<outputs {
            let center = (Double(o + offset) + 0.5) * scale
            let lo = max(0, Int(center - support + 0.5))
            let n = min(t.stride, max(lo + 1, min(input, Int(center + support + 0.5))) - lo)
            func weight(_ k: Int) -> Double { max(0, 1 - abs((Double(lo + k) - center + 0.5) / support)) }
            let sum = (0..<n).reduce(0) { $0 + weight($1) }
            for k in 0..<n { t.weights[o * t.stride + k] = Float(sum > 0 ? weight(k) / sum : 1 / Double(n)) }
            t.first.append(lo)
            t.count.append(n)
        }
        return t
    }

    /// Writes the `size`×`size` fit of `image` as C·H·W bytes (3 planes) into `destination`.
    static func fit(
        _ image: RGBImage, size: Int, crop: CropMode, index: Int, into destination: UnsafeMutablePointer<UInt8>
    ) {
        let (w, h) = (image.width, image.height)
        let shorter = min(w, h)
        let rw = w == shorter ? size : max(size, Int((Double(w) * Double(size) / Double(shorter)).rounded()))
        let rh = h == shorter ? size : max(size, Int((Double(h) * Double(size) / Double(shorter)).rounded()))
        var (ox, oy) = ((rw - size) / 2, (rh - size) / 2)
        if case let .random(seed) = crop {
            var generator = SplitMixSeed.generator(seed: seed, index: index)
            ox = Int.random(in: 0...(rw - size), using: &generator)
            oy = Int.random(in: 0...(rh - size), using: &generator)
        }
        let tx = taps(input: w, resized: rw, offset: ox, outputs: size)
        let ty = taps(input: h, resized: rh, offset: oy, outputs: size)
        // Horizontal pass over the input rows the vertical taps read, then the vertical pass.
        let rowLo = ty.first.min() ?? 0
        let rowHi = zip(ty.first, ty.count).map { $0 + $1 }.max() ?? h
        var rows = [Float](repeating: 0, count: (rowHi - rowLo) * size * 3)
        image.pixels.withUnsafeBufferPointer { src in
            for y in rowLo..<rowHi {
                let line = src.baseAddress! + y * w * 3
                let out = (y - rowLo) * size * 3
                for x in 0..<size {
                    var (r, g, b): (Float, Float, Float) = (0, 0, 0)
                    for k in 0..<tx.count[x] {
                        let wgt = tx.weights[x * tx.stride + k], p = line + (tx.first[x] + k) * 3
                        r += wgt * Float(p[0])
                        g += wgt * Float(p[1])
                        b += wgt * Float(p[2])
                    }
                    rows[out + x * 3] = r
                    rows[out + x * 3 + 1] = g
                    rows[out + x * 3 + 2] = b
                }
            }
        }
        let plane = size * size
        for y in 0..<size {
            for x in 0..<size {
                for c in 0..<3 {
                    var v: Float = 0
                    for k in 0..<ty.count[y] {
                        v += ty.weights[y * ty.stride + k] * rows[((ty.first[y] + k - rowLo) * size + x) * 3 + c]
                    }
                    destination[c * plane + y * size + x] = UInt8(max(0, min(255, v.rounded())))
                }
            }
        }
    }
}

/// Per-image generators that do not depend on the order in which images are decoded.
enum SplitMixSeed {
    static func generator(seed: UInt64, index: Int) -> SeededGenerator {
        SeededGenerator(seed: seed ^ (UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15))
    }
}
