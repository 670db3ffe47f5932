import Augmentations
import Datasets
import TensorCore

/// SimCLR-style positives on whole images: each step takes `B` distinct random images and
/// passes each through `views` twice, giving `2B` rows in the layout of
/// `TripletLayout(batchSize: B, negativesPerAnchor: 0)` (first views, then second views).
/// The positive of a view is the other view of its image; a loss with in-batch negatives
/// (``SymmetricInfoNCELoss``, ``InfoNCELoss``) uses the other images' views as negatives.
///
/// The views are whole images, whatever the stack's receptive field: `patchSize` is not
/// used, so the sampler trains a convolutional stage at any depth on the maps it will see
/// when features are extracted. `views` may change the size (a crop), but must return the
/// same shape for every image. No state is kept between steps (each batch is drawn afresh
/// from the generator), so a resumed run draws the batches an uninterrupted one would.
public struct TwoViewImageSampler: PatchSampler {
    public let dataset: any ImageDataset
    /// The random transformation each view goes through (e.g. crop, flip, colour jitter).
    public let views: any Augmentation
    public let normalization: ChannelNormalization?

    public var channels: Int { dataset.imageShape.channels }

    /// - Throws: ``SamplerError`` when the data holds fewer than 2 images or the
    ///   normalisation's channel count differs.
    public init(dataset: any ImageDataset, views: any Augmentation, normalization: ChannelNormalization? = nil) throws {
        guard dataset.count >= 2 else { throw SamplerError.tooFewImages(count: dataset.count, required: 2) }
        try PatchCopy.validate(normalization: normalization, channels: dataset.imageShape.channels)
        self.dataset = dataset
        self.views = views
        self.normalization = normalization
    }

    /// Two views of `batchSize` distinct images (`patchSize` is only checked to be ≥ 1).
    ///
    /// - Throws: ``SamplerError/invalidOption(name:value:reason:)`` for a batch below 2 (the
    ///   other images are the negatives) or for `views` returning images of different shapes
    ///   (named `views`), ``SamplerError/tooFewImages(count:required:)`` when the data holds
    ///   fewer than `batchSize` images.
    public mutating func sample<G: RandomNumberGenerator>(
        batchSize: Int, patchSize: Int, using generator: inout G
    ) throws -> PatchTriplets {
        try PatchCopy.validateCommon(batchSize: batchSize, patchSize: patchSize)
        guard batchSize >= 2 else {
            throw SamplerError.invalidOption(
                name: "batchSize", value: "\(batchSize)",
                reason: "two-view batches need at least 2 images: the other images are the negatives")
        }
        guard batchSize <= dataset.count else {
            throw SamplerError.tooFewImages(count: dataset.count, required: batchSize)
        }
        let images = Self.distinctIndices(batchSize, below: dataset.count, using: &generator)
        let rows: Tensor
        do {
            rows = try makeBatch(
                from: dataset, indices: images + images, augmentation: views, normalization: normalization,
                using: &generator
            ).images
        } catch let DatasetError.shapeMismatch(_, expected, got) {
            throw SamplerError.invalidOption(
                name: "views", value: "an augmentation returning \(got)",
                reason: "every view must have one shape (\(expected))")
        }
        return PatchTriplets(
            patches: rows, layout: TripletLayout(batchSize: batchSize, negativesPerAnchor: 0),
            sourceImages: images + images)
    }

    /// `count` distinct indices in `0..<n`, in draw order (rejection: `count` ≤ n).
    static func distinctIndices<G: RandomNumberGenerator>(_ count: Int, below n: Int, using g: inout G) -> [Int] {
        var chosen: [Int] = [], seen = Set<Int>()
        chosen.reserveCapacity(count)
        if count * 2 > n {  // dense: a partial Fisher–Yates over all indices
            var all = Array(0..<n)
            for i in 0..<count { all.swapAt(i, i + g.nextInt(below: n - i)) }
            return Array(all[..<count])
        }
        while chosen.count < count {
            let i = g.nextInt(below: n)
            if seen.insert(i).inserted { chosen.append(i) }
        }
        return chosen
    }
}
