import TensorCore

/// Max pooling over square windows of NCHW input (PyTorch's floor mode: windows that
/// would run past the padded edge are dropped). Padding, as in PyTorch, is implicit −∞:
/// a padded window takes the maximum of its in-image values only.
///
/// In training mode the position of each window's maximum is kept as an `Int32` offset
/// within its input plane, and backward routes the gradient there (first maximum wins
/// on ties). `forward` treats shapes as an internal invariant (`precondition`); validate
/// with ``outputShape(for:)``.
public final class MaxPool2D: Layer {
    public let kernelSize: Int
    public let stride: Int
    /// Implicit −∞ border on every side (at most half the kernel, as PyTorch requires).
    public let padding: Int

    public var parameters: [Parameter] { [] }

    private var argmax: [Int32] = []
    /// Input shape of the last training forward; `nil` after an inference forward.
    private var cachedInputShape: [Int]?

    /// - Parameters:
    ///   - kernelSize: window side.
    ///   - stride: step between windows; defaults to `kernelSize` (non-overlapping).
    ///   - padding: implicit −∞ border (e.g. SoftHebb's 4×4, stride 2, padding 1).
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when
    ///   `kernelSize` or `stride` is not positive, or `padding` is negative or more than
    ///   half the kernel (a window could then see padding only).
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) throws {
        try Validate.positive(kernelSize, "kernelSize", layer: "MaxPool2D")
        if let stride { try Validate.positive(stride, "stride", layer: "MaxPool2D") }
        try Validate.poolPadding(padding, kernelSize: kernelSize, layer: "MaxPool2D")
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
    }

    private var name: String {
        padding == 0 ? "MaxPool2D(k\(kernelSize), s\(stride))" : "MaxPool2D(k\(kernelSize), s\(stride), p\(padding))"
    }

    /// Output side for an input side.
    private func outputSide(_ side: Int) -> Int { (side + 2 * padding - kernelSize) / stride + 1 }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4 else {
            throw LayerError.incompatibleInput(layer: name, shape: inputShape, reason: "expected rank 4 [N, C, H, W]")
        }
        guard inputShape.allSatisfy({ $0 >= 0 }), inputShape[1] > 0 else {
            throw LayerError.incompatibleInput(layer: name, shape: inputShape, reason: "dimensions must be positive")
        }
        guard inputShape[2] + 2 * padding >= kernelSize, inputShape[3] + 2 * padding >= kernelSize else {
            let padded = padding == 0 ? "input" : "padded input"
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape,
                reason: "kernel \(kernelSize) is larger than the \(padded) "
                    + "\(inputShape[2] + 2 * padding)×\(inputShape[3] + 2 * padding)")
        }
        return [inputShape[0], inputShape[1], outputSide(inputShape[2]), outputSide(inputShape[3])]
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(
            s.count == 4 && s[2] + 2 * padding >= kernelSize && s[3] + 2 * padding >= kernelSize,
            "\(name): input shape \(s); validate with outputShape(for:)")
        if padding > 0 { return forwardPadded(input, mode: mode) }
        let h = s[2], w = s[3]
        let oh = (h - kernelSize) / stride + 1, ow = (w - kernelSize) / stride + 1
        let planes = s[0] * s[1]
        let k = kernelSize, st = stride
        var output = Tensor.uninitialized(shape: [s[0], s[1], oh, ow])
        let training = mode == .training
        if training {
            if argmax.count < output.count { argmax = [Int32](repeating: 0, count: output.count) }
        }
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                let x = xb.baseAddress!, y = yb.baseAddress!
                if training && k == 2 && st == 2 && h == 2 && w == 2 {
                    // Each plane is one 2×2 window: four planes per SIMD16, branch-free.
                    argmax.withUnsafeMutableBufferPointer { ab in
                        let a = ab.baseAddress!
                        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y), ar = UnsafeMutableRawPointer(a)
                        var p = 0
                        while p + 4 <= planes {
                            let v = xr.loadUnaligned(fromByteOffset: p &* 16, as: SIMD16<Float>.self)
                            let e = v.evenHalf, o = v.oddHalf  // (v0, v2), (v1, v3) per plane
                            let c = o .> e
                            let m = e.replacing(with: o, where: c)
                            let j =
                                SIMD8<Int32>(0, 2, 0, 2, 0, 2, 0, 2)
                                &+ SIMD8<Int32>(repeating: 0).replacing(with: 1, where: c)
                            let cc = m.oddHalf .> m.evenHalf
                            yr.storeBytes(
                                of: m.evenHalf.replacing(with: m.oddHalf, where: cc), toByteOffset: p &* 4,
                                as: SIMD4<Float>.self)
                            ar.storeBytes(
                                of: j.evenHalf.replacing(with: j.oddHalf, where: cc), toByteOffset: p &* 4,
                                as: SIMD4<Int32>.self)
                            p &+= 4
                        }
                        while p < planes {
                            let src = x + p * 4
                            var best = src[0], bestIndex = 0
                            for i in 1..<4 where src[i] > best { best = src[i]; bestIndex = i }
                            y[p] = best
                            a[p] = Int32(bestIndex)
                            p += 1
                        }
                    }
                } else if training {
                    argmax.withUnsafeMutableBufferPointer { ab in
                        let xp = SharedPointer(x), yp = SharedPointer(y), ap = SharedIndices(ab.baseAddress!)
                        let shape = WindowShape(height: h, width: w, kernel: k, stride: st)
                        WorkerPool.forEachSlice(planes, minimumSlice: WorkerPool.minimumItems(elementsPerItem: h * w)) {
                            r in
                            Self.forwardTraining(xp, into: yp, argmax: ap, planes: r, shape)
                        }
                    }
                } else if k == 2 && st == 2 {
                    // Inference, 2×2 windows: a vertical max of two rows, then a max of
                    // adjacent lanes, four outputs per SIMD8 pair (the frozen stages' path).
                    let ow4 = ow & ~3
                    for plane in 0..<planes {
                        let src = x + plane * h * w
                        let dst = y + plane * oh * ow
                        for oy in 0..<oh {
                            let r0 = UnsafeRawPointer(src + 2 * oy * w), r1 = UnsafeRawPointer(src + (2 * oy + 1) * w)
                            let out = dst + oy * ow
                            var ox = 0
                            while ox < ow4 {
                                // Compare-and-select rather than `pointwiseMax`, which does not
                                // inline to a vector max here (measured: 17 % of the l2 step).
                                let a = r0.loadUnaligned(fromByteOffset: ox &* 8, as: SIMD8<Float>.self)
                                let b = r1.loadUnaligned(fromByteOffset: ox &* 8, as: SIMD8<Float>.self)
                                let m = a.replacing(with: b, where: b .> a)
                                let e = m.evenHalf, o = m.oddHalf
                                UnsafeMutableRawPointer(out + ox).storeBytes(
                                    of: e.replacing(with: o, where: o .> e), as: SIMD4<Float>.self)
                                ox &+= 4
                            }
                            let a = src + 2 * oy * w, b = a + w
                            while ox < ow {
                                out[ox] = Swift.max(
                                    Swift.max(a[2 * ox], a[2 * ox + 1]), Swift.max(b[2 * ox], b[2 * ox + 1]))
                                ox += 1
                            }
                        }
                    }
                } else {
                    for plane in 0..<planes {
                        let src = x + plane * h * w
                        let dst = y + plane * oh * ow
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                let start = src + oy * st * w + ox * st
                                var best = start[0]
                                for ky in 0..<k {
                                    let row = start + ky * w
                                    for kx in 0..<k { best = Swift.max(best, row[kx]) }
                                }
                                dst[oy * ow + ox] = best
                            }
                        }
                    }
                }
            }
        }
        cachedInputShape = training ? s : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let s = cachedInputShape else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let h = s[2], w = s[3]
        let oh = outputSide(h), ow = outputSide(w)
        precondition(
            outputGradient.shape == [s[0], s[1], oh, ow],
            "\(name): output gradient shape \(outputGradient.shape) does not match the last forward")
        let planes = s[0] * s[1]
        let k = kernelSize, st = stride
        if st == k && padding == 0 {
            // Non-overlapping windows: every input position gets at most one contribution,
            // so each window is written in full (its maximum gets `g + 0`, the rest 0) and
            // only the rows/columns no window covers are zeroed: one pass, no zero-fill
            // followed by a scatter. `g + 0` keeps the bits of the former `0 + g` (−0 → +0).
            var inputGradient = Tensor.uninitialized(shape: s)
            outputGradient.withUnsafeBufferPointer { gb in
                inputGradient.withUnsafeMutableBufferPointer { db in
                    argmax.withUnsafeBufferPointer { ab in
                        let g = gb.baseAddress!, d = db.baseAddress!, a = ab.baseAddress!
                        if k == 2 && h == 2 && w == 2 {
                            // One 2×2 window per plane: four planes per SIMD16, branch-free.
                            let lane = SIMD16<Int32>(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)
                            let dr = UnsafeMutableRawPointer(d), gr = UnsafeRawPointer(g), ar = UnsafeRawPointer(a)
                            var p = 0
                            while p + 4 <= planes {
                                let gv = gr.loadUnaligned(fromByteOffset: p &* 4, as: SIMD4<Float>.self) + 0
                                let av = ar.loadUnaligned(fromByteOffset: p &* 4, as: SIMD4<Int32>.self)
                                let g16 = SIMD16<Float>(
                                    gv[0], gv[0], gv[0], gv[0], gv[1], gv[1], gv[1], gv[1],
                                    gv[2], gv[2], gv[2], gv[2], gv[3], gv[3], gv[3], gv[3])
                                let a16 = SIMD16<Int32>(
                                    av[0], av[0], av[0], av[0], av[1], av[1], av[1], av[1],
                                    av[2], av[2], av[2], av[2], av[3], av[3], av[3], av[3])
                                let out = SIMD16<Float>(repeating: 0).replacing(with: g16, where: lane .== a16)
                                dr.storeBytes(of: out, toByteOffset: p &* 16, as: SIMD16<Float>.self)
                                p &+= 4
                            }
                            while p < planes {
                                let gv = g[p] + 0, idx = Int(a[p])
                                for i in 0..<4 { d[p * 4 + i] = i == idx ? gv : 0 }
                                p += 1
                            }
                            return
                        }
                        let gp = SharedPointer(g), ap = SharedIndices(a), dp = SharedPointer(d)
                        WorkerPool.forEachSlice(planes, minimumSlice: WorkerPool.minimumItems(elementsPerItem: h * w)) {
                            r in
                            Self.scatterNonOverlapping(gp, ap, into: dp, planes: r, height: h, width: w, kernel: k)
                        }
                    }
                }
            }
            return inputGradient
        }
        var inputGradient = Tensor.zeros(s)
        outputGradient.withUnsafeBufferPointer { gb in
            inputGradient.withUnsafeMutableBufferPointer { db in
                argmax.withUnsafeBufferPointer { ab in
                    let g = gb.baseAddress!, d = db.baseAddress!, a = ab.baseAddress!
                    for plane in 0..<planes {
                        let dst = d + plane * h * w
                        let base = plane * oh * ow
                        for j in 0..<(oh * ow) { dst[Int(a[base + j])] += g[base + j] }
                    }
                }
            }
        }
        return inputGradient
    }

    /// Sizes of a window loop.
    private struct WindowShape: Sendable {
        var height: Int, width: Int, kernel: Int, stride: Int
        var outputHeight: Int { (height - kernel) / stride + 1 }
        var outputWidth: Int { (width - kernel) / stride + 1 }
    }

    /// The training forward without padding for `planes`: each window's maximum and the
    /// offset of its first maximum within the plane.
    private static func forwardTraining(
        _ x: SharedPointer, into y: SharedPointer, argmax a: SharedIndices, planes: Range<Int>, _ shape: WindowShape
    ) {
        let h = shape.height, w = shape.width, k = shape.kernel, st = shape.stride
        let oh = shape.outputHeight, ow = shape.outputWidth
        for plane in planes {
            let src = x.p + plane * h * w
            let dst = plane * oh * ow
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let start = oy * st * w + ox * st
                    var best = src[start], bestIndex = start
                    if k == 2 {
                        // The common 2×2 window, unrolled. Measured: this form
                        // (compiled to conditional moves) beats an explicit select tree.
                        let v1 = src[start + 1], v2 = src[start + w], v3 = src[start + w + 1]
                        if v1 > best { best = v1; bestIndex = start + 1 }
                        if v2 > best { best = v2; bestIndex = start + w }
                        if v3 > best { best = v3; bestIndex = start + w + 1 }
                        y.p[dst + oy * ow + ox] = best
                        a.p[dst + oy * ow + ox] = Int32(truncatingIfNeeded: bestIndex)
                        continue
                    }
                    for ky in 0..<k {
                        let row = start + ky * w
                        for kx in 0..<k {
                            // Selects, not branches: the winner is data-dependent.
                            let v = src[row + kx]
                            let better = v > best
                            best = better ? v : best
                            bestIndex = better ? row + kx : bestIndex
                        }
                    }
                    y.p[dst + oy * ow + ox] = best
                    a.p[dst + oy * ow + ox] = Int32(truncatingIfNeeded: bestIndex)
                }
            }
        }
    }

    /// Backward of non-overlapping windows for `planes`: each window is written in full (its
    /// maximum gets `g + 0`, the rest 0) and only the rows and columns no window covers are
    /// zeroed. 2×2 windows run four at a time: two SIMD8 stores per pair of input rows.
    private static func scatterNonOverlapping(
        _ g: SharedPointer, _ a: SharedIndices, into d: SharedPointer, planes: Range<Int>,
        height h: Int, width w: Int, kernel k: Int
    ) {
        let oh = h / k, ow = w / k
        let coveredH = oh * k, coveredW = ow * k
        let lane = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
        for plane in planes {
            let dst = d.p + plane * h * w
            let base = plane * oh * ow
            for oy in 0..<oh {
                var ox = 0
                if k == 2 {
                    let r0 = UnsafeMutableRawPointer(dst + 2 * oy * w)
                    let r1 = UnsafeMutableRawPointer(dst + (2 * oy + 1) * w)
                    let gr = UnsafeRawPointer(g.p + base + oy * ow), ar = UnsafeRawPointer(a.p + base + oy * ow)
                    while ox + 4 <= ow {
                        let gv = gr.loadUnaligned(fromByteOffset: ox &* 4, as: SIMD4<Float>.self) + 0
                        let av = ar.loadUnaligned(fromByteOffset: ox &* 4, as: SIMD4<Int32>.self)
                        let g8 = SIMD8<Float>(gv[0], gv[0], gv[1], gv[1], gv[2], gv[2], gv[3], gv[3])
                        let a8 = SIMD8<Int32>(av[0], av[0], av[1], av[1], av[2], av[2], av[3], av[3])
                        let top = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: 2 * oy * w + 2 * ox)) &+ lane
                        let bottom = top &+ Int32(truncatingIfNeeded: w)
                        r0.storeBytes(
                            of: SIMD8<Float>().replacing(with: g8, where: a8 .== top), toByteOffset: ox &* 8,
                            as: SIMD8<Float>.self)
                        r1.storeBytes(
                            of: SIMD8<Float>().replacing(with: g8, where: a8 .== bottom), toByteOffset: ox &* 8,
                            as: SIMD8<Float>.self)
                        ox &+= 4
                    }
                }
                while ox < ow {
                    let start = oy * k * w + ox * k
                    let idx = Int(a.p[base + oy * ow + ox])
                    let gv = g.p[base + oy * ow + ox] + 0
                    for ky in 0..<k {
                        let row = start + ky * w
                        for kx in 0..<k { dst[row + kx] = row + kx == idx ? gv : 0 }
                    }
                    ox += 1
                }
                if coveredW < w {
                    for ky in 0..<k {
                        let row = dst + (oy * k + ky) * w
                        for x in coveredW..<w { row[x] = 0 }
                    }
                }
            }
            if coveredH < h {
                (dst + coveredH * w).update(repeating: 0, count: (h - coveredH) * w)
            }
        }
    }

    /// The padded path (training and inference): windows clipped to the image; the argmax
    /// is an offset in the unpadded plane, so backward's scatter needs no special case.
    private func forwardPadded(_ input: Tensor, mode: Mode) -> Tensor {
        if mode == .inference && kernelSize == 4 && stride == 2 && padding == 1 { return forwardInference4x4(input) }
        let s = input.shape, h = s[2], w = s[3]
        let oh = outputSide(h), ow = outputSide(w)
        let planes = s[0] * s[1], k = kernelSize, st = stride, p = padding
        var output = Tensor.uninitialized(shape: [s[0], s[1], oh, ow])
        let training = mode == .training
        if training && argmax.count < output.count { argmax = [Int32](repeating: 0, count: output.count) }
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                argmax.withUnsafeMutableBufferPointer { ab in
                    let x = SharedPointer(xb.baseAddress!), y = SharedPointer(yb.baseAddress!)
                    let a = SharedIndices(ab.baseAddress!)
                    WorkerPool.forEachSlice(planes, minimumSlice: WorkerPool.minimumItems(elementsPerItem: h * w)) {
                        slice in
                        for plane in slice {
                            let src = x.p + plane * h * w, base = plane * oh * ow
                            for oy in 0..<oh {
                                let y0 = Swift.max(0, oy * st - p), y1 = Swift.min(h, oy * st - p + k)
                                for ox in 0..<ow {
                                    let x0 = Swift.max(0, ox * st - p), x1 = Swift.min(w, ox * st - p + k)
                                    var best = -Float.infinity, bestIndex = y0 * w + x0
                                    for yy in y0..<y1 {
                                        for xx in x0..<x1 where src[yy * w + xx] > best {
                                            best = src[yy * w + xx]
                                            bestIndex = yy * w + xx
                                        }
                                    }
                                    y.p[base + oy * ow + ox] = best
                                    if training { a.p[base + oy * ow + ox] = Int32(truncatingIfNeeded: bestIndex) }
                                }
                            }
                        }
                    }
                }
            }
        }
        cachedInputShape = training ? s : nil
        return output
    }

    /// Inference with 4×4 windows, stride 2, padding 1 (the wide stack's pooling), in two
    /// separable SIMD passes per output row: the maximum of the (up to) four input rows, into
    /// a row padded with −∞, then of four neighbours at stride 2 (even/odd halves of two
    /// SIMD16 loads). Maxima are exact and NaN never wins a comparison, as in the
    /// window loop, so the output is bit-identical to it.
    private func forwardInference4x4(_ input: Tensor) -> Tensor {
        let s = input.shape, h = s[2], w = s[3]
        let oh = outputSide(h), ow = outputSide(w), planes = s[0] * s[1]
        var output = Tensor.uninitialized(shape: [s[0], s[1], oh, ow])
        let width = 2 * ((ow + 7) & ~7) + 18
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                let x = SharedPointer(xb.baseAddress!), y = SharedPointer(yb.baseAddress!)
                WorkerPool.forEachSlice(planes, minimumSlice: WorkerPool.minimumItems(elementsPerItem: h * w)) {
                    slice in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: width) { buffer in
                        let row = buffer.baseAddress!
                        row.initialize(repeating: -.infinity, count: width)
                        for plane in slice {
                            let src = x.p + plane * h * w, dst = y.p + plane * oh * ow
                            for oy in 0..<oh {
                                let y0 = Swift.max(0, 2 * oy - 1), y1 = Swift.min(h, 2 * oy + 3)
                                // row[1 + x] = max over rows y0..<y1 of column x
                                let column = row + 1
                                (column).update(from: src + y0 * w, count: w)
                                for yy in (y0 + 1)..<y1 {
                                    let line = src + yy * w
                                    var x = 0
                                    while x + 8 <= w {
                                        let a = UnsafeRawPointer(column + x).loadUnaligned(as: SIMD8<Float>.self)
                                        let b = UnsafeRawPointer(line + x).loadUnaligned(as: SIMD8<Float>.self)
                                        UnsafeMutableRawPointer(column + x).storeBytes(
                                            of: a.replacing(with: b, where: b .> a), as: SIMD8<Float>.self)
                                        x += 8
                                    }
                                    while x < w {
                                        if line[x] > column[x] { column[x] = line[x] }
                                        x += 1
                                    }
                                }
                                // out[ox] = max(row[2ox … 2ox + 3])
                                let out = dst + oy * ow
                                var ox = 0
                                while ox < ow {
                                    let r = UnsafeRawPointer(row + 2 * ox)
                                    let a = r.loadUnaligned(as: SIMD16<Float>.self)
                                    let b = r.loadUnaligned(fromByteOffset: 8, as: SIMD16<Float>.self)
                                    let m1 = a.evenHalf.replacing(with: a.oddHalf, where: a.oddHalf .> a.evenHalf)
                                    let m2 = b.evenHalf.replacing(with: b.oddHalf, where: b.oddHalf .> b.evenHalf)
                                    let m = m1.replacing(with: m2, where: m2 .> m1)
                                    for l in 0..<Swift.min(8, ow - ox) { out[ox + l] = m[l] }
                                    ox += 8
                                }
                            }
                        }
                    }
                }
            }
        }
        cachedInputShape = nil
        return output
    }
}
