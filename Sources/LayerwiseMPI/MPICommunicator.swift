import COpenMPI
import Foundation
import Training

/// The ``Communicator`` of an MPI job (Open MPI): `MPI_COMM_WORLD`'s rank and size, and
/// all-reduce, broadcast and barrier as nonblocking MPI collectives polled against a deadline.
///
/// Faults never hang a rank: the communicator's error handler is `MPI_ERRORS_RETURN`, so an
/// MPI error comes back as ``CommunicatorError/failed(rank:operation:reason:)``, and a
/// collective still incomplete after ``timeout`` seconds (a peer died or hangs) throws
/// ``CommunicatorError/timedOut(rank:operation:seconds:)``. After either error the job cannot
/// continue: call ``abort(exitCode:)`` so the launcher ends the other ranks too.
///
/// Results are identical on every rank: Open MPI reduces in an order fixed by the job size
/// and message length and distributes one result.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Seconds a collective may wait for the other ranks before it throws.
    public let timeout: Double
    private let comm: MPI_Comm?
    /// Elements per MPI call (counts are `Int32` in MPI).
    private static let chunk = 1 << 28

    /// The environment variables MPI launchers set in every rank (Open MPI's `mpirun`,
    /// PMIx and PMI-2 launchers such as SLURM's `srun`).
    public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"]

    /// Whether this process was started by an MPI launcher.
    public static var isLaunchedByMPI: Bool {
        let environment = ProcessInfo.processInfo.environment
        return launcherVariables.contains { environment[$0] != nil }
    }

    /// The timeout from `LAYERWISE_MPI_TIMEOUT` (seconds), else 300.
    /// - Throws: ``CommunicatorError/invalidArgument(rank:operation:reason:)`` for a value
    ///   that is not a positive number.
    public static func timeoutFromEnvironment() throws -> Double {
        guard let text = ProcessInfo.processInfo.environment["LAYERWISE_MPI_TIMEOUT"] else { return 300 }
        guard let seconds = Double(text), seconds > 0, seconds.isFinite else {
            throw CommunicatorError.invalidArgument(
                rank: -1, operation: "LAYERWISE_MPI_TIMEOUT", reason: "'\(text)' is not a positive number of seconds")
        }
        return seconds
    }

    /// An ``MPICommunicator`` when an MPI launcher started this process, else a
    /// ``SingleProcessCommunicator`` (MPI is then never initialised).
    public static func fromEnvironment() throws -> any Communicator {
        guard isLaunchedByMPI else { return SingleProcessCommunicator() }
        return try MPICommunicator(timeout: try timeoutFromEnvironment())
    }

    /// Initialises MPI (once per process; `MPI_THREAD_SERIALIZED`) and joins `MPI_COMM_WORLD`.
    /// - Throws: ``CommunicatorError/failed(rank:operation:reason:)`` when MPI cannot start,
    ///   ``CommunicatorError/invalidArgument(rank:operation:reason:)`` for a timeout ≤ 0.
    public init(timeout: Double = 300) throws {
        guard timeout > 0, timeout.isFinite else {
            throw CommunicatorError.invalidArgument(
                rank: -1, operation: "MPICommunicator", reason: "timeout \(timeout) s")
        }
        var initialized: Int32 = 0
        _ = MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, layerwise_mpi_thread_serialized(), &provided)
            guard rc == layerwise_mpi_success() else {
                throw CommunicatorError.failed(rank: -1, operation: "MPI_Init_thread", reason: Self.errorString(rc))
            }
        }
        let world = layerwise_mpi_comm_world()
        comm = world
        let rc = MPI_Comm_set_errhandler(world, layerwise_mpi_errors_return())
        guard rc == layerwise_mpi_success() else {
            throw CommunicatorError.failed(rank: -1, operation: "MPI_Comm_set_errhandler", reason: Self.errorString(rc))
        }
        var r: Int32 = 0, s: Int32 = 0
        _ = MPI_Comm_rank(world, &r)
        _ = MPI_Comm_size(world, &s)
        rank = Int(r)
        size = Int(s)
        self.timeout = timeout
    }

    public func allReduce(_ values: UnsafeMutableBufferPointer<Float>, _ reduction: Reduction) throws {
        guard size > 1, let base = values.baseAddress else { return }
        try reduce(
            base, count: values.count, stride: 4, type: layerwise_mpi_float(),
            operation: "all-reduce of \(values.count) floats")
        if reduction == .mean {
            let n = Float(size)
            for i in values.indices { values[i] /= n }
        }
    }

    public func allReduce(_ values: UnsafeMutableBufferPointer<Double>, _ reduction: Reduction) throws {
        guard size > 1, let base = values.baseAddress else { return }
        try reduce(
            base, count: values.count, stride: 8, type: layerwise_mpi_double(),
            operation: "all-reduce of \(values.count) doubles")
        if reduction == .mean {
            let n = Double(size)
            for i in values.indices { values[i] /= n }
        }
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard (0..<size).contains(root) else {
            throw CommunicatorError.invalidArgument(
                rank: rank, operation: "broadcast", reason: "root \(root) of \(size) ranks")
        }
        guard size > 1, let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let n = min(Self.chunk, bytes.count - offset)
            var request = layerwise_mpi_request_null()
            let rc = MPI_Ibcast(base + offset, Int32(n), layerwise_mpi_byte(), Int32(root), comm, &request)
            try check(rc, "broadcast of \(bytes.count) bytes from rank \(root)")
            try wait(&request, "broadcast of \(bytes.count) bytes from rank \(root)")
            offset += n
        }
    }

    public func barrier() throws {
        guard size > 1 else { return }
        var request = layerwise_mpi_request_null()
        try check(MPI_Ibarrier(comm, &request), "barrier")
        try wait(&request, "barrier")
    }

    /// Ends every rank of the job (`MPI_Abort`): after a failed collective, or when this
    /// rank cannot go on (bad input), so that no other rank waits for it.
    public func abort(exitCode: Int32 = 1) -> Never {
        _ = MPI_Abort(comm, exitCode)
        exit(exitCode)
    }

    /// Shuts MPI down after the last collective (every rank must call it).
    public func finalize() {
        var finalized: Int32 = 0
        _ = MPI_Finalized(&finalized)
        if finalized == 0 { _ = MPI_Finalize() }
    }

    // MARK: - Internals

    private func reduce(
        _ base: UnsafeMutableRawPointer, count: Int, stride: Int, type: MPI_Datatype, operation: String
    ) throws {
        var offset = 0
        while offset < count {
            let n = min(Self.chunk, count - offset)
            var request = layerwise_mpi_request_null()
            let rc = MPI_Iallreduce(
                layerwise_mpi_in_place(), base + offset * stride, Int32(n), type, layerwise_mpi_sum(), comm, &request)
            try check(rc, operation)
            try wait(&request, operation)
            offset += n
        }
    }

    /// Polls `request` until it completes or the deadline passes: spins briefly (short
    /// collectives finish in microseconds), then sleeps 100 µs between polls so a rank
    /// waiting for a slow peer leaves the CPU to others.
    private func wait(_ request: inout MPI_Request?, _ operation: String) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let limit = UInt64(timeout * 1e9)
        var done: Int32 = 0
        var polls = 0
        while true {
            try check(MPI_Test(&request, &done, layerwise_mpi_status_ignore()), operation)
            if done != 0 { return }
            if DispatchTime.now().uptimeNanoseconds - start > limit {
                throw CommunicatorError.timedOut(rank: rank, operation: operation, seconds: timeout)
            }
            polls += 1
            if polls < 2_000 { sched_yield() } else { usleep(100) }
        }
    }

    private func check(_ rc: Int32, _ operation: String) throws {
        guard rc != layerwise_mpi_success() else { return }
        throw CommunicatorError.failed(rank: rank, operation: operation, reason: Self.errorString(rc))
    }

    static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(layerwise_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == layerwise_mpi_success() else { return "MPI error \(code)" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            + " (code \(code))"
    }
}
