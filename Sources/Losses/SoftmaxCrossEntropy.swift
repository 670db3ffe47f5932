import Foundation
import TensorCore

/// Softmax cross-entropy over class logits, the classifier loss for transfer.
///
/// loss = mean over samples of logsumexp(zᵢ) − zᵢ,yᵢ (the log-sum-exp subtracts the row
/// maximum, so large logits do not overflow); gradient = (softmax − onehot) / N.
public struct SoftmaxCrossEntropy: Sendable {
    public init() {}

    /// - Parameters:
    ///   - logits: `[N, C]`.
    ///   - labels: N class indices in `0..<C`.
    /// - Throws: ``LossError`` for a non-matrix or zero-class logit tensor, an empty batch,
    ///   a label count mismatch, a label out of range, or a non-finite logit (naming the row).
    public func evaluate(logits: Tensor, labels: [Int]) throws -> (loss: Float, gradient: Tensor) {
        let (n, c) = try Self.check(logits: logits, labels: labels)
        var gradient = Tensor.zeros([n, c])
        var total = 0.0
        logits.withUnsafeBufferPointer { lb in
            gradient.withUnsafeMutableBufferPointer { gb in
                let invN = 1 / Float(n)
                for i in 0..<n {
                    let z = lb.baseAddress! + i * c, g = gb.baseAddress! + i * c
                    var m = -Float.infinity
                    for k in 0..<c { m = Swift.max(m, z[k]) }
                    var sum: Float = 0
                    for k in 0..<c {
                        let t = exp(z[k] - m)
                        g[k] = t
                        sum += t
                    }
                    let lse = m + log(sum)
                    total += Double(lse - z[labels[i]])
                    let inv = invN / sum
                    for k in 0..<c { g[k] *= inv }
                    g[labels[i]] -= invN
                }
            }
        }
        return (Float(total / Double(n)), gradient)
    }

    /// The fraction of rows whose arg-max logit (first on ties) equals the label.
    /// - Throws: the same ``LossError`` cases as ``evaluate(logits:labels:)``.
    public static func accuracy(logits: Tensor, labels: [Int]) throws -> Float {
        let (n, c) = try check(logits: logits, labels: labels)
        var correct = 0
        logits.withUnsafeBufferPointer { lb in
            for i in 0..<n {
                var best = 0
                for k in 1..<max(c, 1) where lb[i * c + k] > lb[i * c + best] { best = k }
                if best == labels[i] { correct += 1 }
            }
        }
        return Float(correct) / Float(n)
    }

    private static func check(logits: Tensor, labels: [Int]) throws -> (Int, Int) {
        let shape = logits.shape
        guard shape.count == 2, shape[1] > 0 else { throw LossError.invalidLogitShape(shape: shape) }
        let n = shape[0], c = shape[1]
        guard n > 0 else { throw LossError.emptyBatch }
        guard labels.count == n else { throw LossError.labelCountMismatch(expected: n, got: labels.count) }
        for (i, y) in labels.enumerated() where y < 0 || y >= c {
            throw LossError.labelOutOfRange(index: i, label: y, classCount: c)
        }
        let bad: Int? = logits.withUnsafeBufferPointer { b in Kernels.firstNonFinite(b).map { $0 / c } }
        if let row = bad { throw LossError.nonFinite(what: "logits", row: row) }
        return (n, c)
    }
}
