import Foundation
import Layers
import Losses
import Optimizers
import TensorCore

/// What one stage (or the end-to-end run) did.
public struct StageReport: Sendable, Equatable {
    /// The stage (1-based; 0 for end-to-end training).
    public var stage: Int
    /// The patch size it trained on.
    public var patchSize: Int
    /// Optimizer steps run in this call (fewer than the budget after a resume).
    public var steps: Int
    /// Wall-clock seconds of this call's steps (including sampling and evaluation).
    public var seconds: Double
    /// Mean loss of the last epoch.
    public var finalLoss: Float
    /// Mean loss of every epoch that ended in this call, in order.
    public var epochLosses: [Float]
    /// Evaluation accuracy after every evaluated epoch (epoch number, accuracy).
    public var evaluations: [EpochEvaluation]
    /// The step the stage resumed after, if it continued from a checkpoint.
    public var resumedAfterStep: Int?
}

/// An evaluation result at the end of an epoch.
public struct EpochEvaluation: Sendable, Equatable {
    /// The epoch (1-based) after which the evaluation ran.
    public var epoch: Int
    /// What ``LayerwiseTrainer/evaluation`` returned, in [0, 1].
    public var accuracy: Float
    public init(epoch: Int, accuracy: Float) {
        self.epoch = epoch
        self.accuracy = accuracy
    }
}

/// The outcome of ``LayerwiseTrainer/pretrain(resume:events:)`` or
/// ``LayerwiseTrainer/pretrainEndToEnd(resume:events:)``.
public struct PretrainingReport: Sendable, Equatable {
    /// Greedy stage by stage, or the whole stack at once.
    public enum Mode: String, Sendable, Equatable {
        case layerwise
        case endToEnd
    }

    public var mode: Mode
    /// One report per stage trained in this call (one entry, stage 0, end to end).
    public var stages: [StageReport]
    /// Wall-clock seconds of the whole call.
    public var totalSeconds: Double
    /// The last stage's final loss.
    public var finalLoss: Float? { stages.last?.finalLoss }
}

/// Features of a frozen stack, for evaluation and transfer: runs the given layers in
/// inference mode.
public struct FeatureExtractor {
    /// The layers, in order.
    public let layers: [any Layer]

    public init(layers: [any Layer]) { self.layers = layers }

    /// The features of a batch `[N, C, H, W]` (inference mode).
    public func callAsFunction(_ input: Tensor) -> Tensor {
        LayerChain.forward(layers, input, mode: .inference)
    }

    /// The feature shape for an input shape (batch first).
    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        var s = inputShape
        for l in layers { s = try l.outputShape(for: s) }
        return s
    }
}

/// Greedy layer-wise pretraining of a stack of stages with per-stage objectives.
///
/// Stage `k` trains on patches exactly large enough for stages `1…k` to reduce them to a
/// 1x1 map (``patchSizes``), while stages `1…k−1` are frozen and run in inference mode.
/// The same class trains the same stack end to end (``pretrainEndToEnd(resume:events:)``)
/// so the two modes are timed and scored by the same code.
///
/// Configuration errors (shapes, channels, batch size, learning rate, loss
/// hyper-parameters) are thrown by the initializer, before any training.
public final class LayerwiseTrainer {
    /// The stage used in events and reports for end-to-end training.
    public static let endToEndStage = 0

    /// The stages, bottom first.
    public let stages: [Stage]
    /// Channels of the raw images.
    public let inputChannels: Int
    /// The patch size of stage 1.
    public let firstPatchSize: Int
    /// The seed of the trainer's generator (sampling and objective randomness).
    public let seed: UInt64
    /// The patch size each stage trains on (stage 1 first).
    public let patchSizes: [Int]

    /// Where checkpoints go (nil = no checkpoints).
    public var checkpointDirectory: String?
    /// Write a checkpoint every this many steps of a stage (0 = only when a stage ends).
    public var checkpointEvery: Int = 0
    /// How many checkpoints of a mode to keep; older ones are deleted after a newer one
    /// is safely written.
    public var keepCheckpoints: Int = 2
    /// Run ``evaluation`` every this many epochs (nil = never).
    public var evaluateEvery: Int?
    /// Scores the features of stages `1…stage` (e.g. with ``LinearProbe`` or ``KNNClassifier``)
    /// and returns an accuracy in [0, 1]. Must not depend on the trainer's randomness.
    public var evaluation: ((_ stage: Int, _ features: FeatureExtractor) throws -> Float)?

    /// The ranks of a data-parallel job (default: one process). Every rank builds the same
    /// trainer; each step's gradients are averaged over the ranks, the ranks agree on
    /// non-finite values and stop requests, only rank 0 writes checkpoints and sees events,
    /// and every rank resumes from the same checkpoint.
    public var communicator: any Communicator = SingleProcessCommunicator()
    /// How each global batch is split into independently sampled shards (nil: one shard per
    /// rank when there are several ranks; one process then draws from ``generator``).
    /// One process with `ShardedSampling(shards: N)` computes what N ranks compute.
    public var sampling: ShardedSampling?

    /// The trainer's generator: every sample and objective draw comes from it (with
    /// ``sampling`` or several ranks, the batches come from per-shard generators instead), and
    /// its state is saved in checkpoints.
    public internal(set) var generator: SeededGenerator
    /// Set by ``requestStop()``; share it with a ``SignalStop`` (or anything on another
    /// thread) to stop a run from outside. A request made before a run starts stops it
    /// after its first step.
    public var stopRequest = StopRequest()
    /// The stop decided for the current step: with several ranks, any rank's request, agreed
    /// in ``agreedStep`` so every rank stops after the same step.
    var stopRequested = false

    /// Validates the whole configuration and derives ``patchSizes``.
    ///
    /// - Throws: ``TrainerError`` naming the stage and the option: no stages, batch size
    ///   < 1, empty budget, invalid optimizer or loss hyper-parameters, a schedule giving a
    ///   negative or non-finite rate, patch channels ≠ `inputChannels`, layers that do
    ///   not fit each other, or a stack that cannot reduce its patch to 1x1.
    public init(stages: [Stage], inputChannels: Int, firstPatchSize: Int, seed: UInt64) throws {
        guard !stages.isEmpty else {
            throw TrainerError.invalidOption(
                stage: nil, option: "stages", value: "[]", reason: "need at least one stage")
        }
        guard inputChannels > 0 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "inputChannels", value: "\(inputChannels)", reason: "must be ≥ 1")
        }
        guard firstPatchSize > 0 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "firstPatchSize", value: "\(firstPatchSize)", reason: "must be ≥ 1")
        }
        for (i, stage) in stages.enumerated() {
            try Self.validate(stage, number: i + 1, inputChannels: inputChannels)
        }
        let sizes = try ReceptiveField.patchSizes(
            stages: stages.map(\.layers), inputChannels: inputChannels, firstPatchSize: firstPatchSize)
        self.stages = stages
        self.inputChannels = inputChannels
        self.firstPatchSize = firstPatchSize
        self.seed = seed
        self.patchSizes = sizes
        self.generator = SeededGenerator(seed: seed)
        // Each objective must be able to supply its stage's patch size (e.g. patches that
        // fit in the images): otherwise the lower stages would train first and then fail.
        for k in stages.indices {
            do {
                try stages[k].objective.validate(patchSize: sizes[k], batchSize: stages[k].batchSize)
            } catch {
                throw TrainerError.invalidOption(
                    stage: k + 1, option: "patchSize", value: "\(sizes[k])",
                    reason: "the stage's objective cannot supply \(sizes[k])x\(sizes[k]) patches: \(error)")
            }
        }
        // Heads must accept the flattened stage output.
        for k in stages.indices {
            _ = try embeddingFeatures(
                layers: stages[0...k].map(\.layers), head: stages[k].projectionHead,
                patchSize: sizes[k], stage: k + 1)
        }
        // Checkpoint names must be unique (and each parameter used once).
        var seen = Set<String>(), identities = Set<ObjectIdentifier>()
        for (name, p) in namedState() {
            guard seen.insert(name).inserted, identities.insert(ObjectIdentifier(p)).inserted else {
                throw TrainerError.invalidOption(
                    stage: nil, option: "stages", value: name,
                    reason:
                        "a parameter name or a layer occurs twice in the stack; give every stage its own layer objects")
            }
        }
    }

    static func validate(_ stage: Stage, number k: Int, inputChannels: Int) throws {
        guard !stage.layers.isEmpty else {
            throw TrainerError.invalidOption(
                stage: k, option: "layers", value: "[]", reason: "a stage needs at least one layer")
        }
        guard stage.batchSize >= 1 else {
            throw TrainerError.invalidOption(
                stage: k, option: "batchSize", value: "\(stage.batchSize)", reason: "must be ≥ 1")
        }
        let b = stage.budget
        guard b.totalSteps >= 1, b.stepsPerEpoch >= 1, b.epochCount >= 1 else {
            throw TrainerError.invalidOption(
                stage: k, option: "budget", value: "\(b)", reason: "needs at least one step per epoch and one epoch")
        }
        do {
            try stage.optimizer.validate()
        } catch let OptimizerError.invalidHyperparameter(name, value, reason) {
            throw TrainerError.invalidOption(stage: k, option: "optimizer.\(name)", value: "\(value)", reason: reason)
        } catch {
            throw TrainerError.invalidOption(
                stage: k, option: "optimizer", value: "\(type(of: stage.optimizer))", reason: "\(error)")
        }
        do {
            try stage.objective.validate()
        } catch let LossError.invalidHyperparameter(name, value, reason) {
            throw TrainerError.invalidOption(stage: k, option: "loss.\(name)", value: "\(value)", reason: reason)
        } catch let error as TrainerError {
            throw error
        } catch {
            throw TrainerError.invalidOption(
                stage: k, option: "objective", value: "\(type(of: stage.objective))", reason: "\(error)")
        }
        do {
            try stage.schedule.validate()
        } catch let OptimizerError.invalidHyperparameter(name, value, reason) {
            throw TrainerError.invalidOption(stage: k, option: "schedule.\(name)", value: "\(value)", reason: reason)
        }
        for step in Set([0, b.totalSteps / 2, b.totalSteps - 1]) {
            let lr = stage.schedule.learningRate(atStep: step, totalSteps: b.totalSteps)
            guard lr.isFinite, lr >= 0 else {
                throw TrainerError.invalidOption(
                    stage: k, option: "schedule", value: "learning rate \(lr) at step \(step)",
                    reason: "must be finite and ≥ 0")
            }
        }
        if let c = stage.objective.inputChannels, c != inputChannels {
            throw TrainerError.invalidOption(
                stage: k, option: "objective.inputChannels", value: "\(c)",
                reason: "the objective's patches have \(c) channels but the trainer's inputChannels is \(inputChannels)"
            )
        }
    }

    /// Width `D` of the flattened embedding of `layers` (+ head) for a `patchSize` patch.
    func embeddingFeatures(layers: [[any Layer]], head: (any Layer)?, patchSize: Int, stage: Int) throws -> Int {
        guard case let .success(r) = ReceptiveField.trace(layers, channels: inputChannels, size: patchSize) else {
            throw TrainerError.receptiveField(
                stage: stage, patchSize: patchSize, reason: "the stack does not accept the patch")
        }
        var d = r.output.dropFirst().reduce(1, *)
        if let head {
            do {
                d = try head.outputShape(for: [1, d]).dropFirst().reduce(1, *)
            } catch {
                throw TrainerError.incompatibleStage(stage: stage, layer: "projectionHead", reason: "\(error)")
            }
        }
        return d
    }

    /// Asks a running ``pretrain(resume:events:)`` to stop after the current step (for
    /// example from the event handler or a signal handler). A checkpoint is written
    /// first when ``checkpointDirectory`` is set; the call then throws
    /// ``TrainerError/stopped(stage:step:)``.
    public func requestStop() { stopRequest.request() }

    /// The layers of stages `1…stage`, in inference mode, as a feature extractor.
    public func featureExtractor(throughStage stage: Int) -> FeatureExtractor {
        FeatureExtractor(layers: stages.prefix(max(0, min(stage, stages.count))).flatMap(\.layers))
    }

    // MARK: - Training

    /// One unit of training: a stage on top of frozen stages, or the whole stack.
    struct Phase {
        let stage: Int
        let index: Int
        let frozen: [any Layer]
        let trainable: [any Layer]
        let head: (any Layer)?
        let config: Stage
        let patchSize: Int
        let embeddingFeatures: Int
    }

    /// Greedy layer-wise pretraining: stage `k` trains on ``patchSizes``[k−1] patches
    /// with stages `1…k−1` frozen (inference mode); only stage `k`, its head and its
    /// objective's auxiliary parameters are updated.
    ///
    /// - Parameters:
    ///   - resume: continue from the latest layer-wise checkpoint in
    ///     ``checkpointDirectory`` (a no-op when there is none).
    ///   - events: called synchronously with progress.
    /// - Throws: ``TrainerError/nonFinite(stage:epoch:step:what:)`` on divergence (the
    ///   offending update is not applied and earlier checkpoints stay intact), sampler, loss
    ///   and checkpoint errors; ``DirectoryLockError/inUse(directory:lockFile:pid:)`` when
    ///   another run holds ``checkpointDirectory``.
    @discardableResult
    public func pretrain(resume: Bool = false, events: (TrainingEvent) -> Void = { _ in }) throws -> PretrainingReport {
        try pretrainStages(from: 1, resume: resume, events: events)
    }

    /// ``pretrain(resume:events:)`` from stage `firstStage` (1-based) up: the stages below it
    /// are used as they are (e.g. loaded from an earlier run) and never change. Resume with
    /// the same `firstStage`.
    ///
    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` for a `firstStage`
    ///   outside `1…stages.count`, and what ``pretrain(resume:events:)`` throws.
    @discardableResult
    public func pretrainStages(
        from firstStage: Int, resume: Bool = false, events: (TrainingEvent) -> Void = { _ in }
    ) throws -> PretrainingReport {
        guard (1...stages.count).contains(firstStage) else {
            throw TrainerError.invalidOption(
                stage: nil, option: "firstStage", value: "\(firstStage)", reason: "must be in 1…\(stages.count)")
        }
        var phases: [Phase] = []
        for k in (firstStage - 1)..<stages.count {
            let d = try embeddingFeatures(
                layers: stages[0...k].map(\.layers), head: stages[k].projectionHead,
                patchSize: patchSizes[k], stage: k + 1)
            phases.append(
                Phase(
                    stage: k + 1, index: k, frozen: stages[..<k].flatMap(\.layers), trainable: stages[k].layers,
                    head: stages[k].projectionHead, config: stages[k], patchSize: patchSizes[k], embeddingFeatures: d))
        }
        return try run(phases, mode: .layerwise, resume: resume, events: events)
    }

    /// Trains the same stack with the top stage's objective, optimizer, schedule, batch
    /// size, budget and head, on the largest patch size, all stages at once. Use a
    /// separately built trainer (fresh layers) to compare with ``pretrain(resume:events:)``.
    @discardableResult
    public func pretrainEndToEnd(
        resume: Bool = false, events: (TrainingEvent) -> Void = { _ in }
    ) throws -> PretrainingReport {
        let top = stages[stages.count - 1]
        let p = patchSizes[patchSizes.count - 1]
        let d = try embeddingFeatures(layers: stages.map(\.layers), head: top.projectionHead, patchSize: p, stage: 0)
        let phase = Phase(
            stage: Self.endToEndStage, index: stages.count - 1, frozen: [], trainable: stages.flatMap(\.layers),
            head: top.projectionHead, config: top, patchSize: p, embeddingFeatures: d)
        return try run([phase], mode: .endToEnd, resume: resume, events: events)
    }

    /// Runs the ``Stage/preparation`` of the stage a phase trains (layer-wise) or of every
    /// stage in order on top of the untrained ones below it (end to end). On resume the
    /// checkpoint loaded afterwards restores the prepared buffers exactly.
    func prepareStages(of phase: Phase, mode: PretrainingReport.Mode) throws {
        if mode == .layerwise {
            try phase.config.preparation?.prepare(
                stage: phase.stage, layers: phase.trainable, below: FrozenStack(layers: phase.frozen),
                communicator: communicator, using: &generator)
            return
        }
        for k in stages.indices {
            try stages[k].preparation?.prepare(
                stage: k + 1, layers: stages[k].layers, below: FrozenStack(layers: stages[..<k].flatMap(\.layers)),
                communicator: communicator, using: &generator)
        }
    }

    /// Where a run stands, as saved in checkpoints.
    struct Position: Equatable {
        var mode: PretrainingReport.Mode
        /// Index into the run's phases.
        var phase: Int
        /// Steps of that phase completed.
        var stepsDone: Int
        /// Running sums of the current epoch (so resumed epoch means are exact).
        var epochLossSum: Double
        var epochLossCount: Int

        static func start(of phase: Int, mode: PretrainingReport.Mode) -> Position {
            Position(mode: mode, phase: phase, stepsDone: 0, epochLossSum: 0, epochLossCount: 0)
        }
    }

    /// The checkpoint a run resumes from and the position it holds.
    struct ResumePoint {
        let path: String
        let position: Position
    }

    /// What one phase has done so far in this call.
    struct PhaseProgress {
        let start: ContinuousClock.Instant
        let firstStep: Int
        let isResumed: Bool
        var samples = 0
        var epochLosses: [Float] = []
        var evaluations: [EpochEvaluation] = []
        var lastEpochMean: Float = .nan
    }

    private func run(
        _ phases: [Phase], mode: PretrainingReport.Mode, resume: Bool, events handler: (TrainingEvent) -> Void
    ) throws -> PretrainingReport {
        // Events go to rank 0's handler only.
        let isRoot = communicator.isRoot
        func events(_ event: TrainingEvent) { if isRoot { handler(event) } }
        try validateSharding(phases)
        guard checkpointEvery >= 0 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "checkpointEvery", value: "\(checkpointEvery)", reason: "must be ≥ 0")
        }
        try prepareCheckpointDirectory()
        // A directory another live run writes to is refused (DirectoryLockError.inUse). Only rank 0
        // writes checkpoints, so only rank 0 holds the lock (the other ranks of the same run share it).
        let lock = try checkpointDirectory.flatMap { isRoot ? try DirectoryLock(directory: $0) : nil }
        defer { lock?.release() }
        let runStart = ContinuousClock.now
        let resumePoint = resume ? try latestPosition(mode: mode, phases: phases) : nil
        if resume { try agreeOnResumePosition(resumePoint?.position) }
        defer { for s in stages { for l in s.layers { l.setFrozen(false) } } }
        var reports: [StageReport] = []
        for number in (resumePoint?.position.phase ?? 0)..<phases.count {
            let resumed = resumePoint.flatMap { $0.position.phase == number ? $0 : nil }
            let report = try train(phases[number], number: number, mode: mode, resumingFrom: resumed, events: events)
            if let report { reports.append(report) }
        }
        let seconds = Self.seconds(ContinuousClock.now - runStart)
        return PretrainingReport(mode: mode, stages: reports, totalSeconds: seconds)
    }

    /// An unusable checkpoint directory must fail now, not when the first checkpoint is due.
    func prepareCheckpointDirectory() throws {
        guard let dir = checkpointDirectory else { return }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw TrainerError.checkpoint(path: dir, reason: "the checkpoint directory exists and is not a directory")
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            // Prefer the operating system's words ("Not a directory") to Foundation's wrapper.
            let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? any Error
            let code = underlying.map { ($0 as NSError).code }
            let why = code.map { String(cString: strerror(Int32($0))) } ?? "\(error)"
            throw TrainerError.checkpoint(path: dir, reason: "cannot create the checkpoint directory: \(why)")
        }
        // Rank 0 writes checkpoints; another rank must not delete its temporary file.
        if communicator.isRoot { removeStaleTemporaryFiles(in: dir) }
    }

    /// The latest checkpoint of `mode` and its position, if there is one.
    func latestPosition(mode: PretrainingReport.Mode, phases: [Phase]) throws -> ResumePoint? {
        guard let latest = try latestCheckpoint(mode: mode) else { return nil }
        return ResumePoint(path: latest, position: try readPosition(path: latest, mode: mode, phases: phases))
    }

    /// Trains one phase from its start or from `resumingFrom`; nil when nothing was left.
    private func train(
        _ phase: Phase, number: Int, mode: PretrainingReport.Mode, resumingFrom resumed: ResumePoint?,
        events: (TrainingEvent) -> Void
    ) throws -> StageReport? {
        var position = resumed?.position ?? .start(of: number, mode: mode)
        try enter(phase, mode: mode)
        if let resumed {
            // enter() drew from the generator; loading restores its saved state.
            try loadCheckpoint(path: resumed.path, phase: phase)
            events(.resumed(path: resumed.path, stage: phase.stage, step: position.stepsDone))
        }
        let total = phase.config.budget.totalSteps
        if position.stepsDone >= total { return nil }
        // Nothing below the trainable block learns, so its first layer need not compute
        // an input gradient (saves a GEMM and a fold per step).
        let savedInputGradientFlags = Self.configureInputGradients(phase.trainable + (phase.head.map { [$0] } ?? []))
        defer { Self.restoreInputGradients(savedInputGradientFlags) }
        events(.stageStarted(stage: phase.stage, patchSize: phase.patchSize))
        let named = trainableParameters(phase)
        let context = StageStepContext(
            stage: phase.stage, patchSize: phase.patchSize, batchSize: phase.config.batchSize,
            frozen: FrozenStack(layers: phase.frozen),
            trainable: TrainableBlock(layers: phase.trainable, head: phase.head))
        var progress = PhaseProgress(
            start: ContinuousClock.now, firstStep: position.stepsDone, isResumed: resumed != nil)
        for step in progress.firstStep..<total {
            let stats = try trainStep(step, of: phase, context: context, parameters: named)
            position.stepsDone = step + 1
            position.epochLossSum += Double(stats.loss)
            position.epochLossCount += 1
            progress.samples += stats.samples
            events(.step(stepEvent(stats, step: step, of: phase, progress: progress)))
            if (step + 1) % phase.config.budget.stepsPerEpoch == 0 || step + 1 == total {
                try endEpoch(of: phase, step: step, position: &position, progress: &progress, events: events)
            }
            try checkpointOrStop(phase, step: step, position: position, events: events)
        }
        return finish(phase, position: position, progress: progress, events: events)
    }

    /// Freezes everything, thaws what `phase` trains, and runs the stage preparations and
    /// the objective's `prepare`.
    func enter(_ phase: Phase, mode: PretrainingReport.Mode) throws {
        for s in stages { for l in s.layers { l.setFrozen(true) } }
        for l in phase.trainable { l.setFrozen(false) }
        phase.head?.setFrozen(false)
        try prepareStages(of: phase, mode: mode)
        try phase.config.objective.prepare(embeddingFeatures: phase.embeddingFeatures, using: &generator)
        for p in phase.config.objective.auxiliaryParameters { p.isFrozen = false }
    }

    /// One optimizer step (0-based `step`): schedule, zeroed gradients, the objective's
    /// step (on this rank's shards, gradients averaged over the ranks: ``agreedStep``), the
    /// non-finite checks, the update. A non-finite value stops every rank before the update.
    func trainStep(
        _ step: Int, of phase: Phase, context: StageStepContext,
        parameters named: [(name: String, parameter: Parameter)]
    ) throws -> StepStatistics {
        let config = phase.config
        config.optimizer.learningRate = config.schedule.learningRate(atStep: step, totalSteps: config.budget.totalSteps)
        for (_, p) in named { p.zeroGradient() }
        let stats = try agreedStep(phase: phase, context: context, step: step, named: named)
        let epoch = step / config.budget.stepsPerEpoch + 1
        try updateKeepingWeightsFinite(config.optimizer, named) {
            .nonFinite(stage: phase.stage, epoch: epoch, step: step + 1, what: $0)
        }
        return stats
    }

    /// What is not finite after a step — the loss, a metric (a hinge can swallow NaN
    /// distances, max(0, NaN) = 0, the diagnostics still show it) or a gradient — or nil.
    static func nonFinite(_ stats: StepStatistics, parameters: [(name: String, parameter: Parameter)]) -> String? {
        guard stats.loss.isFinite else { return "loss" }
        if let metric = stats.metrics.first(where: { !$0.value.isFinite }) { return metric.divergenceLabel }
        if let (name, _) = parameters.first(where: { !$0.parameter.gradient.isFinite }) { return "gradient of \(name)" }
        return nil
    }

    func stepEvent(_ stats: StepStatistics, step: Int, of phase: Phase, progress: PhaseProgress) -> StepEvent {
        let total = phase.config.budget.totalSteps
        let elapsed = Self.seconds(ContinuousClock.now - progress.start)
        let done = step + 1 - progress.firstStep
        return StepEvent(
            stage: phase.stage, epoch: step / phase.config.budget.stepsPerEpoch + 1, step: step + 1, totalSteps: total,
            loss: stats.loss, statistics: stats, samplesPerSecond: elapsed > 0 ? Double(progress.samples) / elapsed : 0,
            sampleUnit: phase.config.objective.sampleUnit,
            etaSeconds: elapsed / Double(done) * Double(total - step - 1),
            learningRate: phase.config.optimizer.learningRate)
    }

    /// Closes the epoch that `step` ended: its mean loss, the evaluation when due, the event.
    func endEpoch(
        of phase: Phase, step: Int, position: inout Position, progress: inout PhaseProgress,
        events: (TrainingEvent) -> Void
    ) throws {
        let epoch = step / phase.config.budget.stepsPerEpoch + 1
        let mean = Float(position.epochLossSum / Double(max(1, position.epochLossCount)))
        position.epochLossSum = 0
        position.epochLossCount = 0
        progress.lastEpochMean = mean
        progress.epochLosses.append(mean)
        var accuracy: Float?
        if let every = evaluateEvery, every > 0, epoch % every == 0, let evaluation {
            accuracy = try evaluation(phase.stage, FeatureExtractor(layers: phase.frozen + phase.trainable))
            progress.evaluations.append(EpochEvaluation(epoch: epoch, accuracy: accuracy ?? 0))
        }
        events(.epochEnded(stage: phase.stage, epoch: epoch, meanLoss: mean, evaluationAccuracy: accuracy))
    }

    /// Writes a checkpoint when one is due (every ``checkpointEvery`` steps, at the end of
    /// the phase, on a stop request) and honours a stop request.
    func checkpointOrStop(_ phase: Phase, step: Int, position: Position, events: (TrainingEvent) -> Void) throws {
        let done = step + 1
        // Read the request once: one from another thread must not skip the checkpoint. With
        // several ranks only the agreed flag counts (a late request waits for the next step).
        let stopping = stopRequested || (communicator.size == 1 && stopRequest.take())
        stopRequested = false
        let due =
            (checkpointEvery > 0 && done % checkpointEvery == 0)
            || done == phase.config.budget.totalSteps || stopping
        if due, checkpointDirectory != nil, communicator.isRoot {
            events(.checkpointSaved(path: try saveCheckpoint(phase: phase, position: position)))
        }
        if stopping {
            throw TrainerError.stopped(stage: phase.stage, step: done)
        }
    }

    func finish(
        _ phase: Phase, position: Position, progress: PhaseProgress, events: (TrainingEvent) -> Void
    ) -> StageReport {
        var last = progress.lastEpochMean
        if last.isNaN, position.epochLossCount > 0 {
            last = Float(position.epochLossSum / Double(position.epochLossCount))
        }
        let seconds = Self.seconds(ContinuousClock.now - progress.start)
        events(.stageFinished(stage: phase.stage, seconds: seconds, finalLoss: last))
        return StageReport(
            stage: phase.stage, patchSize: phase.patchSize, steps: phase.config.budget.totalSteps - progress.firstStep,
            seconds: seconds, finalLoss: last, epochLosses: progress.epochLosses, evaluations: progress.evaluations,
            resumedAfterStep: progress.isResumed ? progress.firstStep : nil)
    }

    /// Applies one optimizer update; if it leaves a weight NaN or infinite (finite but huge
    /// gradients or optimizer state can overflow), undoes it — weights, optimizer state and
    /// step count — and throws `error(what)`, so no silent NaN weight survives a step.
    func updateKeepingWeightsFinite(
        _ optimizer: any Optimizer, _ named: [(name: String, parameter: Parameter)], error: (String) -> TrainerError
    ) throws {
        let parameters = named.map(\.parameter)
        let (values, slots, stepCount) = (parameters.map(\.value), optimizer.slots, optimizer.stepCount)
        optimizer.update(parameters)
        guard let bad = named.first(where: { !$0.parameter.value.isFinite }) else { return }
        for (p, v) in zip(parameters, values) { p.value = v }
        optimizer.slots = slots
        optimizer.stepCount = stepCount
        throw error("\(bad.name) after the optimizer update")
    }

    /// The parameters a phase updates, with their checkpoint names.
    func trainableParameters(_ phase: Phase) -> [(name: String, parameter: Parameter)] {
        var out: [(name: String, parameter: Parameter)] = []
        if phase.stage == Self.endToEndStage {
            for k in stages.indices { out += StateKey.parameters(of: stages[k].layers, prefix: StateKey.stage(k + 1)) }
        } else {
            out += StateKey.parameters(of: phase.trainable, prefix: StateKey.stage(phase.stage))
        }
        if let head = phase.head {
            out += head.namedParameters(prefix: StateKey.head(stage: phase.index + 1))
        }
        return out + objectiveState(phase)
    }

    /// ``LayerTree/configureInputGradients(_:)``: the first trained leaf skips its input gradient.
    static func configureInputGradients(_ layers: [any Layer]) -> [LayerTree.InputGradientFlag] {
        LayerTree.configureInputGradients(layers)
    }

    static func restoreInputGradients(_ saved: [LayerTree.InputGradientFlag]) {
        LayerTree.restoreInputGradients(saved)
    }

    /// Every component with a generator of its own that a checkpoint of `phase` carries:
    /// the layers of all stages and heads that own one (``LayerTree/generatorOwners(_:prefix:)``,
    /// named by path) and the phase objective's own generators (as `"stage<k>.objective.<name>"`).
    func generatorOwners(_ phase: Phase) -> [(name: String, owner: any GeneratorOwning)] {
        var out: [(name: String, owner: any GeneratorOwning)] = []
        for (k, stage) in stages.enumerated() {
            out += LayerTree.generatorOwners(LayerTree.indexed(stage.layers), prefix: StateKey.stage(k + 1))
            if let head = stage.projectionHead {
                out += LayerTree.generatorOwners([("", head)], prefix: StateKey.head(stage: k + 1))
            }
        }
        let objective = StateKey.objective(stage: phase.index + 1)
        return out + phase.config.objective.ownedGenerators.map { (LayerTree.join(objective, $0.name), $0.owner) }
    }

    static func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
