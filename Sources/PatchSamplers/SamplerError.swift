/// Why a sampler cannot be built or cannot produce the requested batch.
public enum SamplerError: Error, Equatable, CustomStringConvertible {
    /// The patch (plus any margin the sampler needs) does not fit in the images.
    case patchLargerThanImage(patchSize: Int, needed: Int, imageHeight: Int, imageWidth: Int, reason: String)
    /// The sampler needs more images (or clips) than the data holds.
    case tooFewImages(count: Int, required: Int)
    /// Clips need at least two frames for frame-pair positives.
    case tooFewFrames(framesPerClip: Int)
    /// `batchSize` < 1.
    case invalidBatchSize(Int)
    /// `patchSize` < 1.
    case invalidPatchSize(Int)
    /// `negativesPerAnchor` < 1.
    case invalidNegativesPerAnchor(Int)
    /// Any other option out of range (e.g. `maxOffset` < 0), named.
    case invalidOption(name: String, value: String, reason: String)
    /// An augmentation returned an image of an unexpected shape.
    case augmentationShape(expected: [Int], got: [Int])
    /// The normalisation does not have one entry per channel.
    case normalizationChannels(expected: Int, got: Int)

    public var description: String {
        switch self {
        case let .patchLargerThanImage(patchSize, needed, h, w, reason):
            return "patchSize \(patchSize) needs \(needed)×\(needed) pixels (\(reason)), but images are \(h)×\(w)"
        case let .tooFewImages(count, required):
            return "the data holds \(count) images/clips; this sampler needs at least \(required)"
        case let .tooFewFrames(n):
            return "framesPerClip = \(n): frame-pair positives need at least 2 frames per clip"
        case let .invalidBatchSize(n):
            return "invalid batchSize = \(n): must be ≥ 1"
        case let .invalidPatchSize(n):
            return "invalid patchSize = \(n): must be ≥ 1"
        case let .invalidNegativesPerAnchor(n):
            return "invalid negativesPerAnchor = \(n): must be ≥ 1"
        case let .invalidOption(name, value, reason):
            return "invalid \(name) = \(value): \(reason)"
        case let .augmentationShape(expected, got):
            return "augmentation returned shape \(got), expected \(expected)"
        case let .normalizationChannels(expected, got):
            return "normalisation has \(got) channels, the data has \(expected)"
        }
    }
}
