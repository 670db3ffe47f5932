import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

/// Random encoder state: centroids ~ N(0, 1), mean ~ N(0, 0.1), W = 0.8·I + a small symmetric perturbation.
private func makeEncoder(
    channels: Int, kernel: Int, filters: Int, stride: Int = 1, epsilon: Float = 0.05, seed: UInt64
) throws -> TriangleEncoder {
    var rng = SeededGenerator(seed: seed)
    let d = channels * kernel * kernel
    let centroids = Tensor.normal([filters, d], using: &rng)
    let mean = Tensor.normal([d], standardDeviation: 0.1, using: &rng)
    var w = Tensor.zeros([d, d])
    for i in 0..<d {
        for j in i..<d {
            let v = (i == j ? 0.8 : 0) + rng.nextNormal(standardDeviation: 0.05)
            w[flat: i * d + j] = v
            w[flat: j * d + i] = v
        }
    }
    return try TriangleEncoder(
        centroids: centroids, whiteningMean: mean, whiteningMatrix: w, inputChannels: channels, kernelSize: kernel,
        stride: stride, contrastEpsilon: epsilon)
}

/// Coates' encoder written out window by window in Double: contrast-normalise, whiten,
/// distances, triangle. Returns the output and the smallest |z̄ − z_k| (distance to the kink).
private func naiveEncode(_ x: Tensor, _ e: TriangleEncoder) -> (output: Tensor, kinkMargin: Double) {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let k = e.kernelSize, s = e.stride, kk = e.featureCount, d = c * k * k
    let oh = (h - k) / s + 1, ow = (w - k) / s + 1
    var out = Tensor.zeros([n, kk, oh, ow])
    var margin = Double.infinity
    let mu = e.whiteningMean.value, wm = e.whiteningMatrix.value, cents = e.centroids.value
    for ni in 0..<n {
        for oy in 0..<oh {
            for ox in 0..<ow {
                var patch = [Double]()
                for ci in 0..<c {
                    for ky in 0..<k {
                        for kx in 0..<k {
                            patch.append(Double(x[flat: ((ni * c + ci) * h + oy * s + ky) * w + ox * s + kx]))
                        }
                    }
                }
                let m = patch.reduce(0, +) / Double(d)
                let v = patch.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(d)
                let centred = (0..<d).map {
                    (patch[$0] - m) / (v + Double(e.contrastEpsilon)).squareRoot() - Double(mu[flat: $0])
                }
                let white = (0..<d).map { j in (0..<d).reduce(0.0) { $0 + centred[$1] * Double(wm[flat: $1 * d + j]) } }
                let z = (0..<kk).map { q in
                    (0..<d).reduce(0.0) { acc, j in
                        let t = white[j] - Double(cents[flat: q * d + j])
                        return acc + t * t
                    }.squareRoot()
                }
                let zbar = z.reduce(0, +) / Double(kk)
                for q in 0..<kk {
                    out[flat: ((ni * kk + q) * oh + oy) * ow + ox] = Float(max(0, zbar - z[q]))
                    margin = min(margin, abs(zbar - z[q]))
                }
            }
        }
    }
    return (out, margin)
}

final class TriangleActivationTests: XCTestCase {
    func testMatchesNaivePerWindowComputation() throws {
        for (stride, seed) in [(1, UInt64(1)), (2, 2)] {
            let e = try makeEncoder(channels: 3, kernel: 3, filters: 5, stride: stride, seed: seed)
            var rng = SeededGenerator(seed: seed + 10)
            let x = Tensor.uniform([2, 3, 6, 7], low: 0, high: 1, using: &rng)
            XCTAssertEqual(try e.outputShape(for: x.shape), [2, 5, (6 - 3) / stride + 1, (7 - 3) / stride + 1])
            let y = e.forward(x, mode: .inference)
            let (expected, _) = naiveEncode(x, e)
            assertClose(y, expected, tolerance: 1e-4)
            // Some features fire and some do not: the triangle is really applied.
            XCTAssertTrue(y.scalars.contains { $0 == 0 })
            XCTAssertTrue(y.scalars.contains { $0 > 0.1 })
        }
    }

    func testInferenceChunkingMatchesTrainingForward() throws {
        let e = try makeEncoder(channels: 2, kernel: 3, filters: 4, seed: 3)
        var rng = SeededGenerator(seed: 4)
        let x = Tensor.uniform([5, 2, 5, 5], low: 0, high: 1, using: &rng)
        let whole = e.forward(x, mode: .training)
        e.maxRowsPerChunk = 10  // 9 windows per image: one image per chunk
        let chunked = e.forward(x, mode: .inference)
        // Chunks run GEMMs of another shape, which may round differently.
        assertClose(chunked, whole, tolerance: 1e-5)
    }

    func testGradientCheck() throws {
        let e = try makeEncoder(channels: 2, kernel: 2, filters: 4, epsilon: 0.05, seed: 5)
        // The triangle has kinks at z_k = z̄; the check is only meaningful away from them
        // (a 1e-3 input step moves z by well under 0.02 here), so take the first seeded input
        // whose every output is at least 0.02 from its kink.
        var x = Tensor.zeros([0])
        for seed in UInt64(100)..<200 {
            var rng = SeededGenerator(seed: seed)
            let candidate = Tensor.uniform([2, 2, 4, 4], low: 0, high: 1, using: &rng)
            if naiveEncode(candidate, e).kinkMargin > 0.02 { x = candidate; break }
        }
        XCTAssertEqual(x.shape, [2, 2, 4, 4], "no seeded input away from the kinks")
        let y = e.forward(x, mode: .inference)
        XCTAssertTrue(
            y.scalars.contains { $0 == 0 } && y.scalars.contains { $0 > 0 }, "both sides of the triangle are exercised")
        let report = GradientCheck.check(layer: e, input: x, epsilon: 1e-3)
        XCTAssertTrue(report.passes(tolerance: 1e-2), "\(report)")
        XCTAssertEqual(report.checked, x.count)
    }

    func testBackwardIsNonTrivialAndCanBeSkipped() throws {
        // The input gradient is really computed (not zeros), and needsInputGradient = false skips it.
        let e = try makeEncoder(channels: 1, kernel: 2, filters: 3, seed: 7)
        var rng = SeededGenerator(seed: 8)
        let x = Tensor.uniform([1, 1, 3, 3], low: 0, high: 1, using: &rng)
        _ = e.forward(x, mode: .training)
        let g = e.backward(Tensor(shape: [1, 3, 2, 2], repeating: 1))
        XCTAssertTrue(g.scalars.contains { abs($0) > 1e-3 }, "input gradient is zero: \(g)")
        e.needsInputGradient = false
        _ = e.forward(x, mode: .training)
        let skipped = e.backward(Tensor(shape: [1, 3, 2, 2], repeating: 1))
        XCTAssertEqual(skipped.shape, x.shape)
        XCTAssertTrue(skipped.scalars.allSatisfy { $0 == 0 })
    }

    func testFlatImageGivesFiniteOutputAndGradient() throws {
        let e = try makeEncoder(channels: 1, kernel: 2, filters: 3, seed: 9)
        let x = Tensor(shape: [1, 1, 3, 3], repeating: 0.5)
        let y = e.forward(x, mode: .training)
        XCTAssertTrue(y.isFinite)
        XCTAssertTrue(e.backward(Tensor(shape: y.shape, repeating: 1)).isFinite)
    }

    func testBuffersNotParameters() throws {
        let e = try makeEncoder(channels: 3, kernel: 6, filters: 8, seed: 10)
        XCTAssertTrue(e.parameters.isEmpty)
        XCTAssertTrue(e.isFrozen)
        XCTAssertEqual(e.buffers.map(\.name), ["centroids", "whiteningMean", "whiteningMatrix"])
        XCTAssertEqual(e.buffers.map(\.value.shape), [[8, 108], [108], [108, 108]])
        XCTAssertEqual(e.patchLength, 108)
        XCTAssertEqual(try e.outputShape(for: [4, 3, 32, 32]), [4, 8, 27, 27])
    }

    func testReplacedBuffersAreUsed() throws {
        // A checkpoint loader assigns buffer values; the next forward must use them.
        let a = try makeEncoder(channels: 1, kernel: 2, filters: 3, seed: 11)
        let b = try makeEncoder(channels: 1, kernel: 2, filters: 3, seed: 12)
        var rng = SeededGenerator(seed: 13)
        let x = Tensor.uniform([1, 1, 4, 4], low: 0, high: 1, using: &rng)
        _ = a.forward(x, mode: .inference)
        for (dst, src) in zip(a.buffers, b.buffers) { dst.value = src.value }
        XCTAssertTrue(a.forward(x, mode: .inference).isBitIdentical(to: b.forward(x, mode: .inference)))
    }

    func testInvalidConfigurationThrows() {
        let d = 2 * 3 * 3
        let c = Tensor.zeros([4, d]), m = Tensor.zeros([d]), w = Tensor.zeros([d, d])
        func expectError(
            _ option: String, centroids: Tensor? = nil, mean: Tensor? = nil, matrix: Tensor? = nil,
            channels: Int = 2, kernel: Int = 3, stride: Int = 1, epsilon: Float = 0.1, line: UInt = #line
        ) {
            XCTAssertThrowsError(
                try TriangleEncoder(
                    centroids: centroids ?? c, whiteningMean: mean ?? m, whiteningMatrix: matrix ?? w,
                    inputChannels: channels, kernelSize: kernel, stride: stride, contrastEpsilon: epsilon),
                line: line
            ) { error in
                guard case let LayerError.invalidConfiguration(layer, opt, _, _) = error else {
                    return XCTFail("unexpected \(error)", line: line)
                }
                XCTAssertEqual(layer, "TriangleEncoder", line: line)
                XCTAssertEqual(opt, option, line: line)
            }
        }
        expectError("centroids", centroids: .zeros([4, d + 1]))
        expectError("centroids", centroids: .zeros([0, d]))
        expectError("centroids", centroids: .zeros([d]))
        expectError("whiteningMean", mean: .zeros([d - 1]))
        expectError("whiteningMatrix", matrix: .zeros([d, d - 1]))
        expectError("contrastEpsilon", epsilon: 0)
        expectError("contrastEpsilon", epsilon: .nan)
        expectError("kernelSize", kernel: 0)
        expectError("inputChannels", channels: 0)
        expectError("stride", stride: 0)
        var bad = c
        bad[flat: 5] = .infinity
        expectError("centroids", centroids: bad)
        XCTAssertNoThrow(
            try TriangleEncoder(
                centroids: c, whiteningMean: m, whiteningMatrix: w, inputChannels: 2, kernelSize: 3,
                contrastEpsilon: 0.1))
    }

    func testOutputShapeErrors() throws {
        let e = try makeEncoder(channels: 2, kernel: 3, filters: 4, seed: 14)
        for shape in [[2, 2, 5], [2, 3, 5, 5], [2, 2, 2, 5], [2, 2, 0, 5]] {
            XCTAssertThrowsError(try e.outputShape(for: shape)) { error in
                guard case LayerError.incompatibleInput = error else { return XCTFail("unexpected \(error)") }
            }
        }
    }
}
