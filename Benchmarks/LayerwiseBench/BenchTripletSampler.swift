import Layerwise

/// The reference's patch-sampling rule (bench_torch.py `TripletSampler`), per triplet:
///
/// - anchor image `ia ~ U{0..N-1}`, anchor top-left `(ya, xa) ~ U{0..32-P}` each;
/// - positive: same image, top-left `clamp(ya + dy, 0, 32-P)`, `clamp(xa + dx, 0, 32-P)`,
///   `dy, dx ~ U{-3..3}`;
/// - negative: image `(ia + U{1..N-1}) mod N` (never the anchor's), top-left `~ U{0..32-P}`.
///
/// The `3B` patches come out as one `[3B, 3, P, P]` batch `[anchors; positives; negatives]`
/// (``TripletLayout`` with one negative per anchor). Only the distribution is part of the
/// definition; the random stream (``SeededGenerator`` seeded with `seed + 1`) differs
/// from torch's.
///
/// Kept in the benchmark rather than using the library's samplers so that both programs
/// time exactly the same rule; the library's own samplers do more (augmentations, mining).
struct BenchTripletSampler {
    static let positiveRadius = 3

    let images: Tensor
    let imageCount: Int
    let patch: Int
    let batch: Int
    var generator: SeededGenerator

    init(images: Tensor, patch: Int, batch: Int, seed: UInt64) {
        self.images = images
        imageCount = images.shape[0]
        self.patch = patch
        self.batch = batch
        generator = SeededGenerator(seed: seed)
    }

    /// One batch of `3B` patches, `[3B, 3, P, P]`.
    mutating func sample() -> Tensor {
        let b = batch, p = patch, n = imageCount
        let maxPos = BenchData.imageSide - p  // inclusive
        var rows = [(image: Int, y: Int, x: Int)](repeating: (0, 0, 0), count: 3 * b)
        let r = Self.positiveRadius
        for i in 0..<b {
            let ia = generator.nextInt(below: n)
            let ya = generator.nextInt(below: maxPos + 1)
            let xa = generator.nextInt(below: maxPos + 1)
            let yp = Swift.min(Swift.max(ya + generator.nextInt(below: 2 * r + 1) - r, 0), maxPos)
            let xp = Swift.min(Swift.max(xa + generator.nextInt(below: 2 * r + 1) - r, 0), maxPos)
            let inn = (ia + 1 + generator.nextInt(below: n - 1)) % n
            let yn = generator.nextInt(below: maxPos + 1)
            let xn = generator.nextInt(below: maxPos + 1)
            rows[i] = (ia, ya, xa)
            rows[b + i] = (ia, yp, xp)
            rows[2 * b + i] = (inn, yn, xn)
        }
        return gather(rows)
    }

    /// Copies each row's P×P window of all three channels into a fresh batch tensor.
    private func gather(_ rows: [(image: Int, y: Int, x: Int)]) -> Tensor {
        let p = patch, side = BenchData.imageSide, c = BenchData.channels
        var out = Tensor.uninitialized(shape: [rows.count, c, p, p])
        images.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for (k, row) in rows.enumerated() {
                    let image = s + row.image * c * side * side
                    let patchOut = d + k * c * p * p
                    for ch in 0..<c {
                        for y in 0..<p {
                            (patchOut + (ch * p + y) * p).update(
                                from: image + (ch * side + row.y + y) * side + row.x, count: p)
                        }
                    }
                }
            }
        }
        return out
    }
}
