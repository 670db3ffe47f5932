import Losses

/// The distance of a triplet loss, chosen by name.
public enum DistanceName: String, NamedChoice, Sendable {
    case cosine
    case euclidean
    case squaredEuclidean = "squared-euclidean"

    public static let kind = "distance"

    /// The library's distance of this name.
    public func make() -> any Distance {
        switch self {
        case .cosine: CosineDistance()
        case .euclidean: EuclideanDistance()
        case .squaredEuclidean: SquaredEuclideanDistance()
        }
    }
}

/// The negative miner of a triplet loss, chosen by name.
public enum MinerName: String, NamedChoice, Sendable {
    case semiHard = "semi-hard"
    case hardest

    public static let kind = "negative miner"

    /// The library's miner of this name.
    public func make() -> any NegativeMiner {
        switch self {
        case .semiHard: SemiHardNegativeMiner()
        case .hardest: HardestNegativeMiner()
        }
    }
}
