import Datasets
import TensorCore

/// A batch of patch triplets in the Siamese layout: one tensor holding anchors,
/// positives and negatives (see ``TripletLayout``), ready for one forward pass.
public struct PatchTriplets: Sendable {
    /// [layout.rowCount, C, p, p].
    public var patches: Tensor
    public var layout: TripletLayout
    /// The source image (or clip) of every row, same order as ``patches``.
    public var sourceImages: [Int]

    public init(patches: Tensor, layout: TripletLayout, sourceImages: [Int]) {
        self.patches = patches
        self.layout = layout
        self.sourceImages = sourceImages
    }
}

/// Draws triplets of patches from a dataset.
///
/// Conform to train with your own notion of "similar": ``LayerwiseTrainer`` calls only
/// this, passing the patch size it derived from the receptive field of the stack.
public protocol PatchSampler {
    /// Fills `batchSize` triplets of `patchSize` × `patchSize` patches.
    /// - Throws: ``SamplerError`` when the dataset cannot supply them (too small, too few images).
    mutating func sample<G: RandomNumberGenerator>(
        batchSize: Int, patchSize: Int, from dataset: any ImageDataset, using generator: inout G
    ) throws -> PatchTriplets
}
