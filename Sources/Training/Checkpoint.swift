import Foundation
import Layers
import Optimizers
import TensorCore

/// What ``LayerwiseTrainer`` stores in checkpoints (the format is ``TrainingCheckpoint``):
/// - every stage parameter and buffer, `"stage<k>.<layer>.<path>"` (e.g. `"stage1.0.weight"`,
///   BatchNorm running statistics as buffers under the same scheme),
/// - every projection head, `"stage<k>.head.<path>"`,
/// - the auxiliary parameters of the objective being trained, `"stage<k>.objective.<name>"`,
/// - the optimizer state of the phase being trained, `"optimizer.<parameter name>.<slot>"`,
/// - the generators of every layer that owns one (``LayerTree/generatorOwners(_:prefix:)``)
///   and of the objective being trained.
///
/// All names come from ``StateKey``. Files are named `<mode>-stage<k>-step<steps>.safetensors`
/// and written atomically, so a crash never leaves a torn checkpoint and the previous one
/// stays readable.
extension LayerwiseTrainer {
    /// Every stage parameter and buffer (and head parameter) under its qualified name.
    public func namedState(includeHeads: Bool = true) -> [(name: String, parameter: Parameter)] {
        var out: [(name: String, parameter: Parameter)] = []
        for (k, stage) in stages.enumerated() {
            out += StateKey.state(of: stage.layers, prefix: StateKey.stage(k + 1))
            if includeHeads, let head = stage.projectionHead {
                out += StateKey.state(of: head, prefix: StateKey.head(stage: k + 1))
            }
        }
        return out
    }

    /// The values of every stage parameter and buffer (no heads) by qualified name —
    /// what ``TransferClassifier`` loads. Tensors are copy-on-write, so this is cheap.
    public func stateTensors() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, p) in namedState(includeHeads: false) { out[name] = p.value }
        return out
    }

    /// A description of the stack, stored in checkpoints to reject files of another stack.
    var architecture: String {
        stages.map { s in s.layers.map { String(describing: type(of: $0)) }.joined(separator: ",") }
            .joined(separator: " | ")
    }

    /// Writes the stack's weights (stages and heads; no training state) to `path`.
    public func saveWeights(to path: String) throws {
        var tensors: [String: Tensor] = [:]
        for (name, p) in namedState() { tensors[name] = p.value }
        try TrainingCheckpoint.weights(tensors, architecture: architecture, patchSizes: patchSizes).save(to: path)
    }

    /// Loads weights written by ``saveWeights(to:)`` or a training checkpoint into the stack.
    ///
    /// - Throws: ``TrainerError/checkpoint(path:reason:)`` naming the missing tensor, the
    ///   wrong shape or the unreadable file; nothing is changed in that case.
    public func loadWeights(from path: String) throws {
        let file = try TrainingCheckpoint.load(from: path, architecture: architecture)
        try apply(
            file.tensors, path: path, expected: namedState(),
            extraAllowed: { name in
                StateKey.isOptimizerState(name) || StateKey.isObjectiveState(name)
            })
    }

    // MARK: - Training checkpoints

    /// Deletes the temporary files of checkpoint writes whose writer process no longer
    /// exists (`.<checkpoint name>.tmp-<pid>-<random>`, see ``AtomicFile``): a run killed
    /// while writing a checkpoint leaves one behind, and nothing else would remove it.
    /// Files of live processes (a concurrent writer) and any other file are left alone.
    func removeStaleTemporaryFiles(in dir: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        let ext = TrainingCheckpoint.fileExtension
        for name in names where name.hasPrefix(".") {
            guard let marker = name.range(of: ext + ".tmp-") else { continue }
            let base = String(name[name.index(after: name.startIndex)..<marker.lowerBound]) + ext
            let isCheckpoint = [PretrainingReport.Mode.layerwise, .endToEnd].contains {
                TrainingCheckpoint.parseFileName(base, mode: $0) != nil
            }
            guard isCheckpoint, let pid = Int32(name[marker.upperBound...].prefix { $0 != "-" }), pid > 0 else {
                continue
            }
            if kill(pid_t(pid), 0) == -1 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(name))
            }
        }
    }

    /// Checkpoints of `mode` in ``checkpointDirectory``, oldest first.
    func checkpoints(mode: PretrainingReport.Mode) throws -> [String] {
        guard let dir = checkpointDirectory else { return [] }
        guard FileManager.default.fileExists(atPath: dir) else { return [] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: dir)
        } catch {
            throw TrainerError.checkpoint(path: dir, reason: "cannot list the checkpoint directory: \(error)")
        }
        let parsed = names.compactMap { n in TrainingCheckpoint.parseFileName(n, mode: mode).map { (n, $0) } }
        return parsed.sorted { a, b in
            // End-to-end checkpoints are all stage 0; layer-wise ones order by stage, then step.
            (a.1.stage, a.1.step) < (b.1.stage, b.1.step)
        }.map { (dir as NSString).appendingPathComponent($0.0) }
    }

    /// The newest checkpoint of `mode`, if any.
    public func latestCheckpoint(mode: PretrainingReport.Mode) throws -> String? {
        try checkpoints(mode: mode).last
    }

    /// The objective's auxiliary parameters of `phase` under their checkpoint names.
    func objectiveState(_ phase: Phase) -> [(name: String, parameter: Parameter)] {
        let prefix = StateKey.objective(stage: phase.index + 1)
        return StateKey.prefixed(phase.config.objective.auxiliaryParameters, prefix: prefix)
    }

    /// The trainable parameters of `phase` under their optimizer-state names.
    func optimizerState(_ phase: Phase) -> [(name: String, parameter: Parameter)] {
        trainableParameters(phase).map { (StateKey.optimizer($0.name), $0.parameter) }
    }

    func saveCheckpoint(phase: Phase, position: Position) throws -> String {
        guard let dir = checkpointDirectory else { preconditionFailure("saveCheckpoint without a directory") }
        var tensors: [String: Tensor] = [:]
        for (name, p) in namedState() + objectiveState(phase) { tensors[name] = p.value }
        let optimizer = phase.config.optimizer
        tensors.merge(optimizer.exportState(optimizerState(phase))) { a, _ in a }
        let checkpoint = TrainingCheckpoint.training(
            tensors, position: position, stage: phase.stage, totalSteps: phase.config.budget.totalSteps,
            generator: generator, optimizerStepCount: optimizer.stepCount, seed: seed, patchSizes: patchSizes,
            architecture: architecture, ownedGenerators: generatorOwners(phase).map { ($0.name, $0.owner.generator) })
        let path = (dir as NSString).appendingPathComponent(
            TrainingCheckpoint.fileName(mode: position.mode, stage: phase.stage, stepsDone: position.stepsDone))
        // The run created the directory; if it vanished since (removed, or a volume
        // unmounted), fail rather than silently write somewhere new.
        try checkpoint.save(to: path, createDirectories: false)
        if keepCheckpoints > 0 {
            let all = try checkpoints(mode: position.mode)
            for old in all.dropLast(keepCheckpoints) where old != path {
                try? FileManager.default.removeItem(atPath: old)
            }
        }
        return path
    }

    /// Reads and validates the position saved in a training checkpoint.
    func readPosition(path: String, mode: PretrainingReport.Mode, phases: [Phase]) throws -> Position {
        try TrainingCheckpoint.load(from: path, architecture: architecture)
            .position(mode: mode, totalSteps: phases.map(\.config.budget.totalSteps))
    }

    /// Loads a training checkpoint: weights, and — for the phase being resumed — the
    /// objective's auxiliary parameters, optimizer state, step count and generators.
    func loadCheckpoint(path: String, phase: Phase) throws {
        let file = try TrainingCheckpoint.load(from: path, architecture: architecture)
        // Decode the training state before touching any weight, so a bad file changes nothing.
        let restoredGenerator = try file.generator()
        let stepCount = try file.optimizerStepCount()
        let ownedGenerators = try generatorOwners(phase).map { name, owner in
            (owner, try file.ownedGenerator(name, ownerType: "\(type(of: owner))"))
        }
        let named = optimizerState(phase)
        let optimizerNames = Set(named.map(\.name))
        try apply(
            file.tensors, path: path, expected: namedState() + objectiveState(phase),
            extraAllowed: { name in
                if StateKey.isObjectiveState(name) { return true }
                guard StateKey.isOptimizerState(name) else { return false }
                // "optimizer.<param>.<slot>": the parameter must be one this phase trains.
                guard let dot = name.lastIndex(of: ".") else { return false }
                return optimizerNames.contains(String(name[..<dot]))
            })
        let optimizer = phase.config.optimizer
        try checkOptimizerState(file.tensors, named: named, optimizer: optimizer, path: path)
        optimizer.importState(file.tensors, for: named)
        optimizer.stepCount = stepCount
        generator = restoredGenerator
        for (owner, g) in ownedGenerators { owner.generator = g }
    }

    /// The optimizer checks its own layout (``Optimizer/stateProblem(_:for:)``: Adam's two
    /// moments and step count, SGD's momentum buffer), so a slot of the wrong shape or an
    /// impossible value (a negative second moment) cannot reach its update.
    func checkOptimizerState(
        _ tensors: [String: Tensor], named: [(name: String, parameter: Parameter)], optimizer: any Optimizer,
        path: String
    ) throws {
        for (name, p) in named {
            var slots: [Tensor] = []
            while let t = tensors["\(name).\(slots.count)"] { slots.append(t) }
            if !slots.isEmpty, let problem = optimizer.stateProblem(slots, for: p) {
                throw TrainerError.checkpoint(path: path, reason: "optimizer state \(name): \(problem)")
            }
        }
    }

    /// Checks every expected tensor is present with the right shape, then assigns them all.
    func apply(
        _ tensors: [String: Tensor], path: String, expected: [(name: String, parameter: Parameter)],
        extraAllowed: (String) -> Bool
    ) throws {
        let expectedNames = Set(expected.map(\.name))
        for (name, p) in expected {
            guard let t = tensors[name] else {
                throw TrainerError.checkpoint(path: path, reason: "missing tensor \"\(name)\"")
            }
            guard t.shape == p.value.shape else {
                throw TrainerError.checkpoint(
                    path: path, reason: "tensor \"\(name)\" has shape \(t.shape), expected \(p.value.shape)")
            }
            guard t.isFinite else {
                throw TrainerError.checkpoint(path: path, reason: "tensor \"\(name)\" holds NaN or infinite values")
            }
        }
        for name in tensors.keys.sorted() where !expectedNames.contains(name) && !extraAllowed(name) {
            throw TrainerError.checkpoint(
                path: path, reason: "unexpected tensor \"\(name)\" (written for a different stack?)")
        }
        for (name, p) in expected {
            p.value = tensors[name]!  // presence checked above
        }
    }
}
