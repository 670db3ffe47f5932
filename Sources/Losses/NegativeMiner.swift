import Foundation
import TensorCore

/// What a ``NegativeMiner`` chooses from: the distance of every anchor to every row of the
/// batch, which rows are allowed as its negative, and the anchor–positive distances.
///
/// Candidate `c` is embedding row `c` (anchors, positives and stored negatives alike).
/// A row is allowed for anchor `i` when its source image differs from the anchor's and it
/// is neither the anchor itself nor the anchor's positive (whatever the positive's source).
public struct MiningProblem: Sendable {
    /// B, the number of anchors.
    public let anchorCount: Int
    /// The number of candidate rows (all embedding rows).
    public let candidateCount: Int
    /// The triplet margin, for miners that need it (semi-hard).
    public let margin: Float
    /// d(aᵢ, pᵢ) for every anchor.
    public let anchorPositiveDistances: [Float]
    /// d(aᵢ, row c), row-major `[anchorCount, candidateCount]`.
    public let distances: [Float]
    /// Whether row c may be anchor i's negative, row-major like ``distances``.
    public let allowed: [Bool]

    /// - Throws: ``LossError/rowCountMismatch(expected:got:)`` when the arrays do not have
    ///   `anchorCount` / `anchorCount · candidateCount` entries.
    public init(
        anchorPositiveDistances: [Float], distances: [Float], allowed: [Bool], candidateCount: Int, margin: Float
    ) throws {
        let b = anchorPositiveDistances.count
        guard candidateCount >= 0, distances.count == b * candidateCount else {
            throw LossError.rowCountMismatch(expected: b * candidateCount, got: distances.count)
        }
        guard allowed.count == distances.count else {
            throw LossError.rowCountMismatch(expected: distances.count, got: allowed.count)
        }
        self.anchorCount = b
        self.candidateCount = candidateCount
        self.margin = margin
        self.anchorPositiveDistances = anchorPositiveDistances
        self.distances = distances
        self.allowed = allowed
    }

    @inlinable public func distance(anchor i: Int, candidate c: Int) -> Float { distances[i * candidateCount + c] }
    @inlinable public func isAllowed(anchor i: Int, candidate c: Int) -> Bool { allowed[i * candidateCount + c] }

    /// Calls `body(anchor, distances, allowed)` with anchor i's row of both matrices as
    /// buffers (valid only during the call) and collects the answers: the fast way to scan.
    @inlinable
    public func forEachAnchorRow(
        _ body: (Int, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Bool>) throws -> Int?
    ) rethrows -> [Int?] {
        let n = candidateCount
        return try distances.withUnsafeBufferPointer { d in
            try allowed.withUnsafeBufferPointer { a in
                try (0..<anchorCount).map { i in
                    try body(
                        i, UnsafeBufferPointer(rebasing: d[(i * n)..<((i + 1) * n)]),
                        UnsafeBufferPointer(rebasing: a[(i * n)..<((i + 1) * n)]))
                }
            }
        }
    }
}

/// Chooses, for every anchor, one negative row among the in-batch candidates.
///
/// Conform to plug your own mining strategy into ``TripletMarginLoss``.
public protocol NegativeMiner: Sendable {
    /// One entry per anchor: an allowed candidate row, or nil when the anchor has none.
    /// The loss rejects (with ``LossError/invalidMinerChoice(anchor:row:)``) a row that is
    /// not allowed, and throws ``LossError/noNegativeCandidates(anchor:)`` for nil.
    func selectNegatives(_ problem: MiningProblem) -> [Int?]
}

/// Picks the allowed candidate with the smallest distance to the anchor (ties: lowest row).
public struct HardestNegativeMiner: NegativeMiner {
    public init() {}

    public func selectNegatives(_ problem: MiningProblem) -> [Int?] {
        problem.forEachAnchorRow { _, distances, allowed in
            // Disallowed rows get key +∞, so the only branch is "new minimum", which is
            // rarely taken and well predicted (branching on random data is not).
            var best = -1
            var bestD = Float.infinity
            for c in 0..<distances.count {
                let key = allowed[c] ? distances[c] : .infinity
                if key < bestD { best = c; bestD = key }
            }
            return best >= 0 ? best : nil
        }
    }
}

/// Semi-hard mining (Schroff et al., FaceNet 2015), with TensorFlow Addons'
/// `triplet_semihard_loss` rule:
///
/// - pick the allowed candidate *closest* to the anchor among those *farther* than the
///   positive, d(a,n) > d(a,p). When any semi-hard negative exists
///   (d(a,p) < d(a,n) < d(a,p) + margin) this is the closest of them.
/// - fallback when every allowed candidate is at most as far as the positive: the
///   *farthest* allowed candidate (the easiest of the hard ones).
///
/// Ties go to the lowest row.
public struct SemiHardNegativeMiner: NegativeMiner {
    public init() {}

    public func selectNegatives(_ problem: MiningProblem) -> [Int?] {
        problem.forEachAnchorRow { i, distances, allowed in
            let dap = problem.anchorPositiveDistances[i]
            var closestFarther = -1, closestD = Float.infinity
            for c in 0..<distances.count {
                // Key +∞ for rows that do not qualify: the branch is only taken on a new
                // minimum, rarely, instead of on the (random) qualification test.
                let d = distances[c]
                let key = allowed[c] && d > dap ? d : .infinity
                if key < closestD { closestFarther = c; closestD = key }
            }
            if closestFarther >= 0 { return closestFarther }
            // Fallback (every allowed row is at most as far as the positive): the farthest.
            var farthest = -1, farthestD = -Float.infinity
            for c in 0..<distances.count {
                let key = allowed[c] ? distances[c] : -.infinity
                if key > farthestD { farthest = c; farthestD = key }
            }
            return farthest >= 0 ? farthest : nil
        }
    }
}

/// Picks a uniformly random allowed candidate for every anchor.
///
/// Deterministic: the choices depend only on the seed and on the sequence of calls (the
/// generator advances with every call, so successive batches get fresh choices). A class
/// so the loss can stay a value; the generator is guarded by a lock, so one miner may be
/// shared across threads (the order of concurrent calls then decides who gets which draws).
public final class RandomNegativeMiner: NegativeMiner, GeneratorOwning, @unchecked Sendable {
    // @unchecked: `stream` is only touched while holding `lock`.
    private let lock = NSLock()
    private var stream: SeededGenerator

    public init(seed: UInt64) { stream = SeededGenerator(seed: seed) }
    public init(generator: SeededGenerator) { stream = generator }

    /// The miner's own generator (checkpointed by the trainer, so a resumed run picks the
    /// same negatives).
    public var generator: SeededGenerator {
        get { lock.lock(); defer { lock.unlock() }; return stream }
        set { lock.lock(); defer { lock.unlock() }; stream = newValue }
    }

    public func selectNegatives(_ problem: MiningProblem) -> [Int?] {
        lock.lock()
        defer { lock.unlock() }
        return (0..<problem.anchorCount).map { i in
            var count = 0
            for c in 0..<problem.candidateCount where problem.isAllowed(anchor: i, candidate: c) { count += 1 }
            guard count > 0 else { return nil }
            var k = stream.nextInt(below: count)
            for c in 0..<problem.candidateCount where problem.isAllowed(anchor: i, candidate: c) {
                if k == 0 { return c }
                k -= 1
            }
            return nil  // unreachable: k < count
        }
    }
}
