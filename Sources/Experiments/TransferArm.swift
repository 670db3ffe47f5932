import Foundation
import Training

/// One arm of the paper's transfer comparison: where the transferred stages' weights come
/// from, and whether they train on the target task.
public enum TransferArm: String, NamedChoice, Sendable {
    /// Every layer trained from its random initialisation.
    case scratch
    /// Contrastively pretrained stages, frozen.
    case contrastiveFrozen = "contrastive_frozen"
    /// Contrastively pretrained stages, fine-tuned with the head.
    case contrastiveFineTuned = "contrastive_finetuned"
    /// Stages pretrained with CIFAR-100 labels, frozen.
    case supervisedFrozen = "supervised_frozen"
    /// Stages pretrained with CIFAR-100 labels, fine-tuned.
    case supervisedFineTuned = "supervised_finetuned"
    /// The k-means baseline's folded convolution (one stage), frozen.
    case kmeansFrozen = "kmeans_frozen"
    /// The k-means baseline's folded convolution (one stage), fine-tuned.
    case kmeansFineTuned = "kmeans_finetuned"

    public static let kind = "transfer arm"

    /// Where an arm's transferred weights come from.
    public enum Source: Sendable, Equatable {
        /// Layer-wise contrastive pretraining: names `"stage<k>.0.*"` of the pretraining stages.
        case contrastive
        /// Supervised pretraining of the classifier itself: already the classifier's names.
        case supervised
        /// The k-means baseline's folded convolution, named like pretraining stage 1's conv.
        case kmeans

        /// Whether the weights already carry the classifier's names (no mapping needed).
        public var carriesClassifierNames: Bool { self == .supervised }
    }

    /// The paper's five arms, in the order results list them.
    public static let paperArms: [TransferArm] = [
        .scratch, .contrastiveFrozen, .contrastiveFineTuned, .supervisedFrozen, .supervisedFineTuned,
    ]

    /// The k-means baseline's arms (one transferred stage only).
    public static let kmeansArms: [TransferArm] = [.kmeansFrozen, .kmeansFineTuned]

    /// The weights' origin (nil for ``scratch``).
    public var source: Source? {
        switch self {
        case .scratch: nil
        case .contrastiveFrozen, .contrastiveFineTuned: .contrastive
        case .supervisedFrozen, .supervisedFineTuned: .supervised
        case .kmeansFrozen, .kmeansFineTuned: .kmeans
        }
    }

    /// How the classifier treats the transferred stages.
    public var mode: TransferMode {
        switch self {
        case .scratch: .scratch
        case .contrastiveFrozen, .supervisedFrozen, .kmeansFrozen: .frozen
        case .contrastiveFineTuned, .supervisedFineTuned, .kmeansFineTuned: .fineTuned
        }
    }

    /// The arms of a comma-separated list such as `"scratch, kmeans_frozen"` (blank
    /// entries are skipped).
    ///
    /// - Throws: ``PaperSetupError/unknownName(kind:value:valid:)`` for the first
    ///   name that is not an arm.
    public static func list(_ text: String) throws(PaperSetupError) -> [TransferArm] {
        var arms: [TransferArm] = []
        for part in text.split(separator: ",") {
            let name = part.trimmingCharacters(in: .whitespaces)
            if !name.isEmpty { arms.append(try TransferArm(named: name)) }
        }
        return arms
    }
}
