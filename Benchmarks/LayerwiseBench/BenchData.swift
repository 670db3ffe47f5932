import Layerwise

/// The deterministic inputs shared with the PyTorch reference (bench_torch.py docstring,
/// "Data"), reproduced bit for bit:
///
/// - byte `i` (flat index into N×3×32×32, C-contiguous) = `splitmix64(seed + i) & 0xFF`,
///   where `splitmix64(x)` adds the golden-ratio increment to the state `x` **once** and
///   mixes. That is one fresh ``SplitMix64`` per index (`SplitMix64(seed: seed + i).next()`),
///   *not* the i-th output of one stream (which would add the increment i + 1 times).
/// - pixel = `(u8 / 255 − 0.5) / 0.5` in Float32, each operation rounded to Float32 as
///   torch does (`x.float() / 255.0`, then `- 0.5`, then `/ 0.5`).
/// - CNN label `j` = `splitmix64(seed + 2^40 + j) % 10`.
enum BenchData {
    /// Side of the square images.
    static let imageSide = 32
    /// Channels of the images.
    static let channels = 3

    /// `splitmix64(x)` as the docstring defines it.
    @inline(__always)
    static func splitmix64(_ x: UInt64) -> UInt64 {
        var generator = SplitMix64(seed: x)
        return generator.next()
    }

    /// The raw bytes of `count` images, [N, 3, 32, 32] flattened.
    static func imageBytes(count: Int, seed: UInt64) -> [UInt8] {
        let total = count * channels * imageSide * imageSide
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            for i in 0..<total {
                buffer[i] = UInt8(truncatingIfNeeded: splitmix64(seed &+ UInt64(i)) & 0xFF)
            }
            initialized = total
        }
    }

    /// The normalised images, shape [N, 3, 32, 32], values in [-1, 1].
    static func images(count: Int, seed: UInt64) -> Tensor {
        let bytes = imageBytes(count: count, seed: seed)
        var images = Tensor.uninitialized(shape: [count, channels, imageSide, imageSide])
        images.withUnsafeMutableBufferPointer { out in
            for i in 0..<bytes.count {
                out[i] = (Float(bytes[i]) / 255 - 0.5) / 0.5
            }
        }
        return images
    }

    /// The CNN labels in 0..<10.
    static func labels(count: Int, seed: UInt64) -> [Int] {
        (0..<count).map { Int(splitmix64(seed &+ (1 << 40) &+ UInt64($0)) % 10) }
    }
}
