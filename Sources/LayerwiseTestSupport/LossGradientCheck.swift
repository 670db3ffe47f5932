import Losses
import TensorCore

/// Finite-difference checks for losses: the loss value as a function of the embeddings
/// (or logits), compared with the analytic gradient the loss returns.
///
/// Use inputs away from non-smooth points (hinge kinks, ties a miner might flip on): a
/// central difference across a kink is not a derivative.
extension GradientCheck {
    /// Checks ``ContrastiveLoss/evaluate(_:)``'s gradient with respect to every embedding.
    public static func check(
        loss: any ContrastiveLoss, batch: TripletEmbeddings, epsilon: Float = 1e-3
    ) throws -> Report {
        let analytic = try loss.evaluate(batch).gradient
        let numeric = try numericGradient(at: batch.embeddings, epsilon: epsilon) { x in
            var probe = batch
            probe.embeddings = x
            return Double(try loss.evaluate(probe).value)
        }
        return compare(analytic: analytic, numeric: numeric, label: "embeddings")
    }

    /// Checks ``SoftmaxCrossEntropy/evaluate(logits:labels:)``'s gradient with respect to the logits.
    public static func check(
        crossEntropy: SoftmaxCrossEntropy, logits: Tensor, labels: [Int], epsilon: Float = 1e-3
    ) throws -> Report {
        let analytic = try crossEntropy.evaluate(logits: logits, labels: labels).gradient
        let numeric = try numericGradient(at: logits, epsilon: epsilon) { x in
            Double(try crossEntropy.evaluate(logits: x, labels: labels).loss)
        }
        return compare(analytic: analytic, numeric: numeric, label: "logits")
    }
}
