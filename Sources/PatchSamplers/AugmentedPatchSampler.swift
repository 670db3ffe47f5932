import Augmentations
import Datasets
import TensorCore

/// Exemplar-style positives (Dosovitskiy et al. 2014): the positive is the anchor's own
/// region seen through a random augmentation; negatives are patches of other images.
///
/// Per anchor: a random image and a random context region of (p + 2m) × (p + 2m) pixels,
/// where m is the context margin (default max(1, p / 4), reduced when the image is too
/// small). The anchor is the central p × p patch of the context, un-augmented. The positive
/// is the whole context passed through `augmentation` (so rotations and crops have real
/// pixels to draw on instead of fill) and then centre-cropped to p × p, or bilinearly
/// resized to p × p when the augmentation returned something smaller. Each of the K
/// negatives is a p × p patch at a random location of a random other image.
public struct AugmentedPatchSampler: PatchSampler {
    public let dataset: any ImageDataset
    public let augmentation: any Augmentation
    public let negativesPerAnchor: Int
    /// Requested context margin m (nil = max(1, p / 4)).
    public let contextMargin: Int?
    public let normalization: ChannelNormalization?
    var scratch: [Float]

    public var channels: Int { dataset.imageShape.channels }

    /// - Throws: ``SamplerError`` when `negativesPerAnchor < 1`, `contextMargin < 0`, the data
    ///   holds fewer than 2 images, or the normalisation's channel count differs.
    public init(
        dataset: any ImageDataset, augmentation: any Augmentation, negativesPerAnchor: Int = 1,
        contextMargin: Int? = nil, normalization: ChannelNormalization? = nil
    ) throws {
        guard negativesPerAnchor >= 1 else { throw SamplerError.invalidNegativesPerAnchor(negativesPerAnchor) }
        if let m = contextMargin, m < 0 {
            throw SamplerError.invalidOption(name: "contextMargin", value: "\(m)", reason: "must be ≥ 0")
        }
        guard dataset.count >= 2 else { throw SamplerError.tooFewImages(count: dataset.count, required: 2) }
        try PatchCopy.validate(normalization: normalization, channels: dataset.imageShape.channels)
        self.dataset = dataset
        self.augmentation = augmentation
        self.negativesPerAnchor = negativesPerAnchor
        self.contextMargin = contextMargin
        self.normalization = normalization
        scratch = [Float](repeating: 0, count: dataset.imageShape.elementCount)
    }

    /// The margin actually used for patch size `p` on these images.
    public func effectiveMargin(patchSize p: Int) -> Int {
        let s = dataset.imageShape
        let requested = contextMargin ?? Swift.max(1, p / 4)
        return Swift.max(0, Swift.min(requested, (Swift.min(s.height, s.width) - p) / 2))
    }

    public mutating func sample<G: RandomNumberGenerator>(
        batchSize: Int, patchSize p: Int, using generator: inout G
    ) throws -> PatchTriplets {
        try PatchCopy.validateCommon(batchSize: batchSize, patchSize: p)
        let s = dataset.imageShape
        guard p <= s.height, p <= s.width else {
            throw SamplerError.patchLargerThanImage(
                patchSize: p, needed: p, imageHeight: s.height, imageWidth: s.width, reason: "the patch itself")
        }
        let m = effectiveMargin(patchSize: p), ctx = p + 2 * m
        let layout = TripletLayout(batchSize: batchSize, negativesPerAnchor: negativesPerAnchor)
        let c = s.channels, per = c * p * p
        var patches = Tensor.uninitialized(shape: [layout.rowCount, c, p, p])
        var sources = [Int](repeating: 0, count: layout.rowCount)
        let dataset = self.dataset, augmentation = self.augmentation
        try scratch.withUnsafeMutableBufferPointer { img in
            try patches.withUnsafeMutableBufferPointer { out in
                let base = out.baseAddress!, image = UnsafePointer(img.baseAddress!)
                for i in 0..<batchSize {
                    let index = generator.nextInt(below: dataset.count)
                    dataset.copyPixels(of: index, into: img)
                    let y = generator.nextInt(below: s.height - ctx + 1)
                    let x = generator.nextInt(below: s.width - ctx + 1)
                    let anchorRow = layout.anchorRow(i), positiveRow = layout.positiveRow(i)
                    PatchCopy.copy(
                        from: image, channels: c, height: s.height, width: s.width,
                        y: y + m, x: x + m, size: p, to: base + anchorRow * per)
                    // The context region, augmented (allocates: the augmentation works on Images).
                    var context = Tensor.uninitialized(shape: [c, ctx, ctx])
                    context.withUnsafeMutableBufferPointer {
                        PatchCopy.copy(
                            from: image, channels: c, height: s.height, width: s.width,
                            y: y, x: x, size: ctx, to: $0.baseAddress!)
                    }
                    let augmented = augmentation.apply(to: try Image(context), using: &generator).tensor
                    let shape = augmented.shape
                    guard shape.count == 3, shape[0] == c else {
                        throw SamplerError.augmentationShape(expected: [c, ctx, ctx], got: shape)
                    }
                    let ah = shape[1], aw = shape[2]
                    augmented.withUnsafeBufferPointer { a in
                        if ah >= p && aw >= p {
                            PatchCopy.copy(
                                from: a.baseAddress!, channels: c, height: ah, width: aw,
                                y: (ah - p) / 2, x: (aw - p) / 2, size: p, to: base + positiveRow * per)
                        } else {
                            PatchCopy.resize(
                                a.baseAddress!, channels: c, height: ah, width: aw,
                                to: p, destination: base + positiveRow * per)
                        }
                    }
                    sources[anchorRow] = index
                    sources[positiveRow] = index
                }
                try PatchCopy.fillNegativesFromOtherImages(
                    dataset: dataset, layout: layout, patchSize: p, scratch: img, output: base,
                    sources: &sources, using: &generator)
            }
        }
        if let normalization { try normalization.apply(to: &patches) }
        return PatchTriplets(patches: patches, layout: layout, sourceImages: sources)
    }
}
