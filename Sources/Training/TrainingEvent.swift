import Foundation
import Losses

/// One optimizer step, as reported to progress displays.
public struct StepEvent: Sendable, Equatable {
    /// The stage (1-based; 0 when the whole stack trains end to end).
    public var stage: Int
    /// The epoch (1-based).
    public var epoch: Int
    /// The step within the stage (1-based).
    public var step: Int
    /// All steps of the stage.
    public var totalSteps: Int
    /// This step's loss.
    public var loss: Float
    /// Fraction of triplets with non-zero loss (contrastive objectives only).
    public var activeFraction: Float?
    /// Mean anchor–positive distance (contrastive objectives only).
    public var meanPositiveDistance: Float?
    /// Mean anchor–negative distance (contrastive objectives only).
    public var meanNegativeDistance: Float?
    /// Whether the loss reports collapsed embeddings.
    public var isCollapsed: Bool
    /// Batch accuracy (classifying objectives only).
    public var accuracy: Float?
    /// Training examples (in ``sampleUnit``) per second, averaged over this stage so far.
    public var samplesPerSecond: Double
    /// What one example is (``StageObjective/sampleUnit``: `"trip"`, `"img"` …).
    public var sampleUnit: String
    /// The objective's named measurements of this step (``StepStatistics/metrics``).
    public var metrics: [StepMetric]
    /// The objective's extra progress-text fragments (``StepStatistics/progress``).
    public var progress: [String]
    /// Estimated seconds until the stage finishes.
    public var etaSeconds: Double
    /// The learning rate this step used.
    public var learningRate: Float

    /// Training examples per second; the name predates objectives that count images.
    @available(*, deprecated, renamed: "samplesPerSecond")
    public var tripletsPerSecond: Double {
        get { samplesPerSecond }
        set { samplesPerSecond = newValue }
    }

    /// An event of a contrastive-style step; metrics and progress text are derived from
    /// the diagnostics, and examples count as triplets.
    public init(
        stage: Int, epoch: Int, step: Int, totalSteps: Int, loss: Float,
        activeFraction: Float? = nil, meanPositiveDistance: Float? = nil, meanNegativeDistance: Float? = nil,
        isCollapsed: Bool = false, accuracy: Float? = nil,
        tripletsPerSecond: Double, etaSeconds: Double, learningRate: Float
    ) {
        let diagnostics = zip3(meanPositiveDistance, meanNegativeDistance, activeFraction).map {
            LossDiagnostics(
                meanPositiveDistance: $0, meanNegativeDistance: $1, activeFraction: $2, isCollapsed: isCollapsed)
        }
        self.init(
            stage: stage, epoch: epoch, step: step, totalSteps: totalSteps, loss: loss,
            statistics: StepStatistics(loss: loss, diagnostics: diagnostics, samples: 0, accuracy: accuracy),
            samplesPerSecond: tripletsPerSecond, sampleUnit: "trip", etaSeconds: etaSeconds, learningRate: learningRate)
        self.activeFraction = activeFraction
        self.meanPositiveDistance = meanPositiveDistance
        self.meanNegativeDistance = meanNegativeDistance
        self.isCollapsed = isCollapsed
    }

    /// The event of a step whose objective measured `statistics`.
    public init(
        stage: Int, epoch: Int, step: Int, totalSteps: Int, loss: Float, statistics: StepStatistics,
        samplesPerSecond: Double, sampleUnit: String, etaSeconds: Double, learningRate: Float
    ) {
        self.stage = stage
        self.epoch = epoch
        self.step = step
        self.totalSteps = totalSteps
        self.loss = loss
        self.activeFraction = statistics.diagnostics?.activeFraction
        self.meanPositiveDistance = statistics.diagnostics?.meanPositiveDistance
        self.meanNegativeDistance = statistics.diagnostics?.meanNegativeDistance
        self.isCollapsed = statistics.diagnostics?.isCollapsed ?? false
        self.accuracy = statistics.accuracy
        self.samplesPerSecond = samplesPerSecond
        self.sampleUnit = sampleUnit
        self.metrics = statistics.metrics
        self.progress = statistics.progress
        self.etaSeconds = etaSeconds
        self.learningRate = learningRate
    }
}

private func zip3<A, B, C>(_ a: A?, _ b: B?, _ c: C?) -> (A, B, C)? {
    guard let a, let b, let c else { return nil }
    return (a, b, c)
}

/// What the trainers report while they work. Events are plain values, so a caller can
/// print them, log them or forward them to another task.
public enum TrainingEvent: Sendable, Equatable {
    /// A stage begins training on `patchSize`×`patchSize` patches (stage 0 = end to end).
    case stageStarted(stage: Int, patchSize: Int)
    /// One optimizer step finished.
    case step(StepEvent)
    /// An epoch finished: its mean loss and, when an evaluation ran, its accuracy.
    case epochEnded(stage: Int, epoch: Int, meanLoss: Float, evaluationAccuracy: Float?)
    /// A stage finished after `seconds` of wall time; `finalLoss` is its last epoch's mean loss.
    case stageFinished(stage: Int, seconds: Double, finalLoss: Float)
    /// A checkpoint was written atomically to `path`.
    case checkpointSaved(path: String)
    /// Training continues from the checkpoint at `path`.
    case resumed(path: String, stage: Int, step: Int)
}

/// Renders events as one-line progress text; a CLI prints it after `\r` to update in place.
///
/// ```
/// stage 2 │ epoch 3 │ step  120/500 │ loss 0.1234 │ active 45% │ d+ 0.120 d− 0.560 │ 1234 trip/s │ eta 0:42
/// ```
public struct ProgressLine: Sendable {
    /// Maximum width; longer lines are cut (0 = unlimited).
    public var width: Int

    public init(width: Int = 0) { self.width = width }

    /// The line for `event`, or nil for events that do not warrant a progress line.
    public func render(_ event: TrainingEvent) -> String? {
        switch event {
        case let .step(e): return render(e)
        case let .stageStarted(stage, patch):
            return clip("\(stageLabel(stage)) │ training on \(patch)x\(patch) patches")
        case let .epochEnded(stage, epoch, meanLoss, accuracy):
            var s = "\(stageLabel(stage)) │ epoch \(epoch) done │ mean loss \(Self.fixed(meanLoss, 4))"
            if let accuracy { s += " │ eval acc \(Self.fixed(accuracy * 100, 1))%" }
            return clip(s)
        case let .stageFinished(stage, seconds, finalLoss):
            return clip(
                "\(stageLabel(stage)) │ finished in \(Self.duration(seconds)) │ final loss \(Self.fixed(finalLoss, 4))")
        case let .checkpointSaved(path):
            return clip("checkpoint → \(path)")
        case let .resumed(path, stage, step):
            return clip("resumed \(stageLabel(stage)) after step \(step) from \(path)")
        }
    }

    /// The line for one step.
    public func render(_ e: StepEvent) -> String {
        let digits = String(e.totalSteps).count
        let step = String(repeating: " ", count: max(0, digits - String(e.step).count)) + String(e.step)
        var parts = [
            stageLabel(e.stage), "epoch \(e.epoch)", "step \(step)/\(e.totalSteps)", "loss \(Self.fixed(e.loss, 4))",
        ]
        parts += StandardMetrics.progress(
            activeFraction: e.activeFraction, meanPositiveDistance: e.meanPositiveDistance,
            meanNegativeDistance: e.meanNegativeDistance, accuracy: e.accuracy, isCollapsed: e.isCollapsed)
        parts += e.progress
        parts.append("\(Self.fixed(Float(e.samplesPerSecond), 0)) \(e.sampleUnit)/s")
        parts.append("eta \(Self.duration(e.etaSeconds))")
        return clip(parts.joined(separator: " │ "))
    }

    /// The line for a classifier-training event.
    public func render(_ event: ClassifierEvent) -> String {
        switch event {
        case let .step(epoch, step, steps, loss, rate):
            return clip(
                "classifier │ epoch \(epoch) │ batch \(step)/\(steps)"
                    + " │ loss \(Self.fixed(loss, 4)) │ \(Self.fixed(Float(rate), 0)) img/s"
            )
        case let .epochEnded(r):
            var s =
                "classifier │ epoch \(r.epoch) done"
                + " │ train loss \(Self.fixed(r.trainingLoss, 4))"
                + " │ train acc \(Self.fixed(r.trainingAccuracy * 100, 1))%"
            if let v = r.validationAccuracy { s += " │ val acc \(Self.fixed(v * 100, 1))%" }
            s += " │ \(Self.duration(r.seconds))"
            return clip(s)
        }
    }

    private func stageLabel(_ stage: Int) -> String { stage == 0 ? "end-to-end" : "stage \(stage)" }

    private func clip(_ s: String) -> String {
        width > 0 && s.count > width ? String(s.prefix(width)) : s
    }

    /// `value` with `decimals` digits after the point.
    static func fixed(_ value: Float, _ decimals: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        return String(format: "%.\(decimals)f", Double(value))
    }

    /// h:mm:ss or m:ss.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let t = Int(seconds.rounded())
        let h = t / 3600, m = (t % 3600) / 60, s = t % 60
        let ss = s < 10 ? "0\(s)" : "\(s)"
        if h > 0 { return "\(h):\(m < 10 ? "0" : "")\(m):\(ss)" }
        return "\(m):\(ss)"
    }
}
