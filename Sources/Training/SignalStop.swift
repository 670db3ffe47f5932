import Dispatch
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
/// While a `SignalStop` exists, the first of its signals asks ``stopRequest`` to stop —
/// pass it to ``LayerwiseTrainer/stopRequest`` so training finishes the current step,
/// writes a checkpoint atomically and throws ``TrainerError/stopped(stage:step:)`` — and
/// prints `message` on standard error. A second signal exits the process at once with
/// status 128 + signal number (130 for SIGINT, 143 for SIGTERM, as a shell reports a
/// signal death); checkpoints stay intact because every write is atomic (``AtomicFile``).
///
/// The signals are received by Dispatch signal sources (their default action is set to
/// ignore while the sources exist) and restored to the default action by ``cancel()``
/// or deinit.
public final class SignalStop {
    /// The exit status a program should use after a graceful stop on a signal: 75
    /// (`EX_TEMPFAIL`, "try again later"), distinct from success, failure and a signal death.
    public static let stoppedExitStatus: Int32 = 75

    /// What the first signal sets.
    public let stopRequest: StopRequest
    /// The signals handled.
    public let signals: [Int32]
    private let counter = SignalCounter()
    private var sources: [any DispatchSourceSignal] = []

    /// Starts handling `signals`.
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
        let queue = DispatchQueue(label: "layerwise.signal-stop")
        let received = counter
        for signo in signals {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: queue)
            source.setEventHandler { [stopRequest] in
                let name = SignalStop.name(of: signo)
                received.record(signo)
                if received.increment() == 1 {
                    stopRequest.request()
                    FileHandle.standardError.write(Data((message(name) + "\n").utf8))
                } else {
                    FileHandle.standardError.write(Data("received \(name) again: exiting at once\n".utf8))
                    _exit(128 + signo)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// The first signal received, if any.
    public var receivedSignal: Int32? { counter.first }

    deinit { cancel() }

    /// Stops handling the signals and restores their default action.
    public func cancel() {
        for source in sources { source.cancel() }
        sources = []
        for signo in signals { signal(signo, SIG_DFL) }
    }

    /// `SIGINT`, `SIGTERM`, or `signal <n>`.
    public static func name(of signo: Int32) -> String {
        switch signo {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(signo)"
        }
    }
}

/// How many signals arrived, and the first one.
private final class SignalCounter: Sendable {
    private let count = Atomic<Int>(0)
    private let firstSignal = Atomic<Int32>(0)
    func increment() -> Int { count.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue }
    var first: Int32? { let s = firstSignal.load(ordering: .acquiring); return s == 0 ? nil : s }
    func record(_ signo: Int32) { _ = firstSignal.compareExchange(expected: 0, desired: signo, ordering: .acquiringAndReleasing) }
}
