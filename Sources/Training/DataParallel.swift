import Layers
import TensorCore

extension Communicator {
    /// Sums (or averages) the gradients of `parameters` over the ranks, together with
    /// `extra` values (e.g. a step's loss and flags), in one all-reduce: the buffer holds
    /// every gradient in order, then `extra`. A no-op for one rank.
    public func allReduceGradients(of parameters: [Parameter], _ reduction: Reduction, extra: inout [Float]) throws {
        guard size > 1 else { return }
        let total = parameters.reduce(extra.count) { $0 + $1.gradient.count }
        var buffer = [Float](repeating: 0, count: total)
        try buffer.withUnsafeMutableBufferPointer { b in
            var offset = 0
            for p in parameters {
                p.gradient.withUnsafeBufferPointer { g in
                    (b.baseAddress! + offset).update(from: g.baseAddress!, count: g.count)
                    offset += g.count
                }
            }
            for (i, v) in extra.enumerated() { b[offset + i] = v }
            try allReduce(b, reduction)
            offset = 0
            for p in parameters {
                p.gradient.withUnsafeMutableBufferPointer { g in
                    g.baseAddress!.update(from: b.baseAddress! + offset, count: g.count)
                    offset += g.count
                }
            }
            for i in extra.indices { extra[i] = b[offset + i] }
        }
    }

    /// Averages the ``RunningStatistics`` (e.g. BatchNorm's running mean and variance) of
    /// every layer in `layers` and their children over the ranks, so inference-mode features
    /// agree on every rank. A no-op for one rank.
    public func averageRunningStatistics(of layers: [any Layer]) throws {
        guard size > 1 else { return }
        var buffers: [Parameter] = []
        LayerTree.visit(LayerTree.indexed(layers)) { _, layer in
            if let l = layer as? any RunningStatistics { buffers += l.runningStatistics }
        }
        guard !buffers.isEmpty else { return }
        var values = buffers.flatMap(\.value.scalars)
        try allReduce(&values, .mean)
        var offset = 0
        for b in buffers {
            b.value = try Tensor(shape: b.value.shape, values: Array(values[offset..<(offset + b.value.count)]))
            offset += b.value.count
        }
    }
}

/// The sampling of a data-parallel run: step `t` of stage `k` trains on a global batch of
/// `B` examples made of `shards` shards of `B / shards` examples, and shard `s` draws from a
/// generator derived from (key, stage, step, shard) alone, where the key is the trainer
/// generator's next value when the stage starts (seeded, and restored by checkpoints).
///
/// Because a shard's data does not depend on which process computes it, `N` ranks with one
/// shard each train on exactly the batches one process computes with `N` shards (the
/// gradients then differ only in summation order), and a resumed run draws what the
/// uninterrupted one drew without saving per-rank generator states.
public struct ShardedSampling: Sendable, Equatable {
    /// Shards per global batch (≥ 1).
    public var shards: Int

    public init(shards: Int) { self.shards = shards }

    /// The shards of the global batch rank `rank` of `size` computes: a contiguous block
    /// (one shard each when `shards == size`).
    public func shards(ofRank rank: Int, size: Int) -> Range<Int> {
        SingleProcessCommunicator.shares(of: shards, parts: size)[rank]
    }

    /// The generator of shard `shard` at `step` (0-based) of `stage`, for a phase `key`.
    public static func generator(key: UInt64, stage: Int, step: Int, shard: Int) -> SeededGenerator {
        // SplitMix64 over the four coordinates: distinct inputs give unrelated streams.
        var mix = SplitMix64(seed: key)
        var key = mix.next()
        for part in [UInt64(stage), UInt64(step), UInt64(shard)] {
            mix = SplitMix64(seed: key ^ (part &* 0x9E37_79B9_7F4A_7C15))
            key = mix.next()
        }
        return SeededGenerator(seed: key)
    }
}
