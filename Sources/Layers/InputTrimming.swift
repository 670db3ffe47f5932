import TensorCore

/// A layer whose output row `i` (column `j`) reads only input rows (columns) counted from
/// the top (left) edge — a valid, unpadded window or an element-wise map.
///
/// Such layers let a caller skip input that no output reads: a floor-mode pooling drops
/// trailing rows, and every unpadded window shrinks what the next layer needs, so a stack
/// can read much less than it is given (a 16×16 patch through conv 6 → pool 2 → conv 3 →
/// pool 2 reads only its top-left 13×13). See ``InputTrimming``.
public protocol TopLeftAnchored: Layer {
    /// How many leading input rows (or columns) the first `outputExtent` output rows (or
    /// columns) read, or `nil` when the layer is not anchored in its current
    /// configuration (e.g. a padded convolution, whose last outputs read padding).
    func inputExtent(forOutputExtent outputExtent: Int) -> Int?
}

extension Conv2D: TopLeftAnchored {
    public func inputExtent(forOutputExtent outputExtent: Int) -> Int? {
        padding == 0 ? (outputExtent - 1) * stride + kernelSize : nil
    }
}

extension WhitenedConv2D: TopLeftAnchored {
    public func inputExtent(forOutputExtent outputExtent: Int) -> Int? {
        outputExtent - 1 + kernelSize
    }
}

extension MaxPool2D: TopLeftAnchored {
    public func inputExtent(forOutputExtent outputExtent: Int) -> Int? {
        padding == 0 ? (outputExtent - 1) * stride + kernelSize : nil
    }
}

extension ReLU: TopLeftAnchored {
    public func inputExtent(forOutputExtent outputExtent: Int) -> Int? { outputExtent }
}

/// Finds and removes the part of an NCHW input that a stack of layers never reads.
///
/// The reference implementations this library is compared with compute every window of
/// their input, including the rows and columns a floor-mode pooling later drops; with
/// unpadded layers those outputs are dead work whose gradient is zero. Cropping the
/// input to the window the output depends on gives **the same output and the same
/// parameter gradients** for less work — which is why the layer-wise trainer samples
/// patches of exactly the receptive-field size in the first place. Use this when the
/// input size is fixed by someone else (a dataset, a benchmark definition).
///
/// Only ``TopLeftAnchored`` layers (and ``ChainedLayer`` containers of them) are looked
/// through. Layers after the last rank-4 activation (`Flatten`, `Linear`, …) read all of
/// it. Anything else — a padded convolution, BatchNorm in training mode, a user's layer —
/// stops the analysis, and the input is read whole.
public enum InputTrimming {
    /// The top-left `(height, width)` of an input of `inputShape` that `layers` read, or
    /// `nil` when the stack is not analysable (then it reads everything).
    ///
    /// - Throws: the first layer's ``LayerError`` when `inputShape` does not fit.
    public static func readExtent(of layers: [any Layer], inputShape: [Int]) throws -> (height: Int, width: Int)? {
        let flat = LayerTree.leaves(layers, descendingInto: { $0 is any ChainedLayer })
        guard inputShape.count == 4 else { return nil }
        // `lastSpatial` is the last layer whose output is rank 4, `outputShape` that output.
        var shape = inputShape, outputShape = inputShape
        var lastSpatial = -1
        for (index, layer) in flat.enumerated() {
            shape = try layer.outputShape(for: shape)
            guard shape.count == 4 else { break }
            lastSpatial = index
            outputShape = shape
        }
        guard lastSpatial >= 0 else { return nil }
        var height = outputShape[2], width = outputShape[3]
        for layer in flat[...lastSpatial].reversed() {
            guard let anchored = layer as? any TopLeftAnchored,
                let h = anchored.inputExtent(forOutputExtent: height),
                let w = anchored.inputExtent(forOutputExtent: width)
            else { return nil }
            height = h
            width = w
        }
        guard height <= inputShape[2], width <= inputShape[3] else { return nil }
        return (height, width)
    }

    /// The top-left `height × width` window of every image of an NCHW batch (a copy).
    public static func crop(_ input: Tensor, height: Int, width: Int) -> Tensor {
        let s = input.shape
        precondition(s.count == 4 && height <= s[2] && width <= s[3], "InputTrimming.crop: \(s) to \(height)×\(width)")
        if height == s[2] && width == s[3] { return input }
        var output = Tensor.uninitialized(shape: [s[0], s[1], height, width])
        let planes = s[0] * s[1], inPlane = s[2] * s[3], outPlane = height * width
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                let x = xb.baseAddress!, y = yb.baseAddress!
                for p in 0..<planes {
                    for r in 0..<height {
                        (y + p * outPlane + r * width).update(from: x + p * inPlane + r * s[3], count: width)
                    }
                }
            }
        }
        return output
    }
}
