import Datasets
import Foundation

/// Video clips stored as frame images, one subfolder per clip (`root/<clip>/<frame>.png`),
/// as ``SequenceDataset`` for `FramePairSampler`. Frames are taken in sorted file order;
/// every clip keeps the first `framesPerClip` frames (default: the shortest clip's count).
///
/// Frames of a video come from e.g. `ffmpeg -i clip.mp4 -vf fps=4 clip/%04d.png`. Each
/// frame is fitted to `size`×`size` like ``ImageFolderDataset`` images; a random crop cuts
/// the same window from every frame of a clip, so frames stay aligned.
public struct ClipFolderDataset: SequenceDataset {
    /// The clips.
    public let clips: InMemorySequenceDataset
    /// Every kept frame as an image (clip after clip), e.g. to fit a normalisation.
    public let frames: InMemoryImageDataset
    /// Clip folder names, in clip order.
    public let clipNames: [String]

    public var count: Int { clips.count }
    public var framesPerClip: Int { clips.framesPerClip }
    public var frameShape: ImageShape { clips.frameShape }
    public func copyPixels(ofClip clip: Int, frame: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        clips.copyPixels(ofClip: clip, frame: frame, into: buffer)
    }

    /// - Throws: ``ImageFolderError``: a missing folder, no clip folders, a clip with fewer
    ///   than 2 frames (or fewer than `framesPerClip`), or any unreadable frame.
    public init(root: String, size: Int = 32, crop: CropMode = .center, framesPerClip: Int? = nil) throws {
        guard size > 0, size <= 4096 else {
            throw ImageFolderError.invalidOption(name: "size", value: "\(size)", reason: "must lie in 1...4096")
        }
        let listing = try ImageFolderListing(root: root)
        guard let names = listing.classNames, let labels = listing.labels else {
            throw ImageFolderError.inconsistentClips(
                path: root, reason: "expected one subfolder of frames per clip, found image files only")
        }
        var frameFiles = [[String]](repeating: [], count: names.count)
        for (file, clip) in zip(listing.files, labels) { frameFiles[clip].append(file) }
        let shortest = frameFiles.map(\.count).min() ?? 0
        let t = framesPerClip ?? shortest
        guard t >= 2 else {
            throw ImageFolderError.invalidOption(
                name: "framesPerClip", value: "\(t)", reason: "clips need at least 2 frames")
        }
        if let (i, files) = frameFiles.enumerated().first(where: { $0.element.count < t }) {
            throw ImageFolderError.inconsistentClips(
                path: (root as NSString).appendingPathComponent(names[i]),
                reason: "has \(files.count) frames, fewer than framesPerClip = \(t)")
        }
        let kept = frameFiles.flatMap { $0.prefix(t) }
        let cropIndices = frameFiles.indices.flatMap { [Int](repeating: $0, count: t) }
        let decoded = try ImageFolderDataset.decode(
            kept.map { (root as NSString).appendingPathComponent($0) },
            options: ImageFolderOptions(size: size, crop: crop), cropIndices: cropIndices)
        let shape = ImageShape(channels: 3, height: size, width: size)
        clips = try InMemorySequenceDataset(
            pixels: decoded.pixels, clipCount: names.count, framesPerClip: t, frameShape: shape)
        frames = try InMemoryImageDataset(pixels: decoded.pixels, shape: shape)
        clipNames = names
    }
}
