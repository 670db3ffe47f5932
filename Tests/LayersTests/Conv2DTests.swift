import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

/// Direct convolution: out[n,o,y,x] = b[o] + Σ w[o,c,ky,kx] · in[n,c,y·s−p+ky, x·s−p+kx].
private func naiveConvolution(_ x: Tensor, _ conv: Conv2D) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let k = conv.kernelSize, s = conv.stride, p = conv.padding, o = conv.outputChannels
    let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
    var out = Tensor.zeros([n, o, oh, ow])
    let wt = conv.weight.value, b = conv.bias?.value
    for ni in 0..<n {
        for oi in 0..<o {
            for y in 0..<oh {
                for xx in 0..<ow {
                    var acc = b.map { $0[flat: oi] } ?? 0
                    for ci in 0..<c {
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let iy = y * s - p + ky, ix = xx * s - p + kx
                                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                acc +=
                                    wt[flat: ((oi * c + ci) * k + ky) * k + kx]
                                    * x[flat: ((ni * c + ci) * h + iy) * w + ix]
                            }
                        }
                    }
                    out[flat: ((ni * o + oi) * oh + y) * ow + xx] = acc
                }
            }
        }
    }
    return out
}

final class Conv2DTests: XCTestCase {
    /// (kernel, stride, padding, height, width)
    private let configurations: [(Int, Int, Int, Int, Int)] = [
        (3, 1, 0, 5, 5), (3, 1, 1, 5, 4), (3, 2, 1, 6, 5), (2, 2, 0, 5, 5), (1, 1, 0, 3, 3), (6, 1, 0, 7, 7),
        (2, 1, 2, 3, 3),
        (3, 1, 1, 8, 9),  // 72 output positions: the per-image GEMM path straight into NCHW
    ]

    private func makeConv(_ k: Int, _ s: Int, _ p: Int, c: Int = 2, o: Int = 3, seed: UInt64 = 1) throws -> Conv2D {
        var rng = SeededGenerator(seed: seed)
        let conv = try Conv2D(inputChannels: c, outputChannels: o, kernelSize: k, stride: s, padding: p, using: &rng)
        // A non-zero bias so the bias path is exercised.
        conv.bias!.value = .uniform([o], low: -0.5, high: 0.5, using: &rng)
        return conv
    }

    func testForwardMatchesDirectConvolution() throws {
        for (k, s, p, h, w) in configurations {
            let conv = try makeConv(k, s, p)
            var rng = SeededGenerator(seed: 9)
            let x = Tensor.uniform([3, 2, h, w], low: -1, high: 1, using: &rng)
            let y = conv.forward(x, mode: .inference)
            XCTAssertEqual(y.shape, try conv.outputShape(for: x.shape), "k\(k) s\(s) p\(p)")
            assertClose(y, naiveConvolution(x, conv))
        }
    }

    func testGradientsForSeveralStridesAndPaddings() throws {
        for (k, s, p, h, w) in configurations {
            let conv = try makeConv(k, s, p)
            var rng = SeededGenerator(seed: 5)
            let x = Tensor.uniform([2, 2, h, w], low: -1, high: 1, using: &rng)
            assertGradientsMatch(conv, input: x)
        }
    }

    func testGradientWithoutBias() throws {
        var rng = SeededGenerator(seed: 2)
        let conv = try Conv2D(
            inputChannels: 1, outputChannels: 2, kernelSize: 3, stride: 2, padding: 1, bias: false, using: &rng)
        XCTAssertEqual(conv.parameters.map(\.name), ["weight"])
        assertGradientsMatch(conv, input: .uniform([2, 1, 5, 5], low: -1, high: 1, using: &rng))
    }

    func testParameterShapesFollowPyTorch() throws {
        var rng = SeededGenerator(seed: 1)
        let conv = try Conv2D(inputChannels: 3, outputChannels: 64, kernelSize: 6, using: &rng)
        XCTAssertEqual(conv.parameters.map(\.name), ["weight", "bias"])
        XCTAssertEqual(conv.weight.value.shape, [64, 3, 6, 6])
        XCTAssertEqual(conv.bias?.value.shape, [64])
        XCTAssertEqual(try conv.outputShape(for: [768, 3, 7, 7]), [768, 64, 2, 2])
    }

    func testGradientsAccumulateAcrossBackwardCalls() throws {
        let conv = try makeConv(3, 1, 1)
        var rng = SeededGenerator(seed: 4)
        let x = Tensor.uniform([2, 2, 4, 4], low: -1, high: 1, using: &rng)
        let y = conv.forward(x, mode: .training)
        let g = Tensor.uniform(y.shape, low: -1, high: 1, using: &rng)
        _ = conv.backward(g)
        let once = conv.weight.gradient
        _ = conv.backward(g)
        for i in 0..<once.count { XCTAssertEqual(conv.weight.gradient[flat: i], 2 * once[flat: i], accuracy: 1e-4) }
    }

    func testFrozenConvLeavesParameterGradientsZeroButPassesInputGradient() throws {
        let conv = try makeConv(3, 1, 1)
        conv.setFrozen(true)
        var rng = SeededGenerator(seed: 4)
        let x = Tensor.uniform([2, 2, 4, 4], low: -1, high: 1, using: &rng)
        let y = conv.forward(x, mode: .training)
        let dx = conv.backward(.uniform(y.shape, low: -1, high: 1, using: &rng))
        XCTAssertTrue(conv.weight.gradient.scalars.allSatisfy { $0 == 0 })
        XCTAssertTrue(conv.bias!.gradient.scalars.allSatisfy { $0 == 0 })
        XCTAssertTrue(dx.scalars.contains { $0 != 0 })
        // The input gradient of a frozen layer is still checked numerically.
        assertGradientsMatch(conv, input: x)
    }

    func testSkippingTheInputGradientStillGivesWeightGradients() throws {
        let reference = try makeConv(3, 2, 1, seed: 8)
        let skipping = try makeConv(3, 2, 1, seed: 8)
        skipping.needsInputGradient = false
        var rng = SeededGenerator(seed: 4)
        let x = Tensor.uniform([2, 2, 5, 5], low: -1, high: 1, using: &rng)
        let g = Tensor.uniform(try reference.outputShape(for: x.shape), low: -1, high: 1, using: &rng)
        _ = reference.forward(x, mode: .training)
        _ = reference.backward(g)
        _ = skipping.forward(x, mode: .training)
        let dx = skipping.backward(g)
        XCTAssertTrue(dx.scalars.allSatisfy { $0 == 0 })
        XCTAssertTrue(skipping.weight.gradient.isBitIdentical(to: reference.weight.gradient))
    }

    func testBatchSizeChangesReuseAndRegrowScratch() throws {
        let conv = try makeConv(3, 1, 0)
        var rng = SeededGenerator(seed: 6)
        for n in [4, 1, 3, 6] {
            let x = Tensor.uniform([n, 2, 5, 5], low: -1, high: 1, using: &rng)
            assertClose(conv.forward(x, mode: .training), naiveConvolution(x, conv))
        }
    }

    /// The per-image forward (GEMM straight into NCHW, used for ≥ 64 output positions and a
    /// small weight) equals one whole-batch GEMM followed by a transpose and the bias, with a
    /// patch length (400) long enough for OpenBLAS to block the k-sum. GEMMs of different
    /// shapes may round differently (OpenBLAS picks edge kernels by shape, and which ones
    /// depends on the CPU kernel set), so the two agree to a tolerance; the same shapes on
    /// one or two threads agree bit for bit.
    func testPerImageForwardMatchesWholeBatchGEMM() throws {
        var rng = SeededGenerator(seed: 12)
        let conv = try Conv2D(
            inputChannels: 16, outputChannels: 32, kernelSize: 5, padding: 2, algorithm: .im2row, using: &rng)
        conv.bias!.value = .uniform([32], low: -0.5, high: 0.5, using: &rng)
        let (n, c, h, w, o) = (2, 16, 12, 12, 32)
        let x = Tensor.uniform([n, c, h, w], low: -1, high: 1, using: &rng)
        let g = ConvGeometry(channels: c, height: h, width: w, kernel: (5, 5), stride: (1, 1), padding: (2, 2))
        let p = g.outputPositions, l = g.patchLength
        var cols = [Float](repeating: 0, count: n * p * l)
        x.withUnsafeBufferPointer { xb in
            cols.withUnsafeMutableBufferPointer {
                Im2Col.im2row(xb.baseAddress!, batch: n, geometry: g, rows: $0.baseAddress!)
            }
        }
        var product = [Float](repeating: 0, count: n * p * o)
        let wt = conv.weight.value.scalars, b = conv.bias!.value.scalars
        BLAS.gemm(
            transposeA: false, transposeB: true, m: n * p, n: o, k: l, alpha: 1, a: cols, lda: l, b: wt, ldb: l,
            beta: 0, c: &product, ldc: o)
        var expected = [Float](repeating: 0, count: n * o * p)
        for ni in 0..<n {
            for oi in 0..<o {
                for pi in 0..<p { expected[(ni * o + oi) * p + pi] = product[(ni * p + pi) * o + oi] + b[oi] }
            }
        }
        for mode in [Mode.inference, .training] {
            let y = conv.forward(x, mode: mode)
            assertClose(y, try Tensor(shape: y.shape, values: expected), tolerance: 1e-5)
        }
        // With two BLAS threads the images are split across two workers (odd batch: uneven
        // halves); the result must not change by a bit, and the thread count is restored.
        let saved = BLAS.threadCount
        defer { BLAS.threadCount = saved }
        BLAS.threadCount = 2
        let x3 = Tensor.uniform([3, c, h, w], low: -1, high: 1, using: &rng)
        BLAS.threadCount = 1
        let single = conv.forward(x3, mode: .inference).scalars
        BLAS.threadCount = 2
        for mode in [Mode.inference, .training] {
            XCTAssertEqual(
                conv.forward(x3, mode: mode).scalars.map(\.bitPattern), single.map(\.bitPattern), "\(mode), 2 threads")
            XCTAssertEqual(BLAS.threadCount, 2)
        }
    }

    /// The whole-batch path (few positions per image) with two BLAS threads: im2row, the
    /// NCHW transpose and the row2im fold run on two workers over disjoint images, so
    /// output and gradients must equal the one-thread run bit for bit.
    func testWholeBatchPathIsBitIdenticalAcrossThreadCounts() throws {
        var rng = SeededGenerator(seed: 21)
        let x = Tensor.uniform([5, 8, 6, 6], low: -1, high: 1, using: &rng)
        let dy = Tensor.uniform([5, 12, 4, 4], low: -1, high: 1, using: &rng)
        func run(threads: Int) throws -> [[UInt32]] {
            var init_ = SeededGenerator(seed: 22)
            let conv = try Conv2D(inputChannels: 8, outputChannels: 12, kernelSize: 3, using: &init_)
            conv.bias!.value = .uniform([12], low: -0.5, high: 0.5, using: &init_)
            let saved = BLAS.threadCount
            defer { BLAS.threadCount = saved }
            BLAS.threadCount = threads
            let y = conv.forward(x, mode: .training)
            let dx = conv.backward(dy)
            return [y.scalars, dx.scalars, conv.weight.gradient.scalars, conv.bias!.gradient.scalars].map {
                $0.map(\.bitPattern)
            }
        }
        let one = try run(threads: 1), two = try run(threads: 2)
        XCTAssertEqual(one, two)
        XCTAssertFalse(one[1].allSatisfy { $0 == 0 })
    }

    /// The per-image backward (≥ 64 output positions, a small weight: the first layers of cnn
    /// and wide) works from the NCHW output gradient in chunks of eight images with one
    /// partial weight gradient each. Its weight, bias and input gradients equal direct sums
    /// in Double (relative 1e-5), for a batch of 11 (two chunks, the second short), and are
    /// the same bits with one and two threads.
    func testPerImageBackwardMatchesDirectSumsOnAnyThreadCount() throws {
        let (n, c, h, w, o, k, p) = (11, 3, 12, 12, 8, 5, 2)
        var rng = SeededGenerator(seed: 31)
        let x = Tensor.uniform([n, c, h, w], low: -1, high: 1, using: &rng)
        let dy = Tensor.uniform([n, o, h, w], low: -1, high: 1, using: &rng)
        func run(threads: Int) throws -> (conv: Conv2D, grads: [Tensor]) {
            var initRNG = SeededGenerator(seed: 32)
            let conv = try Conv2D(inputChannels: c, outputChannels: o, kernelSize: k, padding: p, using: &initRNG)
            let saved = BLAS.threadCount
            defer { BLAS.threadCount = saved }
            BLAS.threadCount = threads
            _ = conv.forward(x, mode: .training)
            let dx = conv.backward(dy)
            return (conv, [conv.weight.gradient, conv.bias!.gradient, dx])
        }
        let (conv, one) = try run(threads: 1)
        let two = try run(threads: 2).grads
        for (a, b) in zip(one, two) { XCTAssertTrue(a.isBitIdentical(to: b)) }
        var dw = [Double](repeating: 0, count: o * c * k * k), db = [Double](repeating: 0, count: o)
        var dx = [Double](repeating: 0, count: x.count)
        let wt = conv.weight.value
        for ni in 0..<n {
            for oi in 0..<o {
                for yy in 0..<h {
                    for xx in 0..<w {
                        let g = Double(dy[flat: ((ni * o + oi) * h + yy) * w + xx])
                        db[oi] += g
                        for ci in 0..<c {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = yy - p + ky, ix = xx - p + kx
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    let wi = ((oi * c + ci) * k + ky) * k + kx, xi = ((ni * c + ci) * h + iy) * w + ix
                                    dw[wi] += g * Double(x[flat: xi])
                                    dx[xi] += g * Double(wt[flat: wi])
                                }
                            }
                        }
                    }
                }
            }
        }
        for (got, want) in zip(one, [dw, db, dx]) {
            let scale = want.map(abs).max()!
            for (a, b) in zip(got.scalars, want) { XCTAssertEqual(Double(a), b, accuracy: 1e-5 * scale) }
        }
    }

    /// A batch large enough that backward forms the patch gradient in several chunks of
    /// images must give, image by image, the input gradient of that image alone (to a
    /// tolerance: the chunk's GEMM has another shape than one image's).
    func testChunkedInputGradientMatchesPerImage() throws {
        var rng = SeededGenerator(seed: 11)
        let conv = try Conv2D(inputChannels: 16, outputChannels: 8, kernelSize: 5, padding: 2, using: &rng)
        let n = 7, imageSize = 16 * 32 * 32, outSize = 8 * 32 * 32
        let x = Tensor.uniform([n, 16, 32, 32], low: -1, high: 1, using: &rng)
        let g = Tensor.uniform([n, 8, 32, 32], low: -1, high: 1, using: &rng)
        _ = conv.forward(x, mode: .training)
        let dx = conv.backward(g).scalars
        for i in 0..<n {
            let xi = try Tensor(
                shape: [1, 16, 32, 32], values: Array(x.scalars[(i * imageSize)..<((i + 1) * imageSize)]))
            let gi = try Tensor(shape: [1, 8, 32, 32], values: Array(g.scalars[(i * outSize)..<((i + 1) * outSize)]))
            _ = conv.forward(xi, mode: .training)
            let dxi = conv.backward(gi)
            let slice = try Tensor(shape: dxi.shape, values: Array(dx[(i * imageSize)..<((i + 1) * imageSize)]))
            assertClose(dxi, slice, tolerance: 1e-5)
        }
    }

    func testInvalidConfigurationsAndShapesThrow() throws {
        var rng = SeededGenerator(seed: 1)
        XCTAssertThrowsError(try Conv2D(inputChannels: 0, outputChannels: 1, kernelSize: 3, using: &rng)) {
            XCTAssertEqual(
                $0 as? LayerError,
                .invalidConfiguration(layer: "Conv2D", option: "inputChannels", value: "0", reason: "must be > 0"))
        }
        XCTAssertThrowsError(try Conv2D(inputChannels: 1, outputChannels: 1, kernelSize: 3, stride: 0, using: &rng))
        XCTAssertThrowsError(try Conv2D(inputChannels: 1, outputChannels: 1, kernelSize: 3, padding: -1, using: &rng))
        let conv = try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 6, using: &rng)
        for bad in [[1, 3, 7], [1, 2, 7, 7], [1, 3, 5, 7], [1, 3, 0, 7]] {
            XCTAssertThrowsError(try conv.outputShape(for: bad), "\(bad)") { error in
                guard case let .incompatibleInput(layer, shape, _)? = error as? LayerError else {
                    return XCTFail("expected incompatibleInput, got \(error)")
                }
                XCTAssertTrue(layer.hasPrefix("Conv2D"))
                XCTAssertEqual(shape, bad)
            }
        }
    }

    /// The direct kernel of few-channel layers (CKernels) against a loop in Double: output
    /// widths that are not a multiple of 16, output counts that are not a multiple of 8, kernel
    /// widths 3 to 7 (6: the paper classifier's first layer), with and without bias, in inference
    /// and in training.
    func testDirectForwardOfFewChannelLayersMatchesALoop() throws {
        for (c, o, h, w, k, pad, bias) in [
            (3, 13, 19, 21, 5, 2, true), (1, 8, 7, 33, 3, 1, false), (4, 3, 6, 5, 3, 0, true),
            (3, 9, 32, 32, 6, 0, true), (2, 8, 12, 12, 7, 3, false),
        ] {
            var rng = SeededGenerator(seed: 21)
            let conv = try Conv2D(
                inputChannels: c, outputChannels: o, kernelSize: k, padding: pad, bias: bias, using: &rng)
            if bias { conv.bias!.value = .uniform([o], low: -0.5, high: 0.5, using: &rng) }
            let n = 2
            let x = Tensor.uniform([n, c, h, w], low: -1, high: 1, using: &rng)
            let g = ConvGeometry(channels: c, height: h, width: w, kernel: (k, k), stride: (1, 1), padding: (pad, pad))
            XCTAssertTrue(Conv2D.usesDirectForward(g))
            let (oh, ow) = (g.outputHeight, g.outputWidth)
            let wv = conv.weight.value.scalars, xv = x.scalars
            var expected = [Float](repeating: 0, count: n * o * oh * ow)
            for ni in 0..<n {
                for oi in 0..<o {
                    for y in 0..<oh {
                        for xo in 0..<ow {
                            var sum = Double(bias ? conv.bias!.value.scalars[oi] : 0)
                            for ci in 0..<c {
                                for ky in 0..<k {
                                    for kx in 0..<k {
                                        let iy = y + ky - pad, ix = xo + kx - pad
                                        guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                        let weight = wv[((oi * c + ci) * k + ky) * k + kx]
                                        sum += Double(weight) * Double(xv[((ni * c + ci) * h + iy) * w + ix])
                                    }
                                }
                            }
                            expected[((ni * o + oi) * oh + y) * ow + xo] = Float(sum)
                        }
                    }
                }
            }
            let reference = try Tensor(shape: [n, o, oh, ow], values: expected)
            assertClose(conv.forward(x, mode: .inference), reference, tolerance: 1e-5)
            assertClose(conv.forward(x, mode: .training), reference, tolerance: 1e-5)
        }
    }
}

/// The weight gradient of direct layers (``Conv2D/usesDirectForward(_:)``), which backward
/// forms from the input and the output gradient with a CKernels kernel instead of patches.
final class Conv2DDirectWeightGradientTests: XCTestCase {
    /// Σ over images and output positions of dY · input, in Double: `[o, c, k, k]`.
    private func loopWeightGradient(
        _ x: Tensor, _ dy: Tensor, outputs o: Int, kernel k: Int, padding pad: Int
    ) -> [Double] {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (dy.shape[2], dy.shape[3])
        let xv = x.scalars, dyv = dy.scalars
        var dw = [Double](repeating: 0, count: o * c * k * k)
        for ni in 0..<n {
            for oi in 0..<o {
                for y in 0..<oh {
                    for xo in 0..<ow {
                        let g = Double(dyv[((ni * o + oi) * oh + y) * ow + xo])
                        for ci in 0..<c {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = y + ky - pad, ix = xo + kx - pad
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    dw[((oi * c + ci) * k + ky) * k + kx] +=
                                        g * Double(xv[((ni * c + ci) * h + iy) * w + ix])
                                }
                            }
                        }
                    }
                }
            }
        }
        return dw
    }

    /// Σ over images and output positions of dY, in Double: `[o]`.
    private func loopBiasGradient(_ dy: Tensor) -> [Double] {
        let (n, o, positions) = (dy.shape[0], dy.shape[1], dy.shape[2] * dy.shape[3])
        let dyv = dy.scalars
        return (0..<o).map { oi in
            (0..<n).reduce(0.0) { sum, ni in
                sum + dyv[(ni * o + oi) * positions..<(ni * o + oi + 1) * positions].reduce(0.0) { $0 + Double($1) }
            }
        }
    }

    /// Kernel widths 3, 5, 6 and 7 (the register-blocked ones), 4 and 2 (the generic split),
    /// paddings 0 to 3, output widths that are not a multiple of 16 (and one that is), output
    /// counts that the kernel splits into blocks of five, four and single outputs (13 = 5 + 4 + 4,
    /// 6 = 4 + 1 + 1, 7 = 4 + 1 + 1 + 1, 9 = 5 + 4), 1 to 4 input channels and batches of one to
    /// three chunks of eight images; with and without the input gradient. The weight and the bias
    /// gradient (formed in the same kernel), each to relative 1e-5 of its largest entry.
    func testDirectWeightGradientMatchesALoop() throws {
        // (inputs, outputs, height, width, kernel, padding, batch)
        for (c, o, h, w, k, pad, n) in [
            (3, 13, 19, 21, 5, 2, 11), (1, 6, 10, 33, 3, 1, 9), (4, 7, 12, 10, 7, 3, 3), (2, 9, 9, 17, 4, 0, 17),
            (3, 8, 8, 32, 5, 2, 8), (2, 5, 9, 9, 2, 1, 2), (1, 4, 11, 11, 3, 0, 20), (3, 11, 32, 32, 6, 0, 9),
        ] {
            let g = ConvGeometry(channels: c, height: h, width: w, kernel: (k, k), stride: (1, 1), padding: (pad, pad))
            XCTAssertTrue(Conv2D.usesDirectForward(g))
            XCTAssertGreaterThanOrEqual(g.outputPositions, 64, "the per-image path")
            for needsInputGradient in [false, true] {
                var rng = SeededGenerator(seed: 41)
                let conv = try Conv2D(inputChannels: c, outputChannels: o, kernelSize: k, padding: pad, using: &rng)
                conv.needsInputGradient = needsInputGradient
                let x = Tensor.uniform([n, c, h, w], low: -1, high: 1, using: &rng)
                let dy = Tensor.uniform([n, o, g.outputHeight, g.outputWidth], low: -1, high: 1, using: &rng)
                _ = conv.forward(x, mode: .training)
                _ = conv.backward(dy)
                let expected = loopWeightGradient(x, dy, outputs: o, kernel: k, padding: pad)
                let expectedBias = loopBiasGradient(dy)
                for (got, want, name) in [
                    (conv.weight.gradient, expected, "weight"), (conv.bias!.gradient, expectedBias, "bias"),
                ] {
                    let scale = want.map(abs).max()!
                    var worst = 0.0
                    for (a, b) in zip(got.scalars, want) { worst = Swift.max(worst, abs(Double(a) - b) / scale) }
                    XCTAssertLessThanOrEqual(
                        worst, 1e-5, "\(name): c\(c) o\(o) \(h)×\(w) k\(k) p\(pad) n\(n) \(needsInputGradient)")
                }
            }
        }
    }

    /// A first layer (no input gradient) over a batch of three chunks, one of them short: the
    /// weight and bias gradients are the same bits with one and two threads.
    func testDirectWeightGradientIsBitIdenticalAcrossThreadCounts() throws {
        let (n, c, h, w, o, k, p) = (19, 3, 20, 20, 10, 5, 2)
        var rng = SeededGenerator(seed: 43)
        let x = Tensor.uniform([n, c, h, w], low: -1, high: 1, using: &rng)
        let dy = Tensor.uniform([n, o, h, w], low: -1, high: 1, using: &rng)
        func run(threads: Int) throws -> [[UInt32]] {
            var initRNG = SeededGenerator(seed: 44)
            let conv = try Conv2D(inputChannels: c, outputChannels: o, kernelSize: k, padding: p, using: &initRNG)
            conv.needsInputGradient = false
            let saved = BLAS.threadCount
            defer { BLAS.threadCount = saved }
            BLAS.threadCount = threads
            _ = conv.forward(x, mode: .training)
            _ = conv.backward(dy)
            return [conv.weight.gradient.scalars, conv.bias!.gradient.scalars].map { $0.map(\.bitPattern) }
        }
        let one = try run(threads: 1), two = try run(threads: 2)
        XCTAssertEqual(one, two)
        XCTAssertFalse(one[0].allSatisfy { $0 == 0 })
    }
}
