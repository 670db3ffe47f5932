import Foundation
import TensorCore

/// SoftHebb's triangle activation: at every position, subtract the mean over channels,
/// rectify, and raise to a power, `y_c = max(0, x_c − mean_j x_j)^power` (Journé et al.
/// 2023; the same "mean minus" competition as Coates' triangle k-means encoder, on
/// pre-activations instead of distances).
///
/// Works on `[N, C, H, W]` (per position) and `[N, C]` (per row). Backward uses
/// `∂y_c/∂x_j = t_c (δ_cj − 1/C)` with `t_c = power · r_c^(power−1)` where `r_c > 0`, and 0
/// elsewhere (the derivative at the kink is taken as 0, as for ``ReLU``).
public final class TriangleActivation: Layer {
    /// The exponent applied to the rectified, centred values (1 = plain triangle).
    public let power: Float

    public var parameters: [Parameter] { [] }

    /// `r = max(0, x − mean)` of the last training forward.
    private var cachedRectified: Tensor?

    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when `power`
    ///   is not positive and finite.
    public init(power: Float = 1) throws {
        guard power > 0, power.isFinite else {
            throw LayerError.invalidConfiguration(
                layer: "TriangleActivation", option: "power", value: "\(power)", reason: "must be positive and finite")
        }
        self.power = power
    }

    private var name: String { "TriangleActivation(power \(power))" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count >= 2, inputShape.allSatisfy({ $0 >= 0 }), inputShape[1] > 0 else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected [N, C] or [N, C, H, W] with at least one channel")
        }
        return inputShape
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(s.count >= 2 && s[1] > 0, "\(name): input shape \(s); validate with outputShape(for:)")
        let channels = s[1], spatial = s.dropFirst(2).reduce(1, *)
        var rectified = Tensor.uninitialized(shape: s)
        var mean = [Float](repeating: 0, count: spatial)
        let invC = 1 / Float(channels)
        input.withUnsafeBufferPointer { xb in
            rectified.withUnsafeMutableBufferPointer { rb in
                mean.withUnsafeMutableBufferPointer { m in
                    for n in 0..<s[0] {
                        let x = xb.baseAddress! + n * channels * spatial, r = rb.baseAddress! + n * channels * spatial
                        m.update(repeating: 0)
                        for c in 0..<channels {
                            for q in 0..<spatial { m[q] += x[c * spatial + q] }
                        }
                        for q in 0..<spatial { m[q] *= invC }
                        for c in 0..<channels {
                            for q in 0..<spatial { r[c * spatial + q] = Swift.max(0, x[c * spatial + q] - m[q]) }
                        }
                    }
                }
            }
        }
        cachedRectified = mode == .training ? rectified : nil
        guard power != 1 else { return rectified }
        var output = Tensor.uninitialized(shape: s)
        rectified.withUnsafeBufferPointer { rb in
            output.withUnsafeMutableBufferPointer { yb in
                for i in 0..<rb.count { yb[i] = rb[i] > 0 ? Foundation.pow(rb[i], power) : 0 }
            }
        }
        return output
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let r = cachedRectified else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let s = r.shape
        precondition(outputGradient.shape == s, "\(name): output gradient shape \(outputGradient.shape), expected \(s)")
        let channels = s[1], spatial = s.dropFirst(2).reduce(1, *)
        var inputGradient = Tensor.uninitialized(shape: s)
        var mean = [Float](repeating: 0, count: spatial)
        let invC = 1 / Float(channels), p = power
        r.withUnsafeBufferPointer { rb in
            outputGradient.withUnsafeBufferPointer { gb in
                inputGradient.withUnsafeMutableBufferPointer { db in
                    mean.withUnsafeMutableBufferPointer { m in
                        for n in 0..<s[0] {
                            let base = n * channels * spatial
                            let rr = rb.baseAddress! + base, g = gb.baseAddress! + base, d = db.baseAddress! + base
                            m.update(repeating: 0)
                            for c in 0..<channels {
                                for q in 0..<spatial {
                                    let i = c * spatial + q, v = rr[i]
                                    let t: Float = v > 0 ? (p == 1 ? g[i] : g[i] * p * Foundation.pow(v, p - 1)) : 0
                                    d[i] = t
                                    m[q] += t
                                }
                            }
                            for c in 0..<channels {
                                for q in 0..<spatial { d[c * spatial + q] -= m[q] * invC }
                            }
                        }
                    }
                }
            }
        }
        return inputGradient
    }
}
