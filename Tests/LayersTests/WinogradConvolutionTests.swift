import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

/// Winograd F(2×2, 3×3) and F(4×4, 3×3) against im2row + GEMM: the same convolution with
/// other rounding, so outputs and gradients agree to a stated relative tolerance (of
/// max(1, |value|), for inputs and weights of magnitude ≤ 1): 1e-5 for F(2×2, 3×3), 1e-4
/// for F(4×4, 3×3), whose transforms have larger coefficients. Finite differences check
/// the backward passes.
final class WinogradConvolutionTests: XCTestCase {
    /// (channels, outputs, height, width, padding, batch); odd sizes drop half tiles.
    private let configurations: [(Int, Int, Int, Int, Int, Int)] = [
        (3, 5, 8, 8, 1, 3), (2, 4, 7, 9, 1, 2), (4, 3, 6, 5, 0, 2), (2, 3, 5, 5, 2, 2), (1, 2, 3, 3, 0, 1),
        (20, 24, 16, 16, 1, 7),  // 64 tiles per image: several chunks of images
        (3, 4, 34, 33, 1, 1),  // rows of more than eight 4×4 tiles: full and partial groups of eight
    ]

    private let algorithms: [(ConvolutionAlgorithm, Float)] = [(.winograd, 1e-5), (.winograd4x4, 1e-4)]

    /// 5×5 kernels (F(2×2, 5×5)): (channels, outputs, height, width, padding, batch).
    private let configurations5: [(Int, Int, Int, Int, Int, Int)] = [
        (3, 5, 8, 8, 2, 2), (2, 4, 7, 9, 2, 2), (4, 3, 6, 6, 0, 2), (2, 3, 5, 5, 1, 2), (20, 24, 16, 16, 2, 3),
        (2, 3, 20, 19, 2, 1),  // ten tiles per row: a full group of eight and a partial one
    ]

    private func pair(
        _ c: Int, _ o: Int, _ p: Int, bias: Bool = true, kernel: Int = 3,
        algorithm fastAlgorithm: ConvolutionAlgorithm = .winograd
    ) throws -> (Conv2D, Conv2D) {
        func make(_ algorithm: ConvolutionAlgorithm) throws -> Conv2D {
            var rng = SeededGenerator(seed: 3)
            let conv = try Conv2D(
                inputChannels: c, outputChannels: o, kernelSize: kernel, padding: p, bias: bias,
                algorithm: algorithm, using: &rng)
            if bias { conv.bias!.value = .uniform([o], low: -0.5, high: 0.5, using: &rng) }
            return conv
        }
        return (try make(fastAlgorithm), try make(.im2row))
    }

    func testForwardAndGradientsMatchIm2row() throws {
        for (algorithm, tolerance) in algorithms {
            for configuration in configurations {
                try checkAgainstIm2row(configuration, algorithm: algorithm, tolerance: tolerance)
            }
        }
        for configuration in configurations5 {
            try checkAgainstIm2row(configuration, kernel: 5, algorithm: .winograd, tolerance: 1e-4)
        }
    }

    private func checkAgainstIm2row(
        _ configuration: (Int, Int, Int, Int, Int, Int), kernel: Int = 3, algorithm: ConvolutionAlgorithm,
        tolerance: Float
    ) throws {
        do {
            let (c, o, h, w, p, n) = configuration
            let (fast, reference) = try pair(c, o, p, kernel: kernel, algorithm: algorithm)
            var rng = SeededGenerator(seed: 7)
            let x = Tensor.uniform([n, c, h, w], low: -1, high: 1, using: &rng)
            let label = "\(algorithm) k\(kernel) c\(c) o\(o) \(h)×\(w) p\(p)"
            XCTAssertTrue(
                fast.usesWinograd(
                    for: ConvGeometry(channels: c, height: h, width: w, kernel: (kernel, kernel), padding: (p, p))))
            assertClose(fast.forward(x, mode: .inference), reference.forward(x, mode: .inference), tolerance: tolerance)
            let y = fast.forward(x, mode: .training)
            assertClose(y, reference.forward(x, mode: .training), tolerance: tolerance)
            let dy = Tensor.uniform(y.shape, low: -1, high: 1, using: &rng)
            let dx = fast.backward(dy)
            let dxReference = reference.backward(dy)
            assertClose(dx, dxReference, tolerance: tolerance)
            // Weight gradients sum over every tile of the batch: scale the tolerance by it.
            let scale = Float(n * h * w)
            for (a, b) in zip(fast.parameters, reference.parameters) {
                XCTAssertEqual(a.gradient.shape, b.gradient.shape, label)
                var worst: Float = 0
                for i in 0..<a.gradient.count { worst = max(worst, abs(a.gradient[flat: i] - b.gradient[flat: i])) }
                XCTAssertLessThanOrEqual(worst, tolerance * scale, "\(label) \(a.name)")
            }
        }
    }

    func testGradientsByFiniteDifferences() throws {
        for (c, o, h, w, p, n) in configurations.prefix(5) {
            for (bias, algorithm) in [(true, ConvolutionAlgorithm.winograd), (false, .winograd), (true, .winograd4x4)] {
                let (fast, _) = try pair(c, o, p, bias: bias, algorithm: algorithm)
                var rng = SeededGenerator(seed: 5)
                assertGradientsMatch(fast, input: .uniform([n, c, h, w], low: -1, high: 1, using: &rng))
            }
        }
        for (c, o, h, w, p, n) in configurations5.prefix(4) {
            let (fast, _) = try pair(c, o, p, kernel: 5)
            var rng = SeededGenerator(seed: 6)
            assertGradientsMatch(fast, input: .uniform([n, c, h, w], low: -1, high: 1, using: &rng))
        }
    }

    /// Batches whose tiles outnumber the input channels eightfold run backward chunk by chunk
    /// (several chunks of four 16×16 images here), the weight gradient in groups of chunks:
    /// against im2row (the 1e-5 / 1e-4 tolerances above) and finite differences.
    func testChunkedBackwardMatchesIm2rowAndFiniteDifferences() throws {
        try checkAgainstIm2row((3, 4, 16, 16, 1, 13), algorithm: .winograd, tolerance: 1e-5)
        try checkAgainstIm2row((3, 4, 16, 16, 1, 13), algorithm: .winograd4x4, tolerance: 1e-4)
        try checkAgainstIm2row((3, 4, 16, 16, 2, 13), kernel: 5, algorithm: .winograd, tolerance: 1e-4)
        for kernel in [3, 5] {
            let (fast, _) = try pair(1, 2, kernel / 2, kernel: kernel)
            var rng = SeededGenerator(seed: 9)
            assertGradientsMatch(fast, input: .uniform([5, 1, 16, 16], low: -1, high: 1, using: &rng))
        }
    }

    func testSkippingTheInputGradientKeepsParameterGradients() throws {
        let (fast, reference) = try pair(4, 6, 1)
        fast.needsInputGradient = false
        var rng = SeededGenerator(seed: 8)
        let x = Tensor.uniform([2, 4, 8, 8], low: -1, high: 1, using: &rng)
        let dy = Tensor.uniform([2, 6, 8, 8], low: -1, high: 1, using: &rng)
        _ = fast.forward(x, mode: .training)
        XCTAssertTrue(fast.backward(dy).scalars.allSatisfy { $0 == 0 })
        _ = reference.forward(x, mode: .training)
        _ = reference.backward(dy)
        assertClose(fast.weight.gradient, reference.weight.gradient, tolerance: 1e-4)
        assertClose(fast.bias!.gradient, reference.bias!.gradient, tolerance: 1e-5)
    }

    /// The chunks of images and the tile elements go to workers, each GEMM single-threaded
    /// with a shape that does not depend on the thread count: the same bits for 1 and 2.
    func testBitIdenticalAcrossThreadCounts() throws {
        var rng = SeededGenerator(seed: 21)
        let x = Tensor.uniform([9, 20, 16, 16], low: -1, high: 1, using: &rng)
        let dy = Tensor.uniform([9, 24, 16, 16], low: -1, high: 1, using: &rng)
        func run(threads: Int, algorithm: ConvolutionAlgorithm, kernel: Int = 3) throws -> [[UInt32]] {
            let (conv, _) = try pair(20, 24, kernel / 2, kernel: kernel, algorithm: algorithm)
            let saved = BLAS.threadCount
            defer { BLAS.threadCount = saved }
            BLAS.threadCount = threads
            let inference = conv.forward(x, mode: .inference)
            let y = conv.forward(x, mode: .training)
            let dx = conv.backward(dy)
            XCTAssertEqual(BLAS.threadCount, threads)
            return [
                inference.scalars, y.scalars, dx.scalars, conv.weight.gradient.scalars, conv.bias!.gradient.scalars,
            ]
            .map { $0.map(\.bitPattern) }
        }
        for algorithm in [ConvolutionAlgorithm.winograd, .winograd4x4] {
            let one = try run(threads: 1, algorithm: algorithm)
            let two = try run(threads: 2, algorithm: algorithm)
            XCTAssertEqual(one, two, "\(algorithm)")
            XCTAssertEqual(one[0], one[1], "\(algorithm): inference and training forwards")
        }
        XCTAssertEqual(
            try run(threads: 1, algorithm: .winograd, kernel: 5), try run(threads: 2, algorithm: .winograd, kernel: 5))
    }

    func testAutomaticChoiceAndInvalidRequests() throws {
        var rng = SeededGenerator(seed: 1)
        let wide = try Conv2D(inputChannels: 96, outputChannels: 384, kernelSize: 3, padding: 1, using: &rng)
        XCTAssertTrue(
            wide.usesWinograd(for: ConvGeometry(channels: 96, height: 16, width: 16, kernel: (3, 3), padding: (1, 1))))
        // A 2×2 output (four positions): im2row.
        XCTAssertFalse(wide.usesWinograd(for: ConvGeometry(channels: 96, height: 4, width: 4, kernel: (3, 3))))
        let thin = try Conv2D(inputChannels: 3, outputChannels: 64, kernelSize: 3, padding: 1, using: &rng)
        XCTAssertFalse(
            thin.usesWinograd(for: ConvGeometry(channels: 3, height: 32, width: 32, kernel: (3, 3), padding: (1, 1))))
        let five = try Conv2D(inputChannels: 64, outputChannels: 64, kernelSize: 5, padding: 2, using: &rng)
        XCTAssertTrue(
            five.usesWinograd(for: ConvGeometry(channels: 64, height: 16, width: 16, kernel: (5, 5), padding: (2, 2))))
        let six = try Conv2D(inputChannels: 64, outputChannels: 64, kernelSize: 6, using: &rng)
        XCTAssertFalse(six.usesWinograd(for: ConvGeometry(channels: 64, height: 16, width: 16, kernel: (6, 6))))
        let forced = try Conv2D(
            inputChannels: 96, outputChannels: 384, kernelSize: 3, padding: 1, algorithm: .im2row, using: &rng)
        XCTAssertFalse(
            forced.usesWinograd(for: ConvGeometry(channels: 96, height: 16, width: 16, kernel: (3, 3), padding: (1, 1)))
        )
        for (k, s, algorithm) in [(6, 1, ConvolutionAlgorithm.winograd), (3, 2, .winograd), (5, 1, .winograd4x4)] {
            XCTAssertThrowsError(
                try Conv2D(
                    inputChannels: 2, outputChannels: 2, kernelSize: k, stride: s, algorithm: algorithm, using: &rng)
            ) {
                guard case LayerError.invalidConfiguration(_, "algorithm", _, _) = $0 else { return XCTFail("\($0)") }
            }
        }
    }
}
