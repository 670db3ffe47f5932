import LayerwiseTestSupport
import TensorCore
import XCTest

@testable import Layers

final class WhitenedConv2DTests: XCTestCase {
    /// A random symmetric positive-definite "whitening" matrix and mean for C·k·k = d.
    func whitening(d: Int, seed: UInt64) -> (Tensor, Tensor) {
        var g = SeededGenerator(seed: seed)
        let a = Tensor.uniform([d, d], low: -0.5, high: 0.5, using: &g)
        var z = try! BLAS.matmul(a, a, transposeB: true)
        for i in 0..<d { z[flat: i * d + i] += 1 }
        return (Tensor.uniform([d], low: -0.3, high: 0.3, using: &g), z)
    }

    func testForwardEqualsWhiteningEachWindowThenConvolving() throws {
        let (mu, z) = whitening(d: 2 * 3 * 3, seed: 1)
        var g = SeededGenerator(seed: 2)
        let layer = try WhitenedConv2D(
            inputChannels: 2, outputChannels: 3, kernelSize: 3, whiteningMean: mu, whiteningMatrix: z, using: &g)
        layer.bias.value = try Tensor(shape: [3], values: [0.1, -0.2, 0.3])
        let x = Tensor.uniform([2, 2, 5, 4], low: -1, high: 1, using: &g)
        let y = layer.forward(x, mode: .inference)
        XCTAssertEqual(y.shape, [2, 3, 3, 2])
        let d = 18
        for n in 0..<2 {
            for o in 0..<3 {
                for oy in 0..<3 {
                    for ox in 0..<2 {
                        var window = [Double](repeating: 0, count: d)
                        for c in 0..<2 {
                            for ky in 0..<3 {
                                for kx in 0..<3 {
                                    window[(c * 3 + ky) * 3 + kx] =
                                        Double(x[flat: ((n * 2 + c) * 5 + oy + ky) * 4 + ox + kx])
                                        - Double(mu[flat: (c * 3 + ky) * 3 + kx])
                                }
                            }
                        }
                        var expected = Double(layer.bias.value[flat: o])
                        for i in 0..<d {
                            var white = 0.0
                            for j in 0..<d { white += Double(z[flat: i * d + j]) * window[j] }
                            expected += Double(layer.weight.value[flat: o * d + i]) * white
                        }
                        XCTAssertEqual(Double(y[flat: ((n * 3 + o) * 3 + oy) * 2 + ox]), expected, accuracy: 1e-4)
                    }
                }
            }
        }
        // The folded plain convolution computes the same thing.
        let plain = try layer.foldedConvolution()
        let yPlain = plain.forward(x, mode: .inference)
        for i in 0..<y.count { XCTAssertEqual(y[flat: i], yPlain[flat: i], accuracy: 1e-5) }
    }

    func testSetFoldedParametersInvertsFolding() throws {
        let (mu, z) = whitening(d: 2 * 3 * 3, seed: 7)
        var g = SeededGenerator(seed: 8)
        let layer = try WhitenedConv2D(
            inputChannels: 2, outputChannels: 4, kernelSize: 3, whiteningMean: mu, whiteningMatrix: z, using: &g)
        let weff = Tensor.uniform([4, 2, 3, 3], low: -1, high: 1, using: &g)
        let beff = Tensor.uniform([4], low: -0.5, high: 0.5, using: &g)
        try layer.setFoldedParameters(weight: weff, bias: beff)
        let (w, b) = layer.foldedParameters()
        for i in 0..<w.count { XCTAssertEqual(w[flat: i], weff[flat: i], accuracy: 1e-4) }
        for i in 0..<b.count { XCTAssertEqual(b[flat: i], beff[flat: i], accuracy: 1e-4) }
        // Same outputs as the plain convolution with those filters.
        let plain = try Conv2D(inputChannels: 2, outputChannels: 4, kernelSize: 3, using: &g)
        plain.weight.value = weff
        plain.bias?.value = beff
        let x = Tensor.uniform([2, 2, 5, 6], low: -1, high: 1, using: &g)
        let y = layer.forward(x, mode: .inference), yPlain = plain.forward(x, mode: .inference)
        for i in 0..<y.count { XCTAssertEqual(y[flat: i], yPlain[flat: i], accuracy: 1e-4) }
        // A scale multiplies every output.
        try layer.setFoldedParameters(weight: weff, bias: beff, scale: 3)
        let y3 = layer.forward(x, mode: .inference)
        for i in 0..<y.count { XCTAssertEqual(y3[flat: i], 3 * yPlain[flat: i], accuracy: 1e-3) }
        // Bad input is a typed error.
        XCTAssertThrowsError(try layer.setFoldedParameters(weight: Tensor.zeros([3, 18]), bias: beff))
        XCTAssertThrowsError(try layer.setFoldedParameters(weight: weff, bias: Tensor.zeros([5])))
        XCTAssertThrowsError(try layer.setFoldedParameters(weight: weff, bias: beff, scale: -1))
        var notPD = z
        notPD[flat: 0] = -5
        let bad = try WhitenedConv2D(
            inputChannels: 2, outputChannels: 4, kernelSize: 3, whiteningMean: mu, whiteningMatrix: notPD, using: &g)
        XCTAssertThrowsError(try bad.setFoldedParameters(weight: weff, bias: beff)) { error in
            XCTAssertTrue("\(error)".contains("positive definite"), "\(error)")
        }
    }

    func testGradientCheck() throws {
        let (mu, z) = whitening(d: 2 * 2 * 2, seed: 3)
        var g = SeededGenerator(seed: 4)
        let layer = try WhitenedConv2D(
            inputChannels: 2, outputChannels: 3, kernelSize: 2, whiteningMean: mu, whiteningMatrix: z, using: &g)
        layer.bias.value = try Tensor(shape: [3], values: [0.05, -0.1, 0.2])
        let x = Tensor.uniform([2, 2, 4, 3], low: -1, high: 1, using: &g)
        let report = GradientCheck.check(layer: layer, input: x, epsilon: 1e-2)
        XCTAssertTrue(report.passes(tolerance: 1e-2), "\(report)")
        XCTAssertEqual(layer.parameters.map(\.name), ["weight", "bias"])
        XCTAssertEqual(layer.buffers.map(\.name), ["whiteningMean", "whiteningMatrix"])
    }

    func testFrozenLayerLeavesGradientsAtZeroAndBadWhiteningIsRejected() throws {
        let (mu, z) = whitening(d: 1 * 2 * 2, seed: 5)
        var g = SeededGenerator(seed: 6)
        let layer = try WhitenedConv2D(
            inputChannels: 1, outputChannels: 2, kernelSize: 2, whiteningMean: mu, whiteningMatrix: z, using: &g)
        layer.setFrozen(true)
        let x = Tensor.uniform([1, 1, 3, 3], low: -1, high: 1, using: &g)
        let y = layer.forward(x, mode: .training)
        _ = layer.backward(Tensor(shape: y.shape, repeating: 1))
        XCTAssertTrue(layer.weight.gradient.scalars.allSatisfy { $0 == 0 })
        XCTAssertThrowsError(
            try WhitenedConv2D(
                inputChannels: 1, outputChannels: 2, kernelSize: 2, whiteningMean: Tensor.zeros([3]),
                whiteningMatrix: z, using: &g))
        XCTAssertThrowsError(
            try WhitenedConv2D(
                inputChannels: 1, outputChannels: 2, kernelSize: 2, whiteningMean: mu,
                whiteningMatrix: Tensor.zeros([4, 3]), using: &g))
    }

    func testSetWhiteningReplacesMuAndZAndKeepsW() throws {
        let (mu, z) = whitening(d: 2 * 2 * 2, seed: 11)
        let (mu2, z2) = whitening(d: 2 * 2 * 2, seed: 12)
        var g = SeededGenerator(seed: 13)
        let layer = try WhitenedConv2D(
            inputChannels: 2, outputChannels: 3, kernelSize: 2, whiteningMean: mu, whiteningMatrix: z, using: &g)
        let w = layer.weight.value
        let x = Tensor.uniform([2, 2, 4, 4], low: -1, high: 1, using: &g)
        let before = layer.forward(x, mode: .inference)
        try layer.setWhitening(mean: mu2, matrix: z2)
        XCTAssertTrue(layer.weight.value.isBitIdentical(to: w))
        XCTAssertTrue(layer.whiteningMean.value.isBitIdentical(to: mu2))
        // The output is that of a fresh layer built with the new whitening and the same W, b.
        var g2 = SeededGenerator(seed: 14)
        let reference = try WhitenedConv2D(
            inputChannels: 2, outputChannels: 3, kernelSize: 2, whiteningMean: mu2, whiteningMatrix: z2, using: &g2)
        reference.weight.value = w
        reference.bias.value = layer.bias.value
        let after = layer.forward(x, mode: .inference), expected = reference.forward(x, mode: .inference)
        XCTAssertFalse(after.isBitIdentical(to: before))
        for i in 0..<after.count { XCTAssertEqual(after[flat: i], expected[flat: i], accuracy: 1e-6) }
        // Wrong shapes and non-finite values are named; the layer keeps its whitening.
        XCTAssertThrowsError(try layer.setWhitening(mean: Tensor.zeros([7]), matrix: z2)) { error in
            XCTAssertTrue("\(error)".contains("whiteningMean"), "\(error)")
        }
        XCTAssertThrowsError(try layer.setWhitening(mean: mu2, matrix: Tensor.zeros([8, 7]))) { error in
            XCTAssertTrue("\(error)".contains("whiteningMatrix"), "\(error)")
        }
        var bad = mu2
        bad[flat: 3] = .nan
        XCTAssertThrowsError(try layer.setWhitening(mean: bad, matrix: z2))
        XCTAssertTrue(layer.whiteningMean.value.isBitIdentical(to: mu2))
    }
}
