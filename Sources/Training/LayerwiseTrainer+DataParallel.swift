import Layers
import TensorCore

/// Data-parallel training: the pieces of a step that the ranks of a job must agree on.
extension LayerwiseTrainer {
    /// Shards of every global batch: ``sampling``'s, else one per rank (0 = the single
    /// process's own generator stream, as without data parallelism).
    var shardCount: Int {
        if let sampling { return sampling.shards }
        return communicator.size > 1 ? communicator.size : 0
    }

    /// Checks, before any training, that every stage's batch splits into the shards.
    func validateSharding(_ phases: [Phase]) throws {
        let shards = shardCount
        guard shards > 0 else { return }
        guard shards >= communicator.size else {
            throw TrainerError.invalidOption(
                stage: nil, option: "sampling.shards", value: "\(shards)",
                reason: "needs at least one shard per rank (\(communicator.size) ranks)")
        }
        for phase in phases where phase.config.batchSize % shards != 0 {
            throw TrainerError.invalidOption(
                stage: phase.stage, option: "batchSize", value: "\(phase.config.batchSize)",
                reason:
                    "the global batch must split evenly into \(shards) data-parallel shards (one per rank by default)")
        }
    }

    /// Runs the objective on this process's shards of the global batch, sums the gradients
    /// (and the loss, and every rank's non-finite and stop flags) over the ranks in one
    /// all-reduce, divides by the shard count and averages BatchNorm running statistics.
    /// Every rank then holds the same gradients and throws the same error, or none; a stop
    /// requested on any rank (``stopRequest``) is set on all (`stopRequested`).
    ///
    /// The returned statistics have the loss averaged over the global batch's shards and
    /// `samples` counting the global batch; metrics are this process's first shard's.
    func agreedStep(
        phase: Phase, context: StageStepContext, step: Int, named: [(name: String, parameter: Parameter)]
    ) throws -> StepStatistics {
        let epoch = step / phase.config.budget.stepsPerEpoch + 1
        func diverged(_ what: String) -> TrainerError {
            .nonFinite(stage: phase.stage, epoch: epoch, step: step + 1, what: what)
        }
        let shards = shardCount
        guard shards > 0 else {
            // One process, one generator stream: the objective draws from the trainer's generator.
            let stats: StepStatistics
            do {
                stats = try phase.config.objective.step(context, using: &generator)
            } catch let e as NonFiniteValue {
                throw diverged(e.what)
            }
            if let what = Self.nonFinite(stats, parameters: named) { throw diverged(what) }
            return stats
        }
        let shardContext = StageStepContext(
            stage: context.stage, patchSize: context.patchSize, batchSize: context.batchSize / shards,
            frozen: context.frozen, trainable: context.trainable)
        // The phase's sampling key: the trainer generator's next value. Sharded steps never
        // draw from it, so it is the same for every step of the phase, and a checkpoint
        // restores it with the generator.
        var peek = generator
        let key = peek.next()
        var lossSum: Float = 0, samples = 0
        var first: StepStatistics?
        var failure: String?
        for shard in ShardedSampling(shards: shards).shards(ofRank: communicator.rank, size: communicator.size) {
            var g = ShardedSampling.generator(key: key, stage: phase.stage, step: step, shard: shard)
            do {
                let stats = try phase.config.objective.step(shardContext, using: &g)
                failure = Self.nonFinite(stats, parameters: [])
                lossSum += stats.loss
                samples += stats.samples
                first = first ?? stats
            } catch let e as NonFiniteValue {
                failure = e.what
            }
            if failure != nil { break }
        }
        let size = communicator.size
        let requested = stopRequest.take()
        var extra = [lossSum, Float(samples), requested ? 1 : 0] + [Float](repeating: 0, count: size)
        if failure != nil { extra[3 + communicator.rank] = 1 }
        try communicator.allReduceGradients(of: named.map(\.parameter), .sum, extra: &extra)
        let failedRanks = (0..<size).filter { extra[3 + $0] > 0 }
        if !failedRanks.isEmpty {
            let ranks = failedRanks.map(String.init).joined(separator: ", ")
            throw diverged(
                failure.map { size > 1 ? "\($0) (rank \(communicator.rank))" : $0 }
                    ?? "a value on rank\(failedRanks.count > 1 ? "s" : "") \(ranks)")
        }
        if shards > 1 {
            let n = Float(shards)
            for (_, p) in named {
                p.gradient.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] /= n } }
            }
        }
        // Summed gradients are bit-identical on every rank, so every rank finds the same NaN.
        if let (name, _) = named.first(where: { !$0.parameter.gradient.isFinite }) {
            throw diverged("gradient of \(name)")
        }
        try communicator.averageRunningStatistics(of: phase.trainable + (phase.head.map { [$0] } ?? []))
        stopRequested = extra[2] > 0
        var stats = first ?? StepStatistics(loss: 0, samples: 0)
        stats.loss = extra[0] / Float(shards)
        stats.samples = Int(extra[1])
        return stats
    }

    /// On resume every rank reads the latest checkpoint; they must have found the same one.
    func agreeOnResumePosition(_ position: Position?) throws {
        guard communicator.size > 1 else { return }
        let mine: (Int, Int) = position.map { ($0.phase, $0.stepsDone) } ?? (-1, -1)
        var root = mine
        try communicator.broadcast(&root, root: 0)
        guard root == mine else {
            throw CommunicatorError.mismatch(
                rank: communicator.rank, what: "the checkpoint to resume from",
                reason: "rank 0 resumes at phase \(root.0) step \(root.1), this rank at phase \(mine.0) step \(mine.1) "
                    + "(-1 = no checkpoint); every rank must see the same checkpoint directory")
        }
    }
}
