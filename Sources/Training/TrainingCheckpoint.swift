import Foundation
import TensorCore

/// The checkpoint format of ``LayerwiseTrainer``, in one value: named tensors plus
/// metadata, stored as a safetensors file written atomically.
///
/// Tensors are named by ``StateKey``. The metadata holds the format, the kind
/// (`"weights"` or `"training"`), the architecture and patch sizes, and for training
/// checkpoints the position (mode, phase, stage, steps done of the total), the running
/// epoch loss (exact bit pattern), the trainer generator's and every owned generator's
/// state words, the optimizer's step count and the seed. The trainer only says what to
/// store and asks this type to save, load and decode it; every malformed field is
/// reported as ``TrainerError/checkpoint(path:reason:)`` naming the file and the field.
struct TrainingCheckpoint {
    static let format = "layerwise-checkpoint-v1"
    static let fileExtension = ".safetensors"

    var tensors: [String: Tensor]
    var metadata: [String: String]
    /// Where the checkpoint was read from (for error messages).
    var path: String

    /// A weights file: tensors, architecture and patch sizes, no training state.
    static func weights(_ tensors: [String: Tensor], architecture: String, patchSizes: [Int]) -> TrainingCheckpoint {
        TrainingCheckpoint(
            tensors: tensors,
            metadata: [
                "format": format, "kind": "weights", "architecture": architecture,
                "patchSizes": patchSizes.map(String.init).joined(separator: ","),
            ], path: "")
    }

    /// A training checkpoint at `position`.
    static func training(
        _ tensors: [String: Tensor], position: LayerwiseTrainer.Position, stage: Int, totalSteps: Int,
        generator: SeededGenerator, optimizerStepCount: Int, seed: UInt64, patchSizes: [Int], architecture: String,
        ownedGenerators: [(name: String, generator: SeededGenerator)]
    ) -> TrainingCheckpoint {
        var metadata: [String: String] = [
            "format": format,
            "kind": "training",
            "mode": position.mode.rawValue,
            "phase": String(position.phase),
            "stage": String(stage),
            "stepsDone": String(position.stepsDone),
            "totalSteps": String(totalSteps),
            "epochLossSum": String(position.epochLossSum.bitPattern, radix: 16),
            "epochLossCount": String(position.epochLossCount),
            "generator": encode(generator),
            "optimizerStepCount": String(optimizerStepCount),
            "seed": String(seed),
            "patchSizes": patchSizes.map(String.init).joined(separator: ","),
            "architecture": architecture,
        ]
        for (name, g) in ownedGenerators { metadata[StateKey.generator(name)] = encode(g) }
        return TrainingCheckpoint(tensors: tensors, metadata: metadata, path: "")
    }

    // MARK: - Files

    /// Writes the checkpoint atomically to `path` (creating missing folders only when asked).
    func save(to path: String, createDirectories: Bool = true) throws {
        do {
            try CheckpointIO.write(tensors, metadata: metadata, to: path, createDirectories: createDirectories)
        } catch {
            throw TrainerError.checkpoint(path: path, reason: "cannot write: \(error)")
        }
    }

    /// Reads a checkpoint of this format written for `architecture`.
    static func load(from path: String, architecture: String) throws -> TrainingCheckpoint {
        let file: (tensors: [String: Tensor], metadata: [String: String])
        do {
            file = try CheckpointIO.read(path: path)
        } catch {
            throw TrainerError.checkpoint(path: path, reason: "unreadable: \(error)")
        }
        guard file.metadata["format"] == format else {
            throw TrainerError.checkpoint(
                path: path, reason: "metadata format is \(file.metadata["format"] ?? "missing"), expected \(format)")
        }
        if let arch = file.metadata["architecture"], arch != architecture {
            throw TrainerError.checkpoint(
                path: path, reason: "written for stages [\(arch)], this trainer has [\(architecture)]")
        }
        return TrainingCheckpoint(tensors: file.tensors, metadata: file.metadata, path: path)
    }

    /// `<mode>-stage<k>-step<steps, 9 digits>.safetensors`.
    static func fileName(mode: PretrainingReport.Mode, stage: Int, stepsDone: Int) -> String {
        let digits = String(stepsDone)
        let padding = String(repeating: "0", count: max(0, 9 - digits.count))
        return "\(mode.rawValue)-\(StateKey.stage(stage))-step\(padding)\(digits)\(fileExtension)"
    }

    /// Parses ``fileName(mode:stage:stepsDone:)`` into (stage, steps).
    static func parseFileName(_ name: String, mode: PretrainingReport.Mode) -> (stage: Int, step: Int)? {
        let prefix = "\(mode.rawValue)-\(StateKey.stagePrefix)"
        guard name.hasPrefix(prefix), name.hasSuffix(fileExtension) else { return nil }
        let core = name.dropFirst(prefix.count).dropLast(fileExtension.count)
        let parts = core.split(separator: "-step", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else { return nil }
        return (k, n)
    }

    // MARK: - Decoding the training state

    private func field(_ key: String) throws -> String {
        guard let v = metadata[key] else {
            throw TrainerError.checkpoint(path: path, reason: "metadata field \"\(key)\" is missing")
        }
        return v
    }

    private func count(_ key: String) throws -> Int {
        guard let v = Int(try field(key)), v >= 0 else {
            throw TrainerError.checkpoint(
                path: path, reason: "metadata field \"\(key)\" = \(metadata[key] ?? "") is not a count")
        }
        return v
    }

    /// The position of a training checkpoint of `mode`, checked against the run's phases
    /// (`totalSteps[i]` is phase `i`'s budget).
    func position(mode: PretrainingReport.Mode, totalSteps: [Int]) throws -> LayerwiseTrainer.Position {
        guard try field("kind") == "training" else {
            throw TrainerError.checkpoint(path: path, reason: "holds weights only, not a training position")
        }
        guard try field("mode") == mode.rawValue else {
            throw TrainerError.checkpoint(
                path: path, reason: "was written by \(metadata["mode"] ?? "") training, not \(mode.rawValue)")
        }
        let phase = try count("phase")
        guard phase < totalSteps.count else {
            throw TrainerError.checkpoint(
                path: path, reason: "phase \(phase) does not exist (this run has \(totalSteps.count))")
        }
        let steps = try count("stepsDone")
        let total = totalSteps[phase]
        guard steps <= total, try count("totalSteps") == total else {
            throw TrainerError.checkpoint(
                path: path,
                reason: "position \(steps)/\(metadata["totalSteps"] ?? "?") does not match "
                    + "the stage's budget of \(total) steps")
        }
        guard let sumBits = UInt64(try field("epochLossSum"), radix: 16) else {
            throw TrainerError.checkpoint(path: path, reason: "metadata field \"epochLossSum\" is malformed")
        }
        return LayerwiseTrainer.Position(
            mode: mode, phase: phase, stepsDone: steps, epochLossSum: Double(bitPattern: sumBits),
            epochLossCount: try count("epochLossCount"))
    }

    /// The trainer's generator.
    func generator() throws -> SeededGenerator {
        do {
            return try SeededGenerator(state: Self.words(metadata["generator"]))
        } catch {
            throw TrainerError.checkpoint(path: path, reason: "metadata field \"generator\" is malformed: \(error)")
        }
    }

    /// The optimizer's step count.
    func optimizerStepCount() throws -> Int {
        guard let s = Int(metadata["optimizerStepCount"] ?? ""), s >= 0 else {
            throw TrainerError.checkpoint(
                path: path, reason: "metadata field \"optimizerStepCount\" is missing or malformed")
        }
        return s
    }

    /// The generator saved for the component `name` (of type `ownerType`, for the message).
    func ownedGenerator(_ name: String, ownerType: String) throws -> SeededGenerator {
        let key = StateKey.generator(name)
        guard let g = try? SeededGenerator(state: Self.words(metadata[key])) else {
            throw TrainerError.checkpoint(
                path: path, reason: "metadata field \"\(key)\" (the generator of \(ownerType)) is missing or malformed")
        }
        return g
    }

    private static func encode(_ g: SeededGenerator) -> String {
        g.state.map { String($0, radix: 16) }.joined(separator: ",")
    }

    private static func words(_ field: String?) -> [UInt64] {
        (field ?? "").split(separator: ",").compactMap { UInt64($0, radix: 16) }
    }
}
