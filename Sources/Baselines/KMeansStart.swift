import Layers
import TensorCore
import Training

/// Starts a stage whose first layer is a ``WhitenedConv2D`` at the filters of a fitted
/// ``KMeansBaseline`` (Coates et al. 2011), expressed in the layer's whitened coordinates
/// (``WhitenedConv2D/setFoldedParameters(weight:bias:scale:)``), so the stage's training
/// refines k-means filters instead of a random draw.
///
/// Why: in the recipe study (Docs/RecipeFindings.md) InfoNCE from this start
/// probed 63.8 % over eight seeds against 62.9 % from a random start and 63.5 % for the
/// k-means filters themselves, and transferred 1.2 points better than the random start.
///
/// The baseline is fitted on image windows, so the stage must read the images: stage 1,
/// or the first stage end to end. Its whitening must already be the one it trains with
/// (the filters are solved for in those coordinates).
public struct KMeansStart: StagePreparation {
    /// The fitted baseline whose folded filters the stage starts from.
    public var baseline: KMeansBaseline
    /// Multiplies W and b in whitened coordinates: the same features up to one scale, which
    /// sets how far an optimiser's fixed-size steps move the filters (1 = exactly k-means).
    public var scale: Float

    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` when `scale` is
    ///   not positive and finite.
    public init(baseline: KMeansBaseline, scale: Float = 1) throws {
        guard scale > 0, scale.isFinite else {
            throw TrainerError.invalidOption(
                stage: nil, option: "KMeansStart.scale", value: "\(scale)", reason: "must be positive and finite")
        }
        self.baseline = baseline
        self.scale = scale
    }

    public func prepare(
        stage: Int, layers: [any Layer], below: FrozenStack, using generator: inout SeededGenerator
    ) throws {
        guard below.layers.isEmpty else {
            throw TrainerError.invalidOption(
                stage: stage, option: "KMeansStart", value: "\(below.layers.count) frozen layers below",
                reason:
                    "the k-means baseline is fitted on image windows; "
                    + "only a stage that reads the images can start from it"
            )
        }
        guard let conv = layers.first as? any WindowWhitening else {
            let found = layers.first.map { String(describing: type(of: $0)) } ?? "no layer"
            throw TrainerError.invalidOption(
                stage: stage, option: "KMeansStart", value: found,
                reason: "the stage's first layer must be a WhitenedConv2D")
        }
        let (weight, bias) = baseline.foldedFilters()
        do {
            try conv.setFoldedParameters(weight: weight, bias: bias, scale: scale)
        } catch {
            throw TrainerError.invalidOption(
                stage: stage, option: "KMeansStart",
                value:
                    "\(baseline.filters) filters of \(baseline.channels)×\(baseline.kernelSize)×\(baseline.kernelSize)",
                reason: "does not fit the stage's WhitenedConv2D: \(error)")
        }
    }
}
