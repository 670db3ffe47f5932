import Augmentations
import Datasets
import TensorCore

/// Neighbouring patches of one image are positives; patches of other images are negatives.
///
/// The scheme of the reference paper, per anchor:
/// 1. pick a random image and a random window of (p + maxOffset) × (p + maxOffset) pixels;
/// 2. the anchor and the positive are two p × p patches inside that window, at offsets
///    (ay, ax) and (py, px) drawn uniformly from 0...maxOffset, redrawn until they differ.
///    So the positive is shifted by at most `maxOffset` pixels in each axis and never
///    coincides with the anchor (with `maxOffset == 0` it *is* the anchor's location, which
///    only makes sense together with `positiveAugmentation`);
/// 3. the optional `positiveAugmentation` transforms the positive patch (it must keep its shape);
/// 4. each of the K negatives is a p × p patch at a uniformly random location of a uniformly
///    random **other** image. With `sameImageNegatives`, negatives instead come from the
///    anchor's own image at a location that shares no pixel with the anchor — top-left
///    corners at Chebyshev distance ≥ p, i.e. `|y − ay| ≥ p` or `|x − ax| ≥ p` — drawn
///    uniformly among all such locations.
///
/// Two options make the pretext task harder (see Docs/RecipeFindings.md):
/// - `viewAugmentation` transforms every patch independently (anchor, positive and each
///   negative), e.g. colour jitter and random grayscale, so colour alone no longer
///   identifies a patch;
/// - `flipsImages` mirrors each source image with probability ½ *before* its patches are
///   cut, so anchor and positive share the flip (independent flips would make positives
///   flip-invariant and penalise oriented edges).
///
/// Patches are written directly into one [B·(2+K), C, p, p] tensor; the sampler keeps one
/// image-sized scratch buffer, so there is no per-patch allocation unless an augmentation runs.
public struct NeighborPatchSampler: PatchSampler {
    public let dataset: any ImageDataset
    public let maxOffset: Int
    public let negativesPerAnchor: Int
    public let sameImageNegatives: Bool
    public let positiveAugmentation: (any Augmentation)?
    /// Applied independently to every patch (anchor, positive, negatives), before normalisation.
    public let viewAugmentation: (any Augmentation)?
    /// Mirror each source image with probability ½ before cutting its patches.
    public let flipsImages: Bool
    public let normalization: ChannelNormalization?
    var scratch: [Float]

    public var channels: Int { dataset.imageShape.channels }

    /// - Throws: ``SamplerError`` when `maxOffset < 0`, `negativesPerAnchor < 1`, the data holds
    ///   fewer than 2 images (1 with `sameImageNegatives`), or the normalisation's channel count differs.
    public init(
        dataset: any ImageDataset, maxOffset: Int = 1, negativesPerAnchor: Int = 1,
        sameImageNegatives: Bool = false, positiveAugmentation: (any Augmentation)? = nil,
        viewAugmentation: (any Augmentation)? = nil, flipsImages: Bool = false,
        normalization: ChannelNormalization? = nil
    ) throws {
        guard maxOffset >= 0 else {
            throw SamplerError.invalidOption(name: "maxOffset", value: "\(maxOffset)", reason: "must be ≥ 0")
        }
        guard negativesPerAnchor >= 1 else { throw SamplerError.invalidNegativesPerAnchor(negativesPerAnchor) }
        let required = sameImageNegatives ? 1 : 2
        guard dataset.count >= required else {
            throw SamplerError.tooFewImages(count: dataset.count, required: required)
        }
        try PatchCopy.validate(normalization: normalization, channels: dataset.imageShape.channels)
        self.dataset = dataset
        self.maxOffset = maxOffset
        self.negativesPerAnchor = negativesPerAnchor
        self.sameImageNegatives = sameImageNegatives
        self.positiveAugmentation = positiveAugmentation
        self.viewAugmentation = viewAugmentation
        self.flipsImages = flipsImages
        self.normalization = normalization
        scratch = [Float](repeating: 0, count: dataset.imageShape.elementCount)
    }

    public mutating func sample<G: RandomNumberGenerator>(
        batchSize: Int, patchSize p: Int, using generator: inout G
    ) throws -> PatchTriplets {
        try PatchCopy.validateCommon(batchSize: batchSize, patchSize: p)
        let s = dataset.imageShape
        let window = p + maxOffset
        guard window <= s.height, window <= s.width else {
            throw SamplerError.patchLargerThanImage(
                patchSize: p, needed: window, imageHeight: s.height, imageWidth: s.width,
                reason: "patch plus maxOffset \(maxOffset)")
        }
        if sameImageNegatives {
            // Every anchor location must leave room for a non-overlapping negative; the
            // worst case is an anchor in the middle of the image.
            let roomY = (s.height - p + 1) / 2, roomX = (s.width - p + 1) / 2
            guard roomY >= p || roomX >= p else {
                throw SamplerError.patchLargerThanImage(
                    patchSize: p, needed: 3 * p - 1, imageHeight: s.height, imageWidth: s.width,
                    reason: "sameImageNegatives needs a location sharing no pixel with any anchor")
            }
        }
        let layout = TripletLayout(batchSize: batchSize, negativesPerAnchor: negativesPerAnchor)
        let k = negativesPerAnchor, c = s.channels, per = c * p * p
        var patches = Tensor.uninitialized(shape: [layout.rowCount, c, p, p])
        var sources = [Int](repeating: 0, count: layout.rowCount)
        let dataset = self.dataset, maxOffset = self.maxOffset, augmentation = positiveAugmentation
        let sameImage = sameImageNegatives, views = viewAugmentation, flips = flipsImages
        try scratch.withUnsafeMutableBufferPointer { img in
            try patches.withUnsafeMutableBufferPointer { out in
                let base = out.baseAddress!, image = UnsafePointer(img.baseAddress!)
                for i in 0..<batchSize {
                    let index = generator.nextInt(below: dataset.count)
                    dataset.copyPixels(of: index, into: img)
                    let wy = generator.nextInt(below: s.height - window + 1)
                    let wx = generator.nextInt(below: s.width - window + 1)
                    let ay = wy + generator.nextInt(below: maxOffset + 1)
                    let ax = wx + generator.nextInt(below: maxOffset + 1)
                    var py = ay, px = ax
                    if maxOffset > 0 {
                        repeat {
                            py = wy + generator.nextInt(below: maxOffset + 1)
                            px = wx + generator.nextInt(below: maxOffset + 1)
                        } while py == ay && px == ax
                    }
                    let anchorRow = layout.anchorRow(i), positiveRow = layout.positiveRow(i)
                    PatchCopy.copy(
                        from: image, channels: c, height: s.height, width: s.width,
                        y: ay, x: ax, size: p, to: base + anchorRow * per)
                    PatchCopy.copy(
                        from: image, channels: c, height: s.height, width: s.width,
                        y: py, x: px, size: p, to: base + positiveRow * per)
                    sources[anchorRow] = index
                    sources[positiveRow] = index
                    // Mirroring both patches is exactly cutting them from the mirrored image
                    // (at mirrored positions), so the pair shares one flip.
                    if flips, generator.nextUniform() < 0.5 {
                        PatchCopy.flipHorizontally(base + anchorRow * per, channels: c, size: p)
                        PatchCopy.flipHorizontally(base + positiveRow * per, channels: c, size: p)
                    }
                    if let views {
                        try PatchCopy.augmentInPlace(
                            base + anchorRow * per, channels: c, size: p,
                            augmentation: views, using: &generator)
                        try PatchCopy.augmentInPlace(
                            base + positiveRow * per, channels: c, size: p,
                            augmentation: views, using: &generator)
                    }
                    if let augmentation {
                        try PatchCopy.augmentInPlace(
                            base + positiveRow * per, channels: c, size: p,
                            augmentation: augmentation, using: &generator)
                    }
                    if sameImage {
                        for j in 0..<k {
                            let (ny, nx) = Self.farLocation(
                                anchorY: ay, anchorX: ax, height: s.height, width: s.width, size: p, using: &generator)
                            let row = layout.negativeRow(i, j)
                            PatchCopy.copy(
                                from: image, channels: c, height: s.height, width: s.width,
                                y: ny, x: nx, size: p, to: base + row * per)
                            sources[row] = index
                            try PatchCopy.finishView(
                                base + row * per, channels: c, size: p, flips: flips,
                                views: views, using: &generator)
                        }
                    }
                }
                if !sameImage {
                    // Negatives after all anchors, so the scratch image is reused for each.
                    try PatchCopy.fillNegativesFromOtherImages(
                        dataset: dataset, layout: layout, patchSize: p, scratch: img, output: base,
                        sources: &sources, flips: flips, views: views, using: &generator)
                }
            }
        }
        if let normalization { try normalization.apply(to: &patches) }
        return PatchTriplets(patches: patches, layout: layout, sourceImages: sources)
    }

    /// A uniformly random top-left corner whose p × p patch shares no pixel with the anchor's
    /// (`|y − ay| ≥ p` or `|x − ax| ≥ p`). The caller has checked that one exists.
    static func farLocation<G: RandomNumberGenerator>(
        anchorY ay: Int, anchorX ax: Int, height: Int, width: Int, size p: Int, using g: inout G
    ) -> (Int, Int) {
        let ny = height - p + 1, nx = width - p + 1
        // Number of x positions overlapping the anchor horizontally.
        let overlapX = Swift.min(nx - 1, ax + p - 1) - Swift.max(0, ax - p + 1) + 1
        func valid(inRow y: Int) -> Int { abs(y - ay) >= p ? nx : nx - overlapX }
        var total = 0
        for y in 0..<ny { total += valid(inRow: y) }
        var r = g.nextInt(below: total)
        for y in 0..<ny {
            let v = valid(inRow: y)
            if r >= v { r -= v; continue }
            if abs(y - ay) >= p { return (y, r) }
            // Skip the overlapping run [ax − p + 1, ax + p − 1] of this row.
            let left = Swift.max(0, ax - p + 1)
            return (y, r < left ? r : r + overlapX)
        }
        preconditionFailure("farLocation: no valid location (checked by the caller)")
    }
}
