import Layers
import TensorCore

/// Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay,
/// with PyTorch's semantics (no dampening):
///
///     g ← ∇θ + weightDecay·θ
///     b ← momentum·b + g          (b starts at 0, so the first step has b = g)
///     d ← nesterov ? g + momentum·b : b      (d = g when momentum = 0)
///     θ ← θ − learningRate·d
///
/// State per parameter: `[b]` when momentum > 0, otherwise none.
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float
    public let nesterov: Bool
    public let weightDecay: Float
    public var slots: [ObjectIdentifier: [Tensor]] = [:]
    public var stepCount = 0

    public init(learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    /// Rejects a learning rate, momentum or weight decay that is negative or not finite,
    /// and Nesterov momentum without momentum.
    public func validate() throws {
        try OptimizerValidation.nonNegative(learningRate, "learningRate")
        try OptimizerValidation.nonNegative(momentum, "momentum")
        try OptimizerValidation.nonNegative(weightDecay, "weightDecay")
        if nesterov && momentum <= 0 {
            throw OptimizerError.invalidHyperparameter(
                name: "nesterov", value: momentum, reason: "Nesterov momentum needs momentum > 0")
        }
    }

    public func apply(to parameter: Parameter, state: inout [Tensor]) {
        let lr = learningRate, mu = momentum, wd = weightDecay, nesterov = nesterov
        let gradient = parameter.gradient
        if mu == 0 {
            parameter.value.withUnsafeMutableBufferPointer { vb in
                gradient.withUnsafeBufferPointer { gb in
                    for i in 0..<vb.count { vb[i] -= lr * (gb[i] + wd * vb[i]) }
                }
            }
            return
        }
        if state.isEmpty { state = [Tensor.zeros(parameter.value.shape)] }
        parameter.value.withUnsafeMutableBufferPointer { vb in
            gradient.withUnsafeBufferPointer { gb in
                state[0].withUnsafeMutableBufferPointer { bb in
                    for i in 0..<vb.count {
                        let g = gb[i] + wd * vb[i]
                        let b = mu * bb[i] + g
                        bb[i] = b
                        vb[i] -= lr * (nesterov ? g + mu * b : b)
                    }
                }
            }
        }
    }
}
