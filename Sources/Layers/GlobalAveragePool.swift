import TensorCore

/// The mean of every channel over all its positions: `[N, C, H, W]` → `[N, C]`.
///
/// A rank-2 input `[N, C·S]` is read as a flattened NCHW map (C groups of S contiguous
/// positions), which is what a projection head receives from ``Flatten`` or from the
/// trainer, so the layer can open a head on any map size. Backward spreads each output
/// gradient evenly over its channel's positions.
public final class GlobalAveragePool: Layer {
    /// Channels of the map (the output width).
    public let channels: Int

    public var parameters: [Parameter] { [] }

    /// Input shape of the last training forward; `nil` after an inference forward.
    private var cachedInputShape: [Int]?

    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when
    ///   `channels` is not positive.
    public init(channels: Int) throws {
        try Validate.positive(channels, "channels", layer: "GlobalAveragePool")
        self.channels = channels
    }

    private var name: String { "GlobalAveragePool(\(channels))" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 2 || inputShape.count == 4, inputShape.allSatisfy({ $0 >= 0 }) else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected [N, C, H, W] or a flattened map [N, C·H·W]")
        }
        let perRow = inputShape.dropFirst().reduce(1, *)
        if inputShape.count == 4, inputShape[1] != channels {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "has \(inputShape[1]) channels, expected \(channels)")
        }
        guard perRow > 0, perRow % channels == 0 else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape,
                reason: "\(perRow) features per row are not \(channels) channels of at least one position")
        }
        return [inputShape[0], channels]
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let n = input.shape[0], positions = input.count / max(1, n * channels)
        precondition(positions * n * channels == input.count && positions > 0, "\(name): input \(input.shape)")
        cachedInputShape = mode == .training ? input.shape : nil
        var out = Tensor.uninitialized(shape: [n, channels])
        let scale = 1 / Float(positions)
        input.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                for row in 0..<(n * channels) {
                    let p = x.baseAddress! + row * positions
                    var sum: Float = 0
                    for j in 0..<positions { sum += p[j] }
                    y[row] = sum * scale
                }
            }
        }
        return out
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let shape = cachedInputShape else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let rows = outputGradient.count, positions = shape.reduce(1, *) / max(1, rows)
        var g = Tensor.uninitialized(shape: shape)
        let scale = 1 / Float(positions)
        outputGradient.withUnsafeBufferPointer { gy in
            g.withUnsafeMutableBufferPointer { gx in
                for row in 0..<rows {
                    (gx.baseAddress! + row * positions).update(repeating: gy[row] * scale, count: positions)
                }
            }
        }
        return g
    }
}
