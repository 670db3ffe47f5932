/// Clips of equally sized frames held in memory, as 8-bit pixels or Floats.
///
/// Frames are stored clip after clip, frame after frame, each as C × H × W planes.
public struct InMemorySequenceDataset: SequenceDataset {
    enum Storage: Sendable {
        case bytes([UInt8])
        case floats([Float])
    }

    let storage: Storage
    public let count: Int
    public let framesPerClip: Int
    public let frameShape: ImageShape

    /// Clips from 8-bit pixels (converted to `value / 255` when read).
    /// - Throws: ``DatasetError`` when `pixels.count ≠ clips · framesPerClip · C·H·W` or a size is < 1.
    public init(pixels: [UInt8], clipCount: Int, framesPerClip: Int, frameShape: ImageShape) throws {
        try Self.validate(pixels.count, clipCount, framesPerClip, frameShape)
        storage = .bytes(pixels)
        count = clipCount
        self.framesPerClip = framesPerClip
        self.frameShape = frameShape
    }

    /// Clips from Float pixels, used as given (normally in [0, 1]).
    /// - Throws: ``DatasetError`` when the sizes disagree or a value is not finite.
    public init(frames: [Float], clipCount: Int, framesPerClip: Int, frameShape: ImageShape) throws {
        try Self.validate(frames.count, clipCount, framesPerClip, frameShape)
        if let bad = frames.firstIndex(where: { !$0.isFinite }) {
            throw DatasetError.invalidOption(
                name: "frames[\(bad)]", value: "\(frames[bad])", reason: "pixel values must be finite")
        }
        storage = .floats(frames)
        count = clipCount
        self.framesPerClip = framesPerClip
        self.frameShape = frameShape
    }

    static func validate(_ n: Int, _ clips: Int, _ frames: Int, _ shape: ImageShape) throws {
        guard clips > 0 else {
            throw DatasetError.invalidOption(name: "clipCount", value: "\(clips)", reason: "must be ≥ 1")
        }
        guard frames > 0 else {
            throw DatasetError.invalidOption(name: "framesPerClip", value: "\(frames)", reason: "must be ≥ 1")
        }
        guard shape.channels > 0, shape.height > 0, shape.width > 0 else {
            throw DatasetError.invalidOption(
                name: "frameShape", value: "\(shape)", reason: "all dimensions must be > 0")
        }
        let expected = clips * frames * shape.elementCount
        guard n == expected else {
            throw DatasetError.shapeMismatch(
                what: "pixels for \(clips) clips × \(frames) frames of \(shape)", expected: "\(expected)", got: "\(n)")
        }
    }

    public func copyPixels(ofClip clip: Int, frame: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        precondition(clip >= 0 && clip < count && frame >= 0 && frame < framesPerClip, "clip/frame out of range")
        let per = frameShape.elementCount
        precondition(buffer.count >= per, "buffer smaller than a frame")
        let start = (clip * framesPerClip + frame) * per
        let dst = buffer.baseAddress!
        switch storage {
        case .bytes(let pixels):
            InMemoryImageDataset.byteToUnit.withUnsafeBufferPointer { table in
                pixels.withUnsafeBufferPointer { src in
                    for i in 0..<per { dst[i] = table[Int(src[start + i])] }
                }
            }
        case .floats(let values):
            values.withUnsafeBufferPointer { src in
                dst.update(from: src.baseAddress! + start, count: per)
            }
        }
    }
}
