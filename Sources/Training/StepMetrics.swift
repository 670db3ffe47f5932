import Losses

/// One number an objective measured in a step, by name, for logs and progress displays.
///
/// The trainer treats every metric alike: it checks it is finite (a hinge loss can swallow
/// NaN distances, `max(0, NaN) = 0`, so diagnostics catch divergence the loss hides) and
/// forwards it in ``StepEvent/metrics``. An objective adds its own diagnostics by returning
/// more metrics, with no change to the trainer, the events or ``ProgressLine``.
public struct StepMetric: Sendable, Equatable {
    /// A stable identifier, e.g. `"activeFraction"`.
    public var name: String
    /// The measured value.
    public var value: Double
    /// What ``TrainerError/nonFinite(stage:epoch:step:what:)`` names when `value` is not
    /// finite (defaults to ``name``).
    public var divergenceLabel: String

    public init(name: String, value: Double, divergenceLabel: String? = nil) {
        self.name = name
        self.value = value
        self.divergenceLabel = divergenceLabel ?? name
    }
}

/// The metrics and progress text of the library's objectives, derived from contrastive
/// diagnostics and a batch accuracy: the metrics ``StepStatistics`` uses when an objective
/// gives none, and the fragments ``ProgressLine`` shows before an objective's own.
enum StandardMetrics {
    static let distancesLabel = "embedding distances (loss diagnostics)"

    static func metrics(diagnostics d: LossDiagnostics?, accuracy: Float?) -> [StepMetric] {
        var out: [StepMetric] = []
        if let d {
            out.append(
                StepMetric(
                    name: "activeFraction", value: Double(d.activeFraction), divergenceLabel: distancesLabel))
            out.append(
                StepMetric(
                    name: "meanPositiveDistance", value: Double(d.meanPositiveDistance), divergenceLabel: distancesLabel
                ))
            out.append(
                StepMetric(
                    name: "meanNegativeDistance", value: Double(d.meanNegativeDistance), divergenceLabel: distancesLabel
                ))
        }
        if let accuracy { out.append(StepMetric(name: "accuracy", value: Double(accuracy))) }
        return out
    }

    /// `active 45% │ d+ 0.120 d− 0.560 │ acc 51.0% │ COLLAPSED`, each part present when known.
    static func progress(
        activeFraction: Float?, meanPositiveDistance: Float?, meanNegativeDistance: Float?, accuracy: Float?,
        isCollapsed: Bool
    ) -> [String] {
        var parts: [String] = []
        if let a = activeFraction { parts.append("active \(ProgressLine.fixed(a * 100, 0))%") }
        if let p = meanPositiveDistance, let n = meanNegativeDistance {
            parts.append("d+ \(ProgressLine.fixed(p, 3)) d− \(ProgressLine.fixed(n, 3))")
        }
        if let acc = accuracy { parts.append("acc \(ProgressLine.fixed(acc * 100, 1))%") }
        if isCollapsed { parts.append("COLLAPSED") }
        return parts
    }
}
