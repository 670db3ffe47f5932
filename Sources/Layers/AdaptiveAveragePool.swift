import TensorCore

/// Average pooling of every channel to a fixed `grid` × `grid` (PyTorch's
/// `AdaptiveAvgPool2d`), flattened: `[N, C, H, W]` → `[N, C·grid²]`. Cell `(i, j)` averages
/// rows `⌊i·H/g⌋ ..< ⌈(i+1)·H/g⌉` and the same columns, so any map size gives the same
/// width (a map smaller than the grid repeats its positions); `grid: 1` is the global
/// average pool.
///
/// A rank-2 input `[N, C·S²]` is read as a flattened square NCHW map (S × S per channel),
/// which is what a projection head receives from the trainer, so the layer can open a head
/// that works on any map size. Backward spreads each output gradient evenly over its cell.
public final class AdaptiveAveragePool: Layer {
    /// Channels of the map.
    public let channels: Int
    /// Cells per side of the output grid.
    public let grid: Int

    public var parameters: [Parameter] { [] }

    /// Input shape of the last training forward; `nil` after an inference forward.
    private var cachedInputShape: [Int]?

    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when
    ///   `channels` or `grid` is not positive.
    public init(channels: Int, grid: Int = 1) throws {
        try Validate.positive(channels, "channels", layer: "AdaptiveAveragePool")
        try Validate.positive(grid, "grid", layer: "AdaptiveAveragePool")
        self.channels = channels
        self.grid = grid
    }

    private var name: String { "AdaptiveAveragePool(\(channels), grid \(grid))" }

    /// Height and width of the map in an input of `shape` (nil when it is not a map of
    /// ``channels`` channels).
    private func mapSize(_ shape: [Int]) -> (height: Int, width: Int)? {
        guard shape.allSatisfy({ $0 >= 0 }) else { return nil }
        if shape.count == 4 {
            return shape[1] == channels && shape[2] > 0 && shape[3] > 0 ? (shape[2], shape[3]) : nil
        }
        guard shape.count == 2, shape[1] > 0, shape[1] % channels == 0 else { return nil }
        let positions = shape[1] / channels
        var side = Int(Double(positions).squareRoot().rounded())
        while side * side > positions { side -= 1 }
        return side * side == positions ? (side, side) : nil
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard mapSize(inputShape) != nil else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape,
                reason: "expected [N, \(channels), H, W] or a flattened square map [N, \(channels)·S²]")
        }
        return [inputShape[0], channels * grid * grid]
    }

    /// The input rows `[lo, hi)` that output cell `i` of `g` averages along a side of `n`.
    @inline(__always)
    private func cell(_ i: Int, side n: Int) -> (lo: Int, hi: Int) {
        (i * n / grid, ((i + 1) * n + grid - 1) / grid)
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        guard let (h, w) = mapSize(input.shape) else { preconditionFailure("\(name): input \(input.shape)") }
        cachedInputShape = mode == .training ? input.shape : nil
        let maps = input.shape[0] * channels, g = grid
        var out = Tensor.uninitialized(shape: [input.shape[0], channels * g * g])
        input.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                for m in 0..<maps {
                    let plane = x.baseAddress! + m * h * w
                    for i in 0..<g {
                        let (r0, r1) = cell(i, side: h)
                        for j in 0..<g {
                            let (c0, c1) = cell(j, side: w)
                            var sum: Float = 0
                            for r in r0..<r1 { for c in c0..<c1 { sum += plane[r * w + c] } }
                            y[(m * g + i) * g + j] = sum / Float((r1 - r0) * (c1 - c0))
                        }
                    }
                }
            }
        }
        return out
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let shape = cachedInputShape, let (h, w) = mapSize(shape) else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let maps = shape[0] * channels, g = grid
        var gradient = Tensor.zeros(shape)
        outputGradient.withUnsafeBufferPointer { gy in
            gradient.withUnsafeMutableBufferPointer { gx in
                for m in 0..<maps {
                    let plane = gx.baseAddress! + m * h * w
                    for i in 0..<g {
                        let (r0, r1) = cell(i, side: h)
                        for j in 0..<g {
                            let (c0, c1) = cell(j, side: w)
                            let share = gy[(m * g + i) * g + j] / Float((r1 - r0) * (c1 - c0))
                            for r in r0..<r1 { for c in c0..<c1 { plane[r * w + c] += share } }
                        }
                    }
                }
            }
        }
        return gradient
    }
}
