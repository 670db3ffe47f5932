import TensorCore

extension FilterGrid {
    /// Filters in a form ``render(_:columns:scale:gap:)`` shows: [O, 1 or 3, k, k] as they are,
    /// any other input-channel count as each filter's mean over its input channels (one grey
    /// kernel per filter, e.g. for a stage above the first).
    public static func displayable(_ weights: Tensor) -> Tensor {
        let s = weights.shape
        guard s.count == 4, s[1] != 1, s[1] != 3 else { return weights }
        let (o, c, plane) = (s[0], s[1], s[2] * s[3])
        var out = Tensor.zeros([o, 1, s[2], s[3]])
        weights.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for f in 0..<o {
                    for ch in 0..<c {
                        for i in 0..<plane { dst[f * plane + i] += src[(f * c + ch) * plane + i] / Float(c) }
                    }
                }
            }
        }
        return out
    }
}
