import Foundation
import Layers

/// The same rate at every step.
public struct ConstantSchedule: LearningRateSchedule {
    public let rate: Float
    public init(_ rate: Float) { self.rate = rate }
    public func learningRate(atStep step: Int, totalSteps: Int) -> Float { rate }
}

/// Piecewise-constant decay: the rate is multiplied by `factor` at each milestone.
///
/// Milestones are **fractions of the total steps**, so one schedule fits any run length;
/// the default (divide by 10 after two thirds) is the paper's. A milestone `f` takes effect
/// at step `round(f · totalSteps)` (0-based): with 300 steps and `[2/3]`, steps 0…199 use
/// `initial` and steps 200…299 use `initial · factor`.
public struct StepDecaySchedule: LearningRateSchedule {
    public let initial: Float
    public let factor: Float
    public let milestones: [Double]

    public init(initial: Float, factor: Float = 0.1, milestones: [Double] = [2.0 / 3.0]) {
        self.initial = initial
        self.factor = factor
        self.milestones = milestones
    }

    /// Rejects a negative rate or factor and milestones outside [0, 1].
    public func validate() throws {
        try OptimizerValidation.nonNegative(initial, "initial")
        try OptimizerValidation.nonNegative(factor, "factor")
        for m in milestones where !(m >= 0 && m <= 1) {
            throw OptimizerError.invalidHyperparameter(
                name: "milestones", value: Float(m), reason: "must be fractions in [0, 1]")
        }
    }

    public func learningRate(atStep step: Int, totalSteps: Int) -> Float {
        var rate = initial
        for m in milestones where step >= Int((m * Double(totalSteps)).rounded()) { rate *= factor }
        return rate
    }
}

/// Linear warm-up followed by cosine annealing (Loshchilov & Hutter 2017) to `minimum`.
///
/// Steps `0..<warmupSteps` rise linearly: `initial · (step + 1) / warmupSteps`. After that,
/// with `t = step − warmupSteps` and `T = totalSteps − warmupSteps`,
/// `minimum + (initial − minimum) · (1 + cos(π·t/T)) / 2` — `initial` at the first
/// post-warm-up step, approaching `minimum` at the end (reached at `t = T`, one past the
/// last step, as in PyTorch's `CosineAnnealingLR` with `T_max = T`).
public struct CosineSchedule: LearningRateSchedule {
    public let initial: Float
    public let minimum: Float
    public let warmupSteps: Int

    public init(initial: Float, minimum: Float = 0, warmupSteps: Int = 0) {
        self.initial = initial
        self.minimum = minimum
        self.warmupSteps = warmupSteps
    }

    /// Rejects negative rates, `minimum > initial` and negative warm-up.
    public func validate() throws {
        try OptimizerValidation.nonNegative(initial, "initial")
        try OptimizerValidation.nonNegative(minimum, "minimum")
        if minimum > initial {
            throw OptimizerError.invalidHyperparameter(
                name: "minimum", value: minimum, reason: "must be ≤ initial (\(initial))")
        }
        if warmupSteps < 0 {
            throw OptimizerError.invalidHyperparameter(
                name: "warmupSteps", value: Float(warmupSteps), reason: "must be ≥ 0")
        }
    }

    public func learningRate(atStep step: Int, totalSteps: Int) -> Float {
        if step < warmupSteps { return initial * Float(step + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let t = min(Double(step - warmupSteps), Double(span))
        let cosine = (1 + cos(Double.pi * t / Double(span))) / 2
        return minimum + (initial - minimum) * Float(cosine)
    }
}

/// Shared hyper-parameter checks.
enum OptimizerValidation {
    static func nonNegative(_ value: Float, _ name: String) throws {
        guard value.isFinite, value >= 0 else {
            throw OptimizerError.invalidHyperparameter(name: name, value: value, reason: "must be finite and ≥ 0")
        }
    }
}
