import Foundation
import Synchronization

/// A thread-safe "stop after the current step" flag, shared between a trainer and
/// whatever asks it to stop (an event handler, ``SignalStop``, another thread).
public final class StopRequest: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    /// Asks for a stop. Safe from any thread.
    public func request() { flag.store(true, ordering: .releasing) }

    /// Whether a stop was asked for and not yet taken.
    public var isRequested: Bool { flag.load(ordering: .acquiring) }

    /// Takes the request: returns whether one was pending and clears it.
    public func take() -> Bool { flag.exchange(false, ordering: .acquiringAndReleasing) }
}

/// Graceful stop on SIGINT and SIGTERM (what a terminal's Ctrl-C and a cluster scheduler
/// send), for command-line programs that train.
///
/// While a `SignalStop` is active, the first of its signals asks ``stopRequest`` to stop —
/// pass the trainer's ``LayerwiseTrainer/stopRequest`` so training finishes the current step,
/// writes a checkpoint atomically and throws ``TrainerError/stopped(stage:step:)`` — and
/// prints `message` on standard error. A second signal exits the process at once with
/// status 128 + signal number (130 for SIGINT, 143 for SIGTERM, as a shell reports a
/// signal death); checkpoints stay intact because every write is atomic (``AtomicFile``).
///
/// The handler (`sigaction`, `SA_RESTART`) only counts the signal and writes a byte to a
/// pipe, both async-signal-safe; a watcher thread reads the pipe and sets the request.
/// (Dispatch signal sources were not used: on Linux a signal sent right after a source is
/// resumed, or to a source created after another was cancelled, was lost.) One
/// `SignalStop` is active at a time; ``cancel()`` (or deinit) restores the previous actions.
public final class SignalStop {
    /// The exit status a program should use after a graceful stop on a signal: 75
    /// (`EX_TEMPFAIL`, "try again later"), distinct from success, failure and a signal death.
    public static let stoppedExitStatus: Int32 = 75

    /// What the first signal sets.
    public let stopRequest: StopRequest
    /// The signals handled.
    public let signals: [Int32]
    private var previous: [Int32: sigaction] = [:]
    private var pipeWrite: Int32 = -1
    private var watcher: Thread?

    /// Starts handling `signals`, replacing any other active `SignalStop`.
    /// - Parameters:
    ///   - stopRequest: set by the first signal (default: a new one).
    ///   - message: printed on standard error at the first signal, given its name.
    public init(
        stopRequest: StopRequest = StopRequest(), signals: [Int32] = [SIGINT, SIGTERM],
        message: @escaping @Sendable (String) -> String = { name in
            "received \(name): finishing the current step and writing a checkpoint (send it again to stop at once)"
        }
    ) {
        self.stopRequest = stopRequest
        self.signals = signals
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            FileHandle.standardError.write(
                Data("warning: cannot create a pipe for signal handling; signals keep their default action\n".utf8))
            return
        }
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        pipeWrite = fds[1]
        let readEnd = fds[0]
        let request = stopRequest
        let thread = Thread {
            var byte: UInt8 = 0
            var n: Int
            repeat { n = read(readEnd, &byte, 1) } while n < 0 && errno == EINTR
            close(readEnd)
            guard n == 1 else { return }  // cancelled
            request.request()
            FileHandle.standardError.write(Data((message(SignalStop.name(of: Int32(byte))) + "\n").utf8))
        }
        thread.name = "layerwise.signal-stop"
        thread.start()
        watcher = thread
        // The handler reads only these atomics; set them before it can run.
        signalCount.store(0, ordering: .sequentiallyConsistent)
        firstSignal.store(0, ordering: .sequentiallyConsistent)
        signalPipe.store(pipeWrite, ordering: .sequentiallyConsistent)
        for signo in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = handleStopSignal
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            var old = sigaction()
            if sigaction(signo, &action, &old) == 0 { previous[signo] = old }
        }
    }

    /// The first signal received, if any.
    public var receivedSignal: Int32? {
        let s = firstSignal.load(ordering: .acquiring)
        return s == 0 ? nil : s
    }

    deinit { cancel() }

    /// Restores the signals' previous actions and ends the watcher thread.
    public func cancel() {
        for (signo, old) in previous {
            var action = old
            _ = sigaction(signo, &action, nil)
        }
        previous = [:]
        guard pipeWrite >= 0 else { return }
        // Only this instance's pipe is detached: another SignalStop may have replaced it.
        _ = signalPipe.compareExchange(expected: pipeWrite, desired: -1, ordering: .sequentiallyConsistent)
        close(pipeWrite)  // the watcher's read returns 0 and it ends
        pipeWrite = -1
        watcher = nil
    }

    /// `SIGINT`, `SIGTERM`, `SIGHUP`, or `signal <n>`.
    public static func name(of signo: Int32) -> String {
        switch signo {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(signo)"
        }
    }
}

// State of the active SignalStop for the C signal handler (atomics only: async-signal-safe).
private let signalCount = Atomic<Int>(0)
private let firstSignal = Atomic<Int32>(0)
private let signalPipe = Atomic<Int32>(-1)

/// The `sigaction` handler: first signal → one byte (the signal number) to the watcher's
/// pipe; any later one → `_exit(128 + signal)` after a fixed message.
private func handleStopSignal(_ signo: Int32) {
    if signalCount.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue == 1 {
        firstSignal.store(signo, ordering: .sequentiallyConsistent)
        var byte = UInt8(truncatingIfNeeded: signo)
        _ = write(signalPipe.load(ordering: .sequentiallyConsistent), &byte, 1)
    } else {
        let text: StaticString = "second signal: exiting at once\n"
        _ = write(2, text.utf8Start, text.utf8CodeUnitCount)
        _exit(128 + signo)
    }
}
