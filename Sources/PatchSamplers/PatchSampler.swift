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

/// Draws triplets of patches from the data it was built over.
///
/// A sampler owns its data source (an ``ImageDataset`` for neighbour and exemplar
/// positives, a ``SequenceDataset`` for frame pairs), so one protocol covers images and
/// clips alike. Conform to train with your own notion of "similar": ``LayerwiseTrainer``
/// calls only this, passing the patch size it derived from the receptive field of the stack.
public protocol PatchSampler {
    /// Channels of the patches it produces.
    var channels: Int { get }
    /// Fills `batchSize` triplets of `patchSize` × `patchSize` patches.
    /// - Throws: ``SamplerError`` when the data cannot supply them (images smaller than
    ///   the patch, fewer than two images, batch size < 1).
    mutating func sample<G: RandomNumberGenerator>(
        batchSize: Int, patchSize: Int, using generator: inout G
    ) throws -> PatchTriplets
}
