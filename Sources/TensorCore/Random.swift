import Foundation

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny 64-bit generator.
///
/// Used to seed ``SeededGenerator`` and, because it is trivial to reimplement, to
/// produce the deterministic benchmark inputs shared with the PyTorch reference.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The library's seeded random number generator: xoshiro256** (Blackman & Vigna 2018),
/// seeded through SplitMix64.
///
/// Every random choice in Layerwise takes a generator explicitly; nothing reads a
/// global seed. The state is four words, so it can be saved in a checkpoint and
/// restored with ``init(state:)``.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable {
    // Four stored words rather than an array: `next()` then works on registers, with no
    // bounds checks, uniqueness checks or heap indirection per draw.
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// The four state words (never all zero).
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// A generator whose whole stream is determined by `seed`.
    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s0 = sm.next()
        s1 = sm.next()
        s2 = sm.next()
        s3 = sm.next()
    }

    /// Restores a generator from ``state``.
    public init(state: [UInt64]) throws {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else {
            throw TensorError.invalidArgument(
                name: "generator state", value: "\(state)", reason: "needs four words, not all zero")
        }
        s0 = state[0]
        s1 = state[1]
        s2 = state[2]
        s3 = state[3]
    }

    @inlinable
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// An independent generator for a sub-task (e.g. one per seed or per stage),
    /// derived deterministically from this one.
    public mutating func split() -> SeededGenerator {
        SeededGenerator(seed: next())
    }
}

extension RandomNumberGenerator {
    /// A uniform Float in [0, 1) with 24 random bits.
    @inlinable
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A uniform Float in [low, high).
    @inlinable
    public mutating func nextUniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * nextUniform()
    }

    /// A standard normal sample (Box–Muller; one of the pair is discarded to keep the
    /// generator stateless beyond its words).
    @inlinable
    public mutating func nextNormal(mean: Float = 0, standardDeviation: Float = 1) -> Float {
        let u1 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        let r = (-2.0 * log(Swift.max(u1, 1e-300))).squareRoot()
        return mean + standardDeviation * Float(r * cos(2.0 * Double.pi * u2))
    }

    /// A uniform integer in 0..<upperBound (unbiased; Lemire's method via the stdlib).
    @inlinable
    public mutating func nextInt(below upperBound: Int) -> Int {
        Int.random(in: 0..<upperBound, using: &self)
    }

    /// Shuffles `indices` in place by Fisher–Yates (the standard library's `shuffle` does
    /// not promise a stable algorithm across versions; this does).
    public mutating func shuffle(_ indices: inout [Int]) {
        guard indices.count > 1 else { return }
        for i in stride(from: indices.count - 1, to: 0, by: -1) {
            let j = nextInt(below: i + 1)
            if i != j { indices.swapAt(i, j) }
        }
    }
}

extension Tensor {
    /// Elements drawn uniformly from [low, high).
    public static func uniform<G: RandomNumberGenerator>(
        _ shape: [Int], low: Float, high: Float, using generator: inout G
    ) -> Tensor {
        var t = Tensor.uninitialized(shape: shape)
        t.withUnsafeMutableBufferPointer { b in
            for i in b.indices { b[i] = generator.nextUniform(low, high) }
        }
        return t
    }

    /// Elements drawn from a normal distribution.
    public static func normal<G: RandomNumberGenerator>(
        _ shape: [Int], mean: Float = 0, standardDeviation: Float = 1, using generator: inout G
    ) -> Tensor {
        var t = Tensor.uninitialized(shape: shape)
        t.withUnsafeMutableBufferPointer { b in
            for i in b.indices { b[i] = generator.nextNormal(mean: mean, standardDeviation: standardDeviation) }
        }
        return t
    }
}

/// A component that draws from a generator of its own (a dropout layer's masks, a
/// negative miner's picks) rather than the one it is handed. Its state is part of a
/// training run: the trainer saves and restores it in checkpoints, so a resumed run
/// continues the same random stream.
public protocol GeneratorOwning: AnyObject {
    /// The component's own generator; setting it replaces the stream.
    var generator: SeededGenerator { get set }
}
