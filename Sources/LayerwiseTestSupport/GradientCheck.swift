import Layers
import TensorCore

/// Finite-difference gradient checks (central differences, Double accumulation).
///
/// Use it to test your own ``Layer`` or loss: the library's own layers and losses are
/// checked with exactly this code. ``GradientCheck/Report/passes(tolerance:)`` fails
/// when a backward pass is wrong; the test suite proves it on a deliberately broken layer.
public enum GradientCheck {
    /// The worst disagreement found, and where.
    public struct Report: CustomStringConvertible, Sendable {
        /// max |analytic − numeric| / max(1, |analytic|, |numeric|) over all checked elements.
        public var maxError: Double
        /// Which tensor and element produced ``maxError``.
        public var worst: String
        /// Elements compared.
        public var checked: Int

        public func passes(tolerance: Double = 1e-2) -> Bool { maxError <= tolerance && checked > 0 }
        public var description: String { "max error \(maxError) at \(worst) over \(checked) elements" }
    }

    /// The numeric gradient of a scalar function by central differences.
    public static func numericGradient(
        at x: Tensor, epsilon: Float = 1e-2, _ f: (Tensor) throws -> Double
    ) rethrows -> Tensor {
        var grad = Tensor.zeros(x.shape)
        var probe = x
        for i in 0..<x.count {
            let original = probe[flat: i]
            probe[flat: i] = original + epsilon
            let plus = try f(probe)
            probe[flat: i] = original - epsilon
            let minus = try f(probe)
            probe[flat: i] = original
            grad[flat: i] = Float((plus - minus) / (2 * Double(epsilon)))
        }
        return grad
    }

    /// Compares two gradients element by element.
    public static func compare(analytic: Tensor, numeric: Tensor, label: String) -> Report {
        precondition(analytic.shape == numeric.shape, "\(label): shapes \(analytic.shape) vs \(numeric.shape)")
        var report = Report(maxError: 0, worst: "\(label)", checked: 0)
        for i in 0..<analytic.count {
            let a = Double(analytic[flat: i]), n = Double(numeric[flat: i])
            let err = abs(a - n) / max(1, abs(a), abs(n))
            report.checked += 1
            if err > report.maxError || !err.isFinite {
                report.maxError = err.isFinite ? err : .infinity
                report.worst = "\(label)[\(i)]: analytic \(a), numeric \(n)"
            }
        }
        return report
    }

    /// Merges reports, keeping the worst.
    public static func worst(_ reports: [Report]) -> Report {
        var out = Report(maxError: 0, worst: "none", checked: 0)
        for r in reports {
            out.checked += r.checked
            if r.maxError >= out.maxError { out.maxError = r.maxError; out.worst = r.worst }
        }
        return out
    }

    /// Checks a layer's input gradient and every parameter gradient in training mode.
    ///
    /// The scalar is L = Σ forward(x) ⊙ R for a fixed random R, so ∂L/∂output = R.
    /// Layers with randomness in training (dropout) must draw the same mask on every
    /// forward for this to hold; see ``Dropout``'s documentation.
    public static func check(
        layer: any Layer, input: Tensor, epsilon: Float = 1e-2, seed: UInt64 = 42
    ) -> Report {
        var rng = SeededGenerator(seed: seed)
        let out = layer.forward(input, mode: .training)
        let upstream = Tensor.uniform(out.shape, low: -1, high: 1, using: &rng)
        func loss(_ x: Tensor) -> Double {
            let y = layer.forward(x, mode: .training)
            var s = 0.0
            y.withUnsafeBufferPointer { yb in
                upstream.withUnsafeBufferPointer { rb in
                    for i in 0..<yb.count { s += Double(yb[i]) * Double(rb[i]) }
                }
            }
            return s
        }
        layer.zeroGradients()
        _ = layer.forward(input, mode: .training)
        let inputGradient = layer.backward(upstream)
        var reports = [
            compare(
                analytic: inputGradient, numeric: numericGradient(at: input, epsilon: epsilon, loss), label: "input")
        ]
        for (name, p) in layer.namedParameters() where !p.isFrozen {
            let analytic = p.gradient
            let saved = p.value
            let numeric = numericGradient(at: saved, epsilon: epsilon) { v in
                p.value = v
                return loss(input)
            }
            p.value = saved
            reports.append(compare(analytic: analytic, numeric: numeric, label: name))
        }
        return worst(reports)
    }
}
