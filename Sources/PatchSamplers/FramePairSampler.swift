import Datasets
import TensorCore

/// Temporal coherence positives: the same location in the first and the last frame of a
/// clip is a positive pair; negatives are patches of other clips.
///
/// Per anchor: a random clip and a random p × p location; the anchor comes from frame 0,
/// the positive from frame `framesPerClip − 1` at the same location. Each of the K negatives
/// is a p × p patch at a random location of a random frame of a random **other** clip.
/// ``PatchTriplets/sourceImages`` holds clip indices.
public struct FramePairSampler: PatchSampler {
    public let clips: any SequenceDataset
    public let negativesPerAnchor: Int
    public let normalization: ChannelNormalization?
    var scratch: [Float]

    public var channels: Int { clips.frameShape.channels }

    /// - Throws: ``SamplerError`` when `negativesPerAnchor < 1`, there are fewer than 2 clips,
    ///   fewer than 2 frames per clip, or the normalisation's channel count differs.
    public init(
        clips: any SequenceDataset, negativesPerAnchor: Int = 1, normalization: ChannelNormalization? = nil
    ) throws {
        guard negativesPerAnchor >= 1 else { throw SamplerError.invalidNegativesPerAnchor(negativesPerAnchor) }
        guard clips.count >= 2 else { throw SamplerError.tooFewImages(count: clips.count, required: 2) }
        guard clips.framesPerClip >= 2 else { throw SamplerError.tooFewFrames(framesPerClip: clips.framesPerClip) }
        try PatchCopy.validate(normalization: normalization, channels: clips.frameShape.channels)
        self.clips = clips
        self.negativesPerAnchor = negativesPerAnchor
        self.normalization = normalization
        scratch = [Float](repeating: 0, count: clips.frameShape.elementCount)
    }

    public mutating func sample<G: RandomNumberGenerator>(
        batchSize: Int, patchSize p: Int, using generator: inout G
    ) throws -> PatchTriplets {
        try PatchCopy.validateCommon(batchSize: batchSize, patchSize: p)
        let s = clips.frameShape
        guard p <= s.height, p <= s.width else {
            throw SamplerError.patchLargerThanImage(
                patchSize: p, needed: p, imageHeight: s.height, imageWidth: s.width, reason: "the patch itself")
        }
        let layout = TripletLayout(batchSize: batchSize, negativesPerAnchor: negativesPerAnchor)
        let k = negativesPerAnchor, c = s.channels, per = c * p * p
        var patches = Tensor.uninitialized(shape: [layout.rowCount, c, p, p])
        var sources = [Int](repeating: 0, count: layout.rowCount)
        let clips = self.clips, last = clips.framesPerClip - 1
        scratch.withUnsafeMutableBufferPointer { img in
            patches.withUnsafeMutableBufferPointer { out in
                let base = out.baseAddress!, frame = UnsafePointer(img.baseAddress!)
                for i in 0..<batchSize {
                    let clip = generator.nextInt(below: clips.count)
                    let y = generator.nextInt(below: s.height - p + 1)
                    let x = generator.nextInt(below: s.width - p + 1)
                    let anchorRow = layout.anchorRow(i), positiveRow = layout.positiveRow(i)
                    clips.copyPixels(ofClip: clip, frame: 0, into: img)
                    PatchCopy.copy(
                        from: frame, channels: c, height: s.height, width: s.width,
                        y: y, x: x, size: p, to: base + anchorRow * per)
                    clips.copyPixels(ofClip: clip, frame: last, into: img)
                    PatchCopy.copy(
                        from: frame, channels: c, height: s.height, width: s.width,
                        y: y, x: x, size: p, to: base + positiveRow * per)
                    sources[anchorRow] = clip
                    sources[positiveRow] = clip
                    for j in 0..<k {
                        let other = PatchCopy.otherIndex(count: clips.count, excluding: clip, using: &generator)
                        let f = generator.nextInt(below: clips.framesPerClip)
                        clips.copyPixels(ofClip: other, frame: f, into: img)
                        let ny = generator.nextInt(below: s.height - p + 1)
                        let nx = generator.nextInt(below: s.width - p + 1)
                        let row = layout.negativeRow(i, j)
                        PatchCopy.copy(
                            from: frame, channels: c, height: s.height, width: s.width,
                            y: ny, x: nx, size: p, to: base + row * per)
                        sources[row] = other
                    }
                }
            }
        }
        if let normalization { try normalization.apply(to: &patches) }
        return PatchTriplets(patches: patches, layout: layout, sourceImages: sources)
    }
}
