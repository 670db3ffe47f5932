import Layers
import TensorCore

/// Updates parameters from their accumulated gradients.
///
/// As in mlx-swift's optimizer base, a concrete optimizer defines only the rule for
/// **one** parameter (``apply(to:state:)``); the shared ``update(_:)`` loops over the
/// parameters, skips frozen ones and keeps each parameter's state (momentum, moments)
/// keyed by the parameter's identity.
public protocol Optimizer: AnyObject {
    /// The learning rate of the next update; schedules set it before each step.
    var learningRate: Float { get set }
    /// Per-parameter state, keyed by parameter identity. Managed by ``update(_:)``.
    var slots: [ObjectIdentifier: [Tensor]] { get set }
    /// Updates taken so far (Adam's bias correction reads it).
    var stepCount: Int { get set }
    /// Validates the hyper-parameters; called by trainers before training.
    func validate() throws
    /// Applies the rule to one parameter. `state` is empty on the first call and
    /// persists between calls for the same parameter.
    func apply(to parameter: Parameter, state: inout [Tensor])
    /// Why `state` — slots read from a checkpoint — cannot be used for `parameter`, or nil
    /// when ``apply(to:state:)`` can use it safely. The default accepts finite slots of the
    /// parameter's shape or of shape `[1]`; SGD and Adam check their exact layout.
    func stateProblem(_ state: [Tensor], for parameter: Parameter) -> String?
}

extension Optimizer {
    public func validate() throws {
        guard learningRate.isFinite, learningRate >= 0 else {
            throw OptimizerError.invalidHyperparameter(
                name: "learningRate", value: learningRate, reason: "must be finite and ≥ 0")
        }
    }

    /// One step for every non-frozen parameter.
    public func update(_ parameters: [Parameter]) {
        stepCount += 1
        for p in parameters where !p.isFrozen {
            let key = ObjectIdentifier(p)
            var state = slots.removeValue(forKey: key) ?? []
            apply(to: p, state: &state)
            slots[key] = state
        }
    }

    /// The state of the given parameters under stable names `"<name>.<slot index>"`,
    /// for checkpoints. `names` gives each parameter's qualified name.
    public func exportState(_ named: [(name: String, parameter: Parameter)]) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, p) in named {
            for (i, t) in (slots[ObjectIdentifier(p)] ?? []).enumerated() { out["\(name).\(i)"] = t }
        }
        return out
    }

    /// Restores state written by ``exportState(_:)``.
    public func importState(_ state: [String: Tensor], for named: [(name: String, parameter: Parameter)]) {
        for (name, p) in named {
            var tensors: [Tensor] = []
            while let t = state["\(name).\(tensors.count)"] { tensors.append(t) }
            slots[ObjectIdentifier(p)] = tensors.isEmpty ? nil : tensors
        }
    }
}

/// Hyper-parameter errors of optimizers and schedules.
public enum OptimizerError: Error, Equatable, CustomStringConvertible {
    case invalidHyperparameter(name: String, value: Float, reason: String)

    public var description: String {
        switch self {
        case let .invalidHyperparameter(name, value, reason): return "\(name) = \(value) is invalid: \(reason)"
        }
    }
}

/// A learning rate as a function of training progress.
public protocol LearningRateSchedule: Sendable {
    /// Validates the hyper-parameters (throwing ``OptimizerError``); trainers call it
    /// before training, like ``Optimizer/validate()``. The default accepts everything.
    func validate() throws
    /// The rate for `step` (0-based) of `totalSteps`.
    func learningRate(atStep step: Int, totalSteps: Int) -> Float
}

extension LearningRateSchedule {
    public func validate() throws {}
}
