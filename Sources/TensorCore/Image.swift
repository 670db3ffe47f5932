/// One image as Float32 channel planes (C × H × W), the unit that augmentations transform.
///
/// Pixel values are whatever the dataset produces (by default [0, 1]); augmentations
/// preserve the range where that makes sense (rotation fill, jitter clamps to [0, 1]).
public struct Image: Sendable {
    /// The pixels, shape [C, H, W].
    public var tensor: Tensor

    @inlinable public var channels: Int { tensor.shape[0] }
    @inlinable public var height: Int { tensor.shape[1] }
    @inlinable public var width: Int { tensor.shape[2] }

    /// Wraps a rank-3 tensor [C, H, W].
    public init(_ tensor: Tensor) throws {
        guard tensor.shape.count == 3, tensor.shape.allSatisfy({ $0 > 0 }) else {
            throw TensorError.invalidArgument(
                name: "image shape", value: "\(tensor.shape)", reason: "an image is [channels, height, width], all > 0")
        }
        self.tensor = tensor
    }

    /// A constant image.
    public init(channels: Int, height: Int, width: Int, repeating value: Float = 0) {
        tensor = Tensor(shape: [channels, height, width], repeating: value)
    }

    /// Reads pixel (c, y, x).
    @inlinable public subscript(c: Int, y: Int, x: Int) -> Float {
        get { tensor[flat: (c * height + y) * width + x] }
        set { tensor[flat: (c * height + y) * width + x] = newValue }
    }
}

/// How a batch of triplets is laid out in one tensor for the Siamese forward pass:
/// rows `0..<B` are anchors, `B..<2B` positives, then `B·K` negatives where the
/// negatives of anchor `i` are rows `2B + i·K ..< 2B + (i+1)·K`.
///
/// Shared by patch samplers (which fill it) and losses (which read embeddings in it),
/// so neither module depends on the other.
public struct TripletLayout: Sendable, Equatable, Hashable {
    /// B, the number of anchors.
    public var batchSize: Int
    /// K, negatives stored per anchor (0 when the loss mines negatives in the batch).
    public var negativesPerAnchor: Int

    public init(batchSize: Int, negativesPerAnchor: Int = 1) {
        self.batchSize = batchSize
        self.negativesPerAnchor = negativesPerAnchor
    }

    /// All rows: B · (2 + K).
    @inlinable public var rowCount: Int { batchSize * (2 + negativesPerAnchor) }
    @inlinable public func anchorRow(_ i: Int) -> Int { i }
    @inlinable public func positiveRow(_ i: Int) -> Int { batchSize + i }
    @inlinable public func negativeRow(_ i: Int, _ j: Int) -> Int { 2 * batchSize + i * negativesPerAnchor + j }
}
