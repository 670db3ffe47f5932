import Layerwise

/// Turns ``TrainingEvent``s into TensorBoard summaries:
///
/// - per step: `stage<k>/loss`, `stage<k>/learning_rate`, `stage<k>/samples_per_second`
///   (triplets or images), and every named metric the objective reports (`StepEvent.metrics`:
///   e.g. `activeFraction`, `meanPositiveDistance`, or `accuracy` for classifying objectives);
/// - per epoch: `stage<k>/epoch_loss`, `stage<k>/probe_accuracy` when an evaluation ran, and,
///   with a trainer attached, the image `stage<k>/filters` (the stage's first convolution as
///   a filter grid, nearest-neighbour upscaled by ``filterScale``) and optionally histograms
///   `stage<k>/<parameter>` of its parameters.
///
/// The x axis is one global step across stages (stage k's steps follow stage k−1's), so the
/// stages' curves lie side by side. Use it as the trainer's event handler:
///
/// ```swift
/// let logger = try TensorBoardLogger(logDirectory: "runs/exp1", trainer: trainer)
/// try trainer.pretrain { event in logger.record(event) }
/// try logger.close()
/// ```
public final class TensorBoardLogger {
    public let writer: TensorBoardWriter
    /// The trainer whose filters and parameters are logged at each epoch's end (optional).
    public let trainer: LayerwiseTrainer?
    /// Screen pixels per filter pixel in the filter images.
    public var filterScale: Int
    /// Whether to log parameter histograms at each epoch's end.
    public var histograms: Bool
    /// The first error met while rendering or writing; recording never throws, so training
    /// continues when a log cannot be written, and the caller checks this at the end.
    public private(set) var firstError: (any Error)?

    private var stageOffset = 0
    private var lastGlobalStep = 0

    public init(
        writer: TensorBoardWriter, trainer: LayerwiseTrainer? = nil, filterScale: Int = 4, histograms: Bool = false
    ) {
        self.writer = writer
        self.trainer = trainer
        self.filterScale = max(1, filterScale)
        self.histograms = histograms
    }

    /// Opens a new event file in `logDirectory`.
    public convenience init(
        logDirectory: String, trainer: LayerwiseTrainer? = nil, filterScale: Int = 4, histograms: Bool = false
    ) throws {
        self.init(
            writer: try TensorBoardWriter(logDirectory: logDirectory), trainer: trainer,
            filterScale: filterScale, histograms: histograms)
    }

    /// Records one training event.
    public func record(_ event: TrainingEvent) {
        switch event {
        case let .stageStarted(stage, _):
            stageOffset = offset(of: stage)
        case let .resumed(_, stage, step):
            stageOffset = offset(of: stage)
            lastGlobalStep = stageOffset + step
        case let .step(e):
            let step = stageOffset + e.step
            lastGlobalStep = step
            let prefix = Self.prefix(e.stage)
            writer.addScalar("\(prefix)/loss", e.loss, step: step)
            writer.addScalar("\(prefix)/learning_rate", e.learningRate, step: step)
            writer.addScalar("\(prefix)/samples_per_second", Float(e.samplesPerSecond), step: step)
            for metric in e.metrics { writer.addScalar("\(prefix)/\(metric.name)", Float(metric.value), step: step) }
        case let .epochEnded(stage, _, meanLoss, accuracy):
            let prefix = Self.prefix(stage)
            writer.addScalar("\(prefix)/epoch_loss", meanLoss, step: lastGlobalStep)
            if let accuracy { writer.addScalar("\(prefix)/probe_accuracy", accuracy, step: lastGlobalStep) }
            logStageState(stage, step: lastGlobalStep)
            flush()
        case .stageFinished, .checkpointSaved:
            flush()
        }
    }

    /// Records a probe accuracy measured outside the trainer (e.g. after pretraining).
    public func recordProbe(accuracy: Float, tag: String = "probe/test_accuracy", step: Int? = nil) {
        writer.addScalar(tag, accuracy, step: step ?? lastGlobalStep)
        flush()
    }

    /// Flushes and closes the event file; throws the first error met while logging.
    public func close() throws {
        try writer.close()
        if let firstError { throw firstError }
    }

    static func prefix(_ stage: Int) -> String { stage == 0 ? "end_to_end" : "stage\(stage)" }

    /// The global step before stage `stage`'s first step.
    private func offset(of stage: Int) -> Int {
        guard let trainer, stage >= 1 else { return stage <= 1 ? 0 : lastGlobalStep }
        return trainer.stages.prefix(stage - 1).reduce(0) { $0 + $1.budget.totalSteps }
    }

    private func flush() {
        do { try writer.flush() } catch { if firstError == nil { firstError = error } }
    }

    private func logStageState(_ stage: Int, step: Int) {
        guard let trainer else { return }
        let stages = stage == 0 ? Array(trainer.stages.indices) : [stage - 1]
        for k in stages where trainer.stages.indices.contains(k) {
            let layers = trainer.stages[k].layers
            if let weights = Self.firstFilters(layers) {
                do {
                    let (rgb, w, h) = try FilterGrid.render(FilterGrid.displayable(weights), scale: filterScale)
                    writer.addImage(
                        "stage\(k + 1)/filters", png: try PNGEncoder.encode(rgb: rgb, width: w, height: h),
                        width: w, height: h, step: step)
                } catch {
                    if firstError == nil { firstError = error }
                }
            }
            guard histograms else { continue }
            for (i, layer) in layers.enumerated() {
                for p in layer.parameters {
                    writer.addHistogram("stage\(k + 1)/\(i).\(p.name)", values: p.value.scalars, step: step)
                }
            }
        }
    }

    /// The first convolution's filters [O, C, k, k] (a whitened conv's folded filters).
    static func firstFilters(_ layers: [any Layer]) -> Tensor? {
        for layer in layers {
            if let whitened = layer as? WhitenedConv2D { return whitened.foldedParameters().weight }
            if let p = layer.parameters.first(where: { $0.value.shape.count == 4 }) { return p.value }
        }
        return nil
    }
}
