import TensorCore

/// Pads every NCHW plane by mirroring it at its edges, without repeating the edge
/// (PyTorch's `reflect` mode: row −1 is row 1), so a following unpadded convolution sees
/// no artificial zero border. SoftHebb pads every stage this way.
///
/// Backward folds each padded position's gradient back onto the input position it copied.
public final class ReflectionPad2D: Layer {
    /// Rows/columns added on every side.
    public let padding: Int

    public var parameters: [Parameter] { [] }

    private var cachedInputShape: [Int]?

    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when
    ///   `padding` is negative.
    public init(padding: Int) throws {
        guard padding >= 0 else {
            throw LayerError.invalidConfiguration(
                layer: "ReflectionPad2D", option: "padding", value: "\(padding)", reason: "must be ≥ 0")
        }
        self.padding = padding
    }

    private var name: String { "ReflectionPad2D(\(padding))" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4 else {
            throw LayerError.incompatibleInput(layer: name, shape: inputShape, reason: "expected rank 4 [N, C, H, W]")
        }
        guard inputShape.allSatisfy({ $0 >= 0 }), inputShape[2] > 0, inputShape[3] > 0 else {
            throw LayerError.incompatibleInput(layer: name, shape: inputShape, reason: "dimensions must be positive")
        }
        guard padding < inputShape[2], padding < inputShape[3] else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape,
                reason: "reflection padding must be smaller than the input \(inputShape[2])×\(inputShape[3])")
        }
        return [inputShape[0], inputShape[1], inputShape[2] + 2 * padding, inputShape[3] + 2 * padding]
    }

    /// The input index a padded index `i` (in `0 ..< side + 2p`) copies.
    @inline(__always)
    private func source(_ i: Int, side: Int) -> Int {
        let j = i - padding
        if j < 0 { return -j }
        if j >= side { return 2 * (side - 1) - j }
        return j
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(
            s.count == 4 && padding < s[2] && padding < s[3],
            "\(name): input shape \(s); validate with outputShape(for:)")
        let h = s[2], w = s[3], ph = h + 2 * padding, pw = w + 2 * padding, p = padding
        var output = Tensor.uninitialized(shape: [s[0], s[1], ph, pw])
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                for plane in 0..<(s[0] * s[1]) {
                    let src = xb.baseAddress! + plane * h * w, dst = yb.baseAddress! + plane * ph * pw
                    for y in 0..<ph {
                        let row = src + source(y, side: h) * w, out = dst + y * pw
                        (out + p).update(from: row, count: w)
                        for x in 0..<p {
                            out[x] = row[p - x]
                            out[pw - 1 - x] = row[w - 1 - p + x]
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
        let h = s[2], w = s[3], ph = h + 2 * padding, pw = w + 2 * padding
        precondition(
            outputGradient.shape == [s[0], s[1], ph, pw],
            "\(name): output gradient shape \(outputGradient.shape) does not match the last forward")
        var inputGradient = Tensor.zeros(s)
        outputGradient.withUnsafeBufferPointer { gb in
            inputGradient.withUnsafeMutableBufferPointer { db in
                for plane in 0..<(s[0] * s[1]) {
                    let g = gb.baseAddress! + plane * ph * pw, d = db.baseAddress! + plane * h * w
                    for y in 0..<ph {
                        let row = d + source(y, side: h) * w
                        for x in 0..<pw { row[source(x, side: w)] += g[y * pw + x] }
                    }
                }
            }
        }
        return inputGradient
    }
}
