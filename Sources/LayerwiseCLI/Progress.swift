import Foundation
import Layerwise

/// Progress on standard error: on a terminal a live bar with ETA redrawn in place; when
/// redirected, plain lines (stage and epoch events, and about ten step lines per stage).
public final class ProgressReporter {
    public let interactive: Bool
    private let width: Int
    private var lastPlainStep = 0

    public init(interactive: Bool = isatty(STDERR_FILENO) != 0) {
        self.interactive = interactive
        width = Int(ProcessInfo.processInfo.environment["COLUMNS"] ?? "") ?? 100
    }

    public func handle(_ event: TrainingEvent) {
        if case let .step(e) = event {
            if interactive {
                write("\r" + bar(e) + "\u{1B}[K")
            } else if e.step == e.totalSteps || e.step - lastPlainStep >= max(1, e.totalSteps / 10) {
                lastPlainStep = e.step
                write(ProgressLine().render(e) + "\n")
            }
            return
        }
        if case .stageStarted = event { lastPlainStep = 0 }
        guard let line = ProgressLine().render(event) else { return }
        write((interactive ? "\r\u{1B}[K" : "") + line + "\n")
    }

    /// `stage 1 [██████░░░░░░░░]  42% 420/1000 │ loss 0.1234 │ 5120 trip/s │ ETA 0:42`.
    func bar(_ e: StepEvent) -> String {
        let fraction = Double(e.step) / Double(max(1, e.totalSteps))
        let cells = 24, filled = Int((fraction * Double(cells)).rounded(.down))
        let percent = String(format: "%3d%%", Int(fraction * 100))
        let label = e.stage == 0 ? "end-to-end" : "stage \(e.stage)"
        let line =
            "\(label) [" + String(repeating: "█", count: filled) + String(repeating: "░", count: cells - filled)
            + "] \(percent) \(e.step)/\(e.totalSteps) │ loss " + String(format: "%.4f", Double(e.loss))
            + " │ " + String(format: "%.0f", e.samplesPerSecond) + " \(e.sampleUnit)/s │ ETA "
            + Self.duration(e.etaSeconds)
        return String(line.prefix(max(20, width - 1)))
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let t = Int(seconds.rounded())
        return t >= 3600
            ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }

    private func write(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }
}
