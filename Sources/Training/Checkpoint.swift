import Foundation
import Layers
import Optimizers
import TensorCore

/// Checkpoints of ``LayerwiseTrainer`` in safetensors files.
///
/// One file holds
/// - every stage parameter and buffer, `"stage<k>.<layer>.<name>"` (e.g. `"stage1.0.weight"`,
///   BatchNorm running statistics as buffers under the same scheme),
/// - every projection head, `"stage<k>.head.<name>"`,
/// - the auxiliary parameters of the objective being trained, `"stage<k>.objective.<name>"`,
/// - the optimizer state of the phase being trained, `"optimizer.<parameter name>.<slot>"`,
/// - in the metadata: format, mode, position (phase, stage, steps done), the generator's
///   four state words, the optimizer's step count, the running epoch loss, the seed,
///   the patch sizes and the layer types of every stage.
///
/// Files are named `<mode>-stage<k>-step<steps>.safetensors` and written atomically, so a
/// crash never leaves a torn checkpoint and the previous one stays readable.
extension LayerwiseTrainer {
    static let checkpointFormat = "layerwise-checkpoint-v1"
    static let checkpointExtension = ".safetensors"

    /// Every stage parameter and buffer (and head parameter) under its qualified name.
    public func namedState(includeHeads: Bool = true) -> [(name: String, parameter: Parameter)] {
        var out: [(name: String, parameter: Parameter)] = []
        for (k, stage) in stages.enumerated() {
            out += Self.named(stage.layers, prefix: "stage\(k + 1)")
            out += Self.namedBuffers(stage.layers, prefix: "stage\(k + 1)")
            if includeHeads, let head = stage.projectionHead {
                out += head.parameters.map { ("stage\(k + 1).head.\($0.name)", $0) }
                out += head.buffers.map { ("stage\(k + 1).head.\($0.name)", $0) }
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
        let metadata = [
            "format": Self.checkpointFormat, "kind": "weights", "architecture": architecture,
            "patchSizes": patchSizes.map(String.init).joined(separator: ","),
        ]
        do {
            try CheckpointIO.write(tensors, metadata: metadata, to: path)
        } catch {
            throw TrainerError.checkpoint(path: path, reason: "cannot write: \(error)")
        }
    }

    /// Loads weights written by ``saveWeights(to:)`` or a training checkpoint into the stack.
    ///
    /// - Throws: ``TrainerError/checkpoint(path:reason:)`` naming the missing tensor, the
    ///   wrong shape or the unreadable file; nothing is changed in that case.
    public func loadWeights(from path: String) throws {
        let file = try readCheckpointFile(path)
        try apply(file.tensors, path: path, expected: namedState(), extraAllowed: { name in
            name.hasPrefix("optimizer.") || name.contains(".objective.")
        })
    }

    // MARK: - Training checkpoints

    func checkpointName(mode: PretrainingReport.Mode, stage: Int, stepsDone: Int) -> String {
        let digits = String(stepsDone)
        return "\(mode.rawValue)-stage\(stage)-step\(String(repeating: "0", count: max(0, 9 - digits.count)))\(digits)"
            + Self.checkpointExtension
    }

    /// Parses `<mode>-stage<k>-step<n>.safetensors` into (k, n).
    static func parseCheckpointName(_ name: String, mode: PretrainingReport.Mode) -> (stage: Int, step: Int)? {
        let prefix = "\(mode.rawValue)-stage"
        guard name.hasPrefix(prefix), name.hasSuffix(checkpointExtension) else { return nil }
        let core = name.dropFirst(prefix.count).dropLast(checkpointExtension.count)
        let parts = core.split(separator: "-step", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else { return nil }
        return (k, n)
    }

    /// Deletes the temporary files of checkpoint writes whose writer process no longer
    /// exists (`.<checkpoint name>.tmp-<pid>-<random>`, see ``AtomicFile``): a run killed
    /// while writing a checkpoint leaves one behind, and nothing else would remove it.
    /// Files of live processes (a concurrent writer) and any other file are left alone.
    func removeStaleTemporaryFiles(in dir: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where name.hasPrefix(".") {
            guard let marker = name.range(of: Self.checkpointExtension + ".tmp-") else { continue }
            let base = String(name[name.index(after: name.startIndex)..<marker.lowerBound]) + Self.checkpointExtension
            let isCheckpoint = [PretrainingReport.Mode.layerwise, .endToEnd].contains {
                Self.parseCheckpointName(base, mode: $0) != nil
            }
            guard isCheckpoint, let pid = Int32(name[marker.upperBound...].prefix { $0 != "-" }), pid > 0 else { continue }
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
        let parsed = names.compactMap { n in Self.parseCheckpointName(n, mode: mode).map { (n, $0) } }
        return parsed.sorted { a, b in
            // End-to-end checkpoints are all stage 0; layer-wise ones order by stage, then step.
            (a.1.stage, a.1.step) < (b.1.stage, b.1.step)
        }.map { (dir as NSString).appendingPathComponent($0.0) }
    }

    /// The newest checkpoint of `mode`, if any.
    public func latestCheckpoint(mode: PretrainingReport.Mode) throws -> String? {
        try checkpoints(mode: mode).last
    }

    func saveCheckpoint(phase: Phase, position: Position) throws -> String {
        guard let dir = checkpointDirectory else { preconditionFailure("saveCheckpoint without a directory") }
        var tensors: [String: Tensor] = [:]
        for (name, p) in namedState() { tensors[name] = p.value }
        let trainable = trainableParameters(phase)
        for p in phase.config.objective.auxiliaryParameters {
            tensors["stage\(phase.index + 1).objective.\(p.name)"] = p.value
        }
        let optimizer = phase.config.optimizer
        let state = optimizer.exportState(trainable.map { ("optimizer.\($0.name)", $0.parameter) })
        tensors.merge(state) { a, _ in a }
        let g = generator.state
        var metadata: [String: String] = [
            "format": Self.checkpointFormat,
            "kind": "training",
            "mode": position.mode.rawValue,
            "phase": String(position.phase),
            "stage": String(phase.stage),
            "stepsDone": String(position.stepsDone),
            "totalSteps": String(phase.config.budget.totalSteps),
            "epochLossSum": String(position.epochLossSum.bitPattern, radix: 16),
            "epochLossCount": String(position.epochLossCount),
            "generator": g.map { String($0, radix: 16) }.joined(separator: ","),
            "optimizerStepCount": String(optimizer.stepCount),
            "seed": String(seed),
            "patchSizes": patchSizes.map(String.init).joined(separator: ","),
            "architecture": architecture,
        ]
        for (name, owner) in generatorOwners(phase) {
            metadata["generator.\(name)"] = owner.generator.state.map { String($0, radix: 16) }.joined(separator: ",")
        }
        let path = (dir as NSString).appendingPathComponent(
            checkpointName(mode: position.mode, stage: phase.stage, stepsDone: position.stepsDone))
        do {
            // The run created the directory; if it vanished since (removed, or a volume
            // unmounted), fail rather than silently write somewhere new.
            try CheckpointIO.write(tensors, metadata: metadata, to: path, createDirectories: false)
        } catch {
            throw TrainerError.checkpoint(path: path, reason: "cannot write: \(error)")
        }
        if keepCheckpoints > 0 {
            let all = try checkpoints(mode: position.mode)
            for old in all.dropLast(keepCheckpoints) where old != path {
                try? FileManager.default.removeItem(atPath: old)
            }
        }
        return path
    }

    func readCheckpointFile(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file: (tensors: [String: Tensor], metadata: [String: String])
        do {
            file = try CheckpointIO.read(path: path)
        } catch {
            throw TrainerError.checkpoint(path: path, reason: "unreadable: \(error)")
        }
        guard file.metadata["format"] == Self.checkpointFormat else {
            throw TrainerError.checkpoint(
                path: path, reason: "metadata format is \(file.metadata["format"] ?? "missing"), expected \(Self.checkpointFormat)")
        }
        if let arch = file.metadata["architecture"], arch != architecture {
            throw TrainerError.checkpoint(path: path, reason: "written for stages [\(arch)], this trainer has [\(architecture)]")
        }
        return file
    }

    /// Reads and validates the position saved in a training checkpoint.
    func readPosition(path: String, mode: PretrainingReport.Mode, phaseCount: Int, phases: [Phase]) throws -> Position {
        let file = try readCheckpointFile(path)
        let m = file.metadata
        func field(_ key: String) throws -> String {
            guard let v = m[key] else { throw TrainerError.checkpoint(path: path, reason: "metadata field \"\(key)\" is missing") }
            return v
        }
        func int(_ key: String) throws -> Int {
            guard let v = Int(try field(key)), v >= 0 else {
                throw TrainerError.checkpoint(path: path, reason: "metadata field \"\(key)\" = \(m[key] ?? "") is not a count")
            }
            return v
        }
        guard try field("kind") == "training" else {
            throw TrainerError.checkpoint(path: path, reason: "holds weights only, not a training position")
        }
        guard try field("mode") == mode.rawValue else {
            throw TrainerError.checkpoint(path: path, reason: "was written by \(m["mode"] ?? "") training, not \(mode.rawValue)")
        }
        let phase = try int("phase")
        guard phase < phaseCount else {
            throw TrainerError.checkpoint(path: path, reason: "phase \(phase) does not exist (this run has \(phaseCount))")
        }
        let steps = try int("stepsDone")
        let total = phases[phase].config.budget.totalSteps
        guard steps <= total, try int("totalSteps") == total else {
            throw TrainerError.checkpoint(
                path: path, reason: "position \(steps)/\(m["totalSteps"] ?? "?") does not match the stage's budget of \(total) steps")
        }
        guard let sumBits = UInt64(try field("epochLossSum"), radix: 16) else {
            throw TrainerError.checkpoint(path: path, reason: "metadata field \"epochLossSum\" is malformed")
        }
        return Position(
            mode: mode, phase: phase, stepsDone: steps, epochLossSum: Double(bitPattern: sumBits),
            epochLossCount: try int("epochLossCount"))
    }

    /// Loads a training checkpoint: weights, and — for the phase being resumed — the
    /// objective's auxiliary parameters, optimizer state, step count and generator.
    func loadCheckpoint(path: String, phase: Phase, restoreTrainingState: Bool) throws {
        let file = try readCheckpointFile(path)
        var expected = namedState()
        let aux = phase.config.objective.auxiliaryParameters.map {
            (name: "stage\(phase.index + 1).objective.\($0.name)", parameter: $0)
        }
        if restoreTrainingState { expected += aux }
        // Parse the training state before touching any weight, so a bad file changes nothing.
        var restoredGenerator: SeededGenerator?
        var stepCount = 0
        if restoreTrainingState {
            let words = (file.metadata["generator"] ?? "").split(separator: ",").compactMap { UInt64($0, radix: 16) }
            do {
                restoredGenerator = try SeededGenerator(state: words)
            } catch {
                throw TrainerError.checkpoint(path: path, reason: "metadata field \"generator\" is malformed: \(error)")
            }
            guard let s = Int(file.metadata["optimizerStepCount"] ?? ""), s >= 0 else {
                throw TrainerError.checkpoint(path: path, reason: "metadata field \"optimizerStepCount\" is missing or malformed")
            }
            stepCount = s
        }
        var ownedGenerators: [(any GeneratorOwning, SeededGenerator)] = []
        if restoreTrainingState {
            for (name, owner) in generatorOwners(phase) {
                let key = "generator.\(name)"
                let words = (file.metadata[key] ?? "").split(separator: ",").compactMap { UInt64($0, radix: 16) }
                guard let g = try? SeededGenerator(state: words) else {
                    throw TrainerError.checkpoint(
                        path: path, reason: "metadata field \"\(key)\" (the generator of \(type(of: owner))) is missing or malformed")
                }
                ownedGenerators.append((owner, g))
            }
        }
        let trainable = trainableParameters(phase)
        let optimizerNames = Set(trainable.map { "optimizer.\($0.name)" })
        try apply(file.tensors, path: path, expected: expected, extraAllowed: { name in
            if name.contains(".objective.") { return true }
            guard name.hasPrefix("optimizer.") else { return false }
            // "optimizer.<param>.<slot>": the parameter must be one this phase trains.
            guard let dot = name.lastIndex(of: ".") else { return false }
            return !restoreTrainingState || optimizerNames.contains(String(name[..<dot]))
        })
        if restoreTrainingState, let restoredGenerator {
            let optimizer = phase.config.optimizer
            let named = trainable.map { (name: "optimizer.\($0.name)", parameter: $0.parameter) }
            for (name, p) in named {
                var slots: [Tensor] = []
                while let t = file.tensors["\(name).\(slots.count)"] { slots.append(t) }
                // The optimizer knows its layout (Adam: two moments and a step count), so a
                // slot of the wrong shape cannot make its update read out of bounds.
                if !slots.isEmpty, let problem = optimizer.stateProblem(slots, for: p) {
                    throw TrainerError.checkpoint(path: path, reason: "optimizer state \(name): \(problem)")
                }
            }
            optimizer.importState(file.tensors, for: named)
            optimizer.stepCount = stepCount
            generator = restoredGenerator
            for (owner, g) in ownedGenerators { owner.generator = g }
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
            throw TrainerError.checkpoint(path: path, reason: "unexpected tensor \"\(name)\" (written for a different stack?)")
        }
        for (name, p) in expected {
            p.value = tensors[name]!  // presence checked above
        }
    }
}
