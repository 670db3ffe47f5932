import TensorCore

/// The shape of every image in a dataset.
public struct ImageShape: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int
    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }
    /// C · H · W.
    public var elementCount: Int { channels * height * width }
    public var description: String { "\(channels)x\(height)x\(width)" }
}

/// A collection of equally sized images with optional integer labels.
///
/// Pixels are exposed as Float32 C × H × W planes with values in [0, 1] (before any
/// normalisation). ``copyPixels(of:into:)`` is the hot path: samplers call it with a
/// preallocated buffer, so it must not allocate.
public protocol ImageDataset: Sendable {
    /// Number of images.
    var count: Int { get }
    /// Shape of every image.
    var imageShape: ImageShape { get }
    /// Number of classes when labelled, else nil.
    var classCount: Int? { get }
    /// The label of image `index`, or nil for unlabelled data.
    func label(at index: Int) -> Int?
    /// Writes image `index` as C·H·W floats in [0, 1] into `buffer` (count ≥ elementCount).
    func copyPixels(of index: Int, into buffer: UnsafeMutableBufferPointer<Float>)
}

extension ImageDataset {
    /// Image `index` as an ``Image`` (allocates; use ``copyPixels(of:into:)`` in hot loops).
    public func image(at index: Int) -> Image {
        let s = imageShape
        var t = Tensor.uninitialized(shape: [s.channels, s.height, s.width])
        t.withUnsafeMutableBufferPointer { copyPixels(of: index, into: $0) }
        return try! Image(t)  // shape is rank 3 and positive by construction
    }
}

/// Clips of frames (e.g. video), for frame-pair positives.
public protocol SequenceDataset: Sendable {
    /// Number of clips.
    var count: Int { get }
    /// Frames per clip.
    var framesPerClip: Int { get }
    /// Shape of every frame.
    var frameShape: ImageShape { get }
    /// Writes frame `frame` of clip `clip` as C·H·W floats in [0, 1] into `buffer`.
    func copyPixels(ofClip clip: Int, frame: Int, into buffer: UnsafeMutableBufferPointer<Float>)
}
