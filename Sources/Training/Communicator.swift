import TensorCore

/// How ``Communicator/allReduce(_:_:)`` combines the ranks' values.
public enum Reduction: String, Sendable, Equatable {
    /// Element-wise sum over all ranks.
    case sum
    /// Element-wise sum over all ranks divided by ``Communicator/size``.
    case mean
}

/// The processes of a data-parallel run, and the few collective operations training needs.
///
/// Every rank calls the same collectives in the same order with buffers of the same length;
/// a collective returns on a rank only when every rank has contributed. The default,
/// ``SingleProcessCommunicator``, is one rank whose collectives do nothing, so code written
/// against the seam runs unchanged without MPI. `LayerwiseMPI` provides `MPICommunicator`.
///
/// Implementations must give every rank bit-identical results (so the ranks' weights never
/// drift apart) and must not wait forever: a peer that died or hangs ends a collective with a
/// ``CommunicatorError`` within a bounded time.
public protocol Communicator: AnyObject, Sendable {
    /// This process's index, `0..<size`. Rank 0 writes checkpoints and reports progress.
    var rank: Int { get }
    /// Number of processes.
    var size: Int { get }
    /// Replaces `values` on every rank by their element-wise sum (or mean) over all ranks.
    func allReduce(_ values: UnsafeMutableBufferPointer<Float>, _ reduction: Reduction) throws
    /// The same for `Double` buffers (statistics accumulated in double precision).
    func allReduce(_ values: UnsafeMutableBufferPointer<Double>, _ reduction: Reduction) throws
    /// Copies `bytes` of rank `root` into `bytes` of every other rank.
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
}

/// A collective failed: a peer died, hung, or the transport reported an error.
public enum CommunicatorError: Error, Equatable, CustomStringConvertible {
    /// The collective did not complete within `seconds` (a peer died or hangs).
    case timedOut(rank: Int, operation: String, seconds: Double)
    /// The transport returned an error code.
    case failed(rank: Int, operation: String, reason: String)
    /// Arguments that cannot be right on every rank (e.g. a root outside `0..<size`).
    case invalidArgument(rank: Int, operation: String, reason: String)
    /// The ranks disagree about something they must share (e.g. buffer lengths).
    case mismatch(rank: Int, what: String, reason: String)

    public var description: String {
        switch self {
        case let .timedOut(rank, operation, seconds):
            return "rank \(rank): \(operation) did not complete within \(seconds) s; another rank died or hangs"
        case let .failed(rank, operation, reason):
            return "rank \(rank): \(operation) failed: \(reason)"
        case let .invalidArgument(rank, operation, reason):
            return "rank \(rank): \(operation): \(reason)"
        case let .mismatch(rank, what, reason):
            return "rank \(rank): the ranks disagree on \(what): \(reason)"
        }
    }
}

/// One process: rank 0 of 1. Every collective leaves the buffers as they are.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduce(_ values: UnsafeMutableBufferPointer<Float>, _ reduction: Reduction) throws {}
    public func allReduce(_ values: UnsafeMutableBufferPointer<Double>, _ reduction: Reduction) throws {}
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard root == 0 else {
            throw CommunicatorError.invalidArgument(rank: 0, operation: "broadcast", reason: "root \(root) of 1 rank")
        }
    }
    public func barrier() throws {}
}

extension Communicator {
    /// Whether this process is rank 0 (the one that writes files and prints).
    public var isRoot: Bool { rank == 0 }

    /// All-reduces an array in place (no-op for one rank).
    public func allReduce(_ values: inout [Float], _ reduction: Reduction) throws {
        guard size > 1 else { return }
        try values.withUnsafeMutableBufferPointer { try allReduce($0, reduction) }
    }

    /// All-reduces an array in place (no-op for one rank).
    public func allReduce(_ values: inout [Double], _ reduction: Reduction) throws {
        guard size > 1 else { return }
        try values.withUnsafeMutableBufferPointer { try allReduce($0, reduction) }
    }

    /// All-reduces a tensor's values in place (no-op for one rank).
    public func allReduce(_ tensor: inout Tensor, _ reduction: Reduction) throws {
        guard size > 1 else { return }
        try tensor.withUnsafeMutableBufferPointer { try allReduce($0, reduction) }
    }

    /// True on every rank when `flag` is true on at least one: how ranks agree to stop or
    /// to reject a step together.
    public func any(_ flag: Bool) throws -> Bool {
        guard size > 1 else { return flag }
        var v: [Double] = [flag ? 1 : 0]
        try allReduce(&v, .sum)
        return v[0] > 0
    }

    /// Rank `root`'s value of `value` on every rank (trivial types only: integers, floats,
    /// fixed-size structs of them).
    public func broadcast<T: BitwiseCopyable>(_ value: inout T, root: Int = 0) throws {
        guard size > 1 else { return }
        try withUnsafeMutableBytes(of: &value) { try broadcast($0, root: root) }
    }

    /// Rank `root`'s array on every rank; the other ranks' arrays must already have its length
    /// (checked: a different length is a ``CommunicatorError/mismatch(rank:what:reason:)``).
    public func broadcast(_ values: inout [Float], root: Int = 0) throws {
        guard size > 1 else { return }
        var count = values.count
        try broadcast(&count, root: root)
        guard count == values.count else {
            throw CommunicatorError.mismatch(
                rank: rank, what: "broadcast length",
                reason: "rank \(root) sends \(count) values, this rank expects \(values.count)")
        }
        try values.withUnsafeMutableBytes { try broadcast($0, root: root) }
    }

    /// Every rank's rows, in rank order: rank `r` contributes rows `ranges[r]` of `matrix`
    /// `[N, D]` (its own rows already filled in; the other rows are overwritten). Built from
    /// one broadcast per rank, so it moves each row once.
    public func allGatherRows(_ matrix: inout Tensor, ranges: [Range<Int>]) throws {
        guard size > 1 else { return }
        guard ranges.count == size, let width = matrix.shape.count == 2 ? matrix.shape[1] : nil else {
            throw CommunicatorError.invalidArgument(
                rank: rank, operation: "allGatherRows",
                reason: "\(ranges.count) ranges for \(size) ranks, shape \(matrix.shape)")
        }
        try matrix.withUnsafeMutableBufferPointer { b in
            for (root, rows) in ranges.enumerated() where !rows.isEmpty {
                let start = UnsafeMutableRawPointer(b.baseAddress! + rows.lowerBound * width)
                try broadcast(UnsafeMutableRawBufferPointer(start: start, count: rows.count * width * 4), root: root)
            }
        }
    }

    /// Rank `rank`'s share of `0..<count` when `count` items are split into `size`
    /// contiguous blocks (the first `count % size` blocks one item longer).
    public func share(of count: Int) -> Range<Int> { Self.shares(of: count, parts: size)[rank] }

    /// `count` items in `parts` contiguous blocks, in order.
    public static func shares(of count: Int, parts: Int) -> [Range<Int>] {
        let base = count / parts, extra = count % parts
        var out: [Range<Int>] = [], start = 0
        for p in 0..<parts {
            let n = base + (p < extra ? 1 : 0)
            out.append(start..<(start + n))
            start += n
        }
        return out
    }
}
