import TensorCore

/// Average pooling over square windows of NCHW input, with zero padding counted in the
/// average (PyTorch's `AvgPool2d` defaults: floor mode, `count_include_pad = true`), so
/// every output is the window sum divided by `kernelSize²`.
///
/// Backward spreads each output gradient evenly over its window (overlapping windows
/// add up). `forward` treats shapes as an internal invariant (`precondition`); validate
/// with ``outputShape(for:)``.
public final class AvgPool2D: Layer {
    public let kernelSize: Int
    public let stride: Int
    /// Zero border on every side, counted in the average (at most half the kernel).
    public let padding: Int

    public var parameters: [Parameter] { [] }

    /// Input shape of the last training forward; `nil` after an inference forward.
    private var cachedInputShape: [Int]?

    /// - Parameters:
    ///   - kernelSize: window side.
    ///   - stride: step between windows; defaults to `kernelSize` (non-overlapping).
    ///   - padding: zero border (e.g. SoftHebb's 4×4, stride 2, padding 1).
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when
    ///   `kernelSize` or `stride` is not positive, or `padding` is negative or more than
    ///   half the kernel.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) throws {
        try Validate.positive(kernelSize, "kernelSize", layer: "AvgPool2D")
        if let stride { try Validate.positive(stride, "stride", layer: "AvgPool2D") }
        try Validate.poolPadding(padding, kernelSize: kernelSize, layer: "AvgPool2D")
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
    }

    private var name: String { "AvgPool2D(k\(kernelSize), s\(stride), p\(padding))" }

    private func outputSide(_ side: Int) -> Int { (side + 2 * padding - kernelSize) / stride + 1 }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4 else {
            throw LayerError.incompatibleInput(layer: name, shape: inputShape, reason: "expected rank 4 [N, C, H, W]")
        }
        guard inputShape.allSatisfy({ $0 >= 0 }), inputShape[1] > 0, inputShape[2] > 0, inputShape[3] > 0 else {
            throw LayerError.incompatibleInput(layer: name, shape: inputShape, reason: "dimensions must be positive")
        }
        guard inputShape[2] + 2 * padding >= kernelSize, inputShape[3] + 2 * padding >= kernelSize else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape,
                reason: "kernel \(kernelSize) is larger than the padded input "
                    + "\(inputShape[2] + 2 * padding)×\(inputShape[3] + 2 * padding)")
        }
        return [inputShape[0], inputShape[1], outputSide(inputShape[2]), outputSide(inputShape[3])]
    }

    /// The in-image part `[lo, hi)` of window `o` along a side of length `side`.
    @inline(__always)
    private func window(_ o: Int, side: Int) -> (lo: Int, hi: Int) {
        let start = o * stride - padding
        return (Swift.max(0, start), Swift.min(side, start + kernelSize))
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(
            s.count == 4 && s[2] + 2 * padding >= kernelSize && s[3] + 2 * padding >= kernelSize,
            "\(name): input shape \(s); validate with outputShape(for:)")
        let h = s[2], w = s[3], oh = outputSide(h), ow = outputSide(w)
        let scale = 1 / Float(kernelSize * kernelSize)
        var output = Tensor.uninitialized(shape: [s[0], s[1], oh, ow])
        let (k, st, p) = (kernelSize, stride, padding)
        @Sendable func window(_ o: Int, side: Int) -> (lo: Int, hi: Int) {
            (Swift.max(0, o * st - p), Swift.min(side, o * st - p + k))
        }
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                let x = SharedPointer(xb.baseAddress!), y = SharedPointer(yb.baseAddress!)
                let minimumPlanes = WorkerPool.minimumItems(elementsPerItem: h * w)
                WorkerPool.forEachSlice(s[0] * s[1], minimumSlice: minimumPlanes) { planes in
                    for plane in planes {
                        let src = x.p + plane * h * w, dst = y.p + plane * oh * ow
                        for oy in 0..<oh {
                            let (y0, y1) = window(oy, side: h)
                            for ox in 0..<ow {
                                let (x0, x1) = window(ox, side: w)
                                var sum: Float = 0
                                for yy in y0..<y1 {
                                    for xx in x0..<x1 { sum += src[yy * w + xx] }
                                }
                                dst[oy * ow + ox] = sum * scale
                            }
                        }
                    }
                }
            }
        }
        cachedInputShape = mode == .training ? s : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let s = cachedInputShape else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let h = s[2], w = s[3], oh = outputSide(h), ow = outputSide(w)
        precondition(
            outputGradient.shape == [s[0], s[1], oh, ow],
            "\(name): output gradient shape \(outputGradient.shape) does not match the last forward")
        let scale = 1 / Float(kernelSize * kernelSize)
        var inputGradient = Tensor.zeros(s)
        outputGradient.withUnsafeBufferPointer { gb in
            inputGradient.withUnsafeMutableBufferPointer { db in
                for plane in 0..<(s[0] * s[1]) {
                    let g = gb.baseAddress! + plane * oh * ow, d = db.baseAddress! + plane * h * w
                    for oy in 0..<oh {
                        let (y0, y1) = window(oy, side: h)
                        for ox in 0..<ow {
                            let (x0, x1) = window(ox, side: w)
                            let v = g[oy * ow + ox] * scale
                            for yy in y0..<y1 {
                                for xx in x0..<x1 { d[yy * w + xx] += v }
                            }
                        }
                    }
                }
            }
        }
        return inputGradient
    }
}
