/// Configuration, numerical and checkpoint errors of the trainers. Every case names
/// what is wrong and where, so a user can fix the option or the file.
public enum TrainerError: Error, Equatable, CustomStringConvertible {
    /// An option is out of range. `stage` is nil for trainer-wide options.
    case invalidOption(stage: Int?, option: String, value: String, reason: String)
    /// A layer of a stage does not accept the output of the layers before it (for
    /// example a channel mismatch between stages).
    case incompatibleStage(stage: Int, layer: String, reason: String)
    /// The stack cannot reduce the patch to a 1x1 embedding.
    case receptiveField(stage: Int, patchSize: Int?, reason: String)
    /// A loss, gradient or embedding turned NaN or infinite; nothing was applied.
    /// `epoch` and `step` are 1-based; `stage` is 0 when training end to end.
    case nonFinite(stage: Int, epoch: Int, step: Int, what: String)
    /// A checkpoint cannot be written, read or applied.
    case checkpoint(path: String, reason: String)
    /// ``LayerwiseTrainer/requestStop()`` stopped training after `step` of `stage`.
    case stopped(stage: Int, step: Int)

    public var description: String {
        switch self {
        case let .invalidOption(stage, option, value, reason):
            let at = stage.map { "stage \($0): " } ?? ""
            return "\(at)\(option) = \(value) is invalid: \(reason)"
        case let .incompatibleStage(stage, layer, reason):
            return "stage \(stage), layer \(layer): \(reason)"
        case let .receptiveField(stage, patchSize, reason):
            let p = patchSize.map { " for \($0)x\($0) patches" } ?? ""
            return "stage \(stage)\(p): \(reason)"
        case let .nonFinite(stage, epoch, step, what):
            let s = stage == 0 ? "end-to-end training" : "stage \(stage)"
            return "\(s), epoch \(epoch), step \(step): \(what) is not finite (NaN or infinity); "
                + "no update was applied — lower the learning rate"
        case let .checkpoint(path, reason):
            return "checkpoint \(path): \(reason)"
        case let .stopped(stage, step):
            return "training stopped on request after step \(step) of stage \(stage)"
        }
    }
}
