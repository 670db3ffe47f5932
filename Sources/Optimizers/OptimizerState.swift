import Layers
import TensorCore

extension Optimizer {
    public func stateProblem(_ state: [Tensor], for parameter: Parameter) -> String? {
        for (i, slot) in state.enumerated() {
            if let problem = OptimizerState.problem(slot, index: i, shapes: [parameter.value.shape, [1]]) {
                return problem
            }
        }
        return nil
    }
}

/// Checks shared by the optimizers' ``Optimizer/stateProblem(_:for:)``.
enum OptimizerState {
    /// Why slot `index` is unusable: a shape not in `shapes`, or a NaN / infinite value.
    static func problem(_ slot: Tensor, index: Int, shapes: [[Int]]) -> String? {
        guard shapes.contains(slot.shape) else {
            let expected = shapes.map { "\($0)" }.joined(separator: " or ")
            return "slot \(index) has shape \(slot.shape), expected \(expected)"
        }
        return slot.isFinite ? nil : "slot \(index) holds NaN or infinite values"
    }

    /// Why `state` does not have exactly `shapes.count` slots of these shapes, finite.
    static func problem(_ state: [Tensor], shapes: [[Int]]) -> String? {
        guard state.count == shapes.count else { return "\(state.count) slots, expected \(shapes.count)" }
        for (i, (slot, shape)) in zip(state, shapes).enumerated() {
            if let problem = problem(slot, index: i, shapes: [shape]) { return problem }
        }
        return nil
    }
}

extension SGD {
    /// One momentum buffer of the parameter's shape.
    public func stateProblem(_ state: [Tensor], for parameter: Parameter) -> String? {
        OptimizerState.problem(state, shapes: [parameter.value.shape])
    }
}

extension Adam {
    /// First and second moments of the parameter's shape (the second ≥ 0, or the square
    /// root in the update is NaN) and the parameter's step count: a whole number in
    /// 0…2²⁴ (where Float counts exactly).
    public func stateProblem(_ state: [Tensor], for parameter: Parameter) -> String? {
        let shape = parameter.value.shape
        if let problem = OptimizerState.problem(state, shapes: [shape, shape, [1]]) { return problem }
        if state[1].scalars.contains(where: { $0 < 0 }) { return "slot 1 (second moment) holds negative values" }
        let t = state[2][flat: 0]
        guard t >= 0, t <= 16_777_216, t == t.rounded() else {
            return "slot 2 (step count) is \(t), expected a whole number in 0...16777216"
        }
        return nil
    }
}
