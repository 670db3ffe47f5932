import Foundation
import Layers
import TensorCore

/// Adam (Kingma & Ba 2015) with bias correction, and AdamW (Loshchilov & Hutter 2019)
/// through ``decoupledWeightDecay`` or ``adamW(learningRate:beta1:beta2:epsilon:weightDecay:)``.
///
///     g ← ∇θ (+ weightDecay·θ when coupled, i.e. L2 as in torch.optim.Adam)
///     θ ← θ·(1 − lr·weightDecay)        (decoupled only, as in torch.optim.AdamW)
///     m ← β₁m + (1 − β₁)g ;  v ← β₂v + (1 − β₂)g²
///     θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
///
/// `t` is the number of updates **this parameter** has received (kept in its state next to
/// m and v, like PyTorch's per-parameter `step`). It equals the optimizer's ``stepCount``
/// whenever all parameters are updated every step, and stays correct when an optimizer
/// outlives a stage or a parameter is unfrozen late. State per parameter: `[m, v, [t]]`.
public final class Adam: Optimizer {
    public var learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    public let weightDecay: Float
    public let decoupledWeightDecay: Bool
    public var slots: [ObjectIdentifier: [Tensor]] = [:]
    public var stepCount = 0

    public init(
        learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
        weightDecay: Float = 0, decoupledWeightDecay: Bool = false
    ) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
    }

    /// AdamW: Adam with decoupled weight decay (PyTorch's default decay 0.01).
    public static func adamW(
        learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
        weightDecay: Float = 1e-2
    ) -> Adam {
        Adam(
            learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
            weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    /// Rejects a negative learning rate or weight decay, betas outside [0, 1) and a
    /// non-positive epsilon.
    public func validate() throws {
        try OptimizerValidation.nonNegative(learningRate, "learningRate")
        for (value, name) in [(beta1, "beta1"), (beta2, "beta2")] where !(value >= 0 && value < 1) {
            throw OptimizerError.invalidHyperparameter(name: name, value: value, reason: "must be in [0, 1)")
        }
        guard epsilon.isFinite, epsilon > 0 else {
            throw OptimizerError.invalidHyperparameter(
                name: "epsilon", value: epsilon, reason: "must be finite and > 0")
        }
        try OptimizerValidation.nonNegative(weightDecay, "weightDecay")
    }

    public func apply(to parameter: Parameter, state: inout [Tensor]) {
        if state.count != 3 {
            state = [Tensor.zeros(parameter.value.shape), Tensor.zeros(parameter.value.shape), Tensor.zeros([1])]
        }
        let t = state[2][flat: 0] + 1
        state[2][flat: 0] = t
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = epsilon
        let correction1 = Float(1 - Foundation.pow(Double(b1), Double(t)))
        let correction2 = Float(1 - Foundation.pow(Double(b2), Double(t)))
        let coupled = decoupledWeightDecay ? 0 : weightDecay
        let shrink = decoupledWeightDecay ? 1 - lr * weightDecay : 1
        let stepSize = lr / correction1
        let inverseRootCorrection2 = 1 / correction2.squareRoot()
        let rule = UpdateRule(
            beta1: b1, beta2: b2, coupledDecay: coupled, shrink: shrink, stepSize: stepSize,
            inverseRootCorrection2: inverseRootCorrection2, epsilon: eps)
        let gradient = parameter.gradient
        // Move the moments out of the array so each is uniquely referenced (no copy).
        var first = state[0], second = state[1]
        let step = state[2]
        state = []
        defer { state = [first, second, step] }
        parameter.value.withUnsafeMutableBufferPointer { vb in
            gradient.withUnsafeBufferPointer { gb in
                first.withUnsafeMutableBufferPointer { mb in
                    second.withUnsafeMutableBufferPointer { sb in
                        rule.apply(
                            count: vb.count, value: vb.baseAddress!, gradient: gb.baseAddress!, first: mb.baseAddress!,
                            second: sb.baseAddress!)
                    }
                }
            }
        }
    }

    /// One step's update of a parameter's elements, eight at a time: the same operations in
    /// the same order for every element as a scalar loop (so the same bits), without the
    /// scalar loop's cost, which was 13 % of a wide probe's readout.
    private struct UpdateRule {
        let beta1, beta2, coupledDecay, shrink, stepSize, inverseRootCorrection2, epsilon: Float

        @inline(__always)
        func update(_ theta: inout SIMD8<Float>, _ g: SIMD8<Float>, _ m: inout SIMD8<Float>, _ v: inout SIMD8<Float>) {
            let g = g + coupledDecay * theta
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            theta = theta * shrink - stepSize * m / (v.squareRoot() * inverseRootCorrection2 + epsilon)
        }

        func apply(
            count: Int, value: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>,
            first: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>
        ) {
            // n values from p + i; eight are one unaligned vector, the tail goes lane by lane.
            @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int, _ n: Int) -> SIMD8<Float> {
                if n == 8 { return UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) }
                var lanes = SIMD8<Float>()
                for k in 0..<n { lanes[k] = p[i + k] }
                return lanes
            }
            @inline(__always) func store(_ lanes: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) {
                if n == 8 { return UnsafeMutableRawPointer(p + i).storeBytes(of: lanes, as: SIMD8<Float>.self) }
                for k in 0..<n { p[i + k] = lanes[k] }
            }
            @inline(__always) func step(_ i: Int, _ n: Int) {
                var theta = load(value, i, n), m = load(first, i, n), v = load(second, i, n)
                update(&theta, load(gradient, i, n), &m, &v)
                store(theta, value, i, n)
                store(m, first, i, n)
                store(v, second, i, n)
            }
            var i = 0
            while i + 8 <= count {
                step(i, 8)
                i += 8
            }
            if i < count { step(i, count - i) }
        }
    }
}
