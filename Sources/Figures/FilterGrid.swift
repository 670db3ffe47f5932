import TensorCore

/// Renders first-layer convolution filters as an image grid (the paper's Figures 1 and 2).
public enum FilterGrid {
    /// An RGB grid of filters [O, C, k, k] (C = 3 shown in colour, C = 1 in grey), each
    /// filter contrast-normalised on its own (min → 0, max → 255) so that its pattern,
    /// not its scale, is visible. Each filter pixel becomes `scale` × `scale` screen pixels.
    ///
    /// - Returns: the RGB bytes and the image size.
    public static func render(
        _ weights: Tensor, columns: Int = 16, scale: Int = 4, gap: Int = 1
    ) throws -> (rgb: [UInt8], width: Int, height: Int) {
        let s = weights.shape
        guard s.count == 4, s[0] > 0, s[1] == 1 || s[1] == 3, s[2] > 0, s[3] > 0 else {
            throw VisualizationError.invalidFilters(shape: s, reason: "expected [filters, 1 or 3, k, k]")
        }
        guard columns > 0, scale > 0, gap >= 0 else {
            throw VisualizationError.invalidFilters(shape: s, reason: "columns and scale must be > 0, gap ≥ 0")
        }
        let (count, channels, kh, kw) = (s[0], s[1], s[2], s[3])
        let cols = min(columns, count), rows = (count + cols - 1) / cols
        let cellW = kw * scale + gap, cellH = kh * scale + gap
        let width = cols * cellW + gap, height = rows * cellH + gap
        var rgb = [UInt8](repeating: 255, count: width * height * 3)
        let per = channels * kh * kw
        weights.withUnsafeBufferPointer { w in
            for f in 0..<count {
                let block = UnsafeBufferPointer(rebasing: w[(f * per)..<((f + 1) * per)])
                let lo = block.min() ?? 0, hi = block.max() ?? 1
                let range = hi - lo > 1e-12 ? hi - lo : 1
                let ox = gap + (f % cols) * cellW, oy = gap + (f / cols) * cellH
                for y in 0..<kh {
                    for x in 0..<kw {
                        var px: [UInt8] = [0, 0, 0]
                        for c in 0..<3 {
                            let v = block[(channels == 3 ? c : 0) * kh * kw + y * kw + x]
                            px[c] = UInt8(max(0, min(255, ((v - lo) / range * 255).rounded())))
                        }
                        for dy in 0..<scale {
                            for dx in 0..<scale {
                                let i = ((oy + y * scale + dy) * width + ox + x * scale + dx) * 3
                                rgb[i] = px[0]
                                rgb[i + 1] = px[1]
                                rgb[i + 2] = px[2]
                            }
                        }
                    }
                }
            }
        }
        return (rgb, width, height)
    }

    /// The filter grid as PNG bytes.
    public static func png(_ weights: Tensor, columns: Int = 16, scale: Int = 4) throws -> [UInt8] {
        let (rgb, w, h) = try render(weights, columns: columns, scale: scale)
        return try PNGEncoder.encode(rgb: rgb, width: w, height: h)
    }
}
