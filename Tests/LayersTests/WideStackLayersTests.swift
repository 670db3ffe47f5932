import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

/// The layers of SoftHebb-style wide stacks: padded pooling, reflection padding, the
/// powered triangle activation and non-affine batch norm. Expected values come from
/// PyTorch 2.13 (`F.max_pool2d(x, 4, 2, 1)`, `F.avg_pool2d(x, 4, 2, 1)`,
/// `F.pad(x, (2, 2, 2, 2), mode="reflect")`, `relu(u − u.mean(1)).pow(0.7)`).
final class WideStackLayersTests: XCTestCase {
    /// 0, −1, 2, −3, … 24 in a 5×5 plane.
    private let alternating = try! Tensor(shape: [1, 1, 5, 5], values: (0..<25).map { Float($0 % 2 == 0 ? $0 : -$0) })

    func testPaddedMaxPoolMatchesPyTorch() throws {
        let pool = try MaxPool2D(kernelSize: 4, stride: 2, padding: 1)
        XCTAssertEqual(try pool.outputShape(for: [1, 1, 5, 5]), [1, 1, 2, 2])
        XCTAssertEqual(try pool.outputShape(for: [10, 96, 32, 32]), [10, 96, 16, 16])
        XCTAssertEqual(pool.forward(alternating, mode: .inference).scalars, [12, 14, 22, 24])
        XCTAssertEqual(pool.forward(alternating, mode: .training).scalars, [12, 14, 22, 24])
        // Gradient lands on the argmax (12 at flat index 12 is shared by no other window).
        let dx = pool.backward(try Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4]))
        var expected = [Float](repeating: 0, count: 25)
        expected[12] = 1; expected[14] = 2; expected[22] = 3; expected[24] = 4
        XCTAssertEqual(dx.scalars, expected)
    }

    func testPaddedMaxPoolOfNegativeValuesIgnoresThePadding() throws {
        // −∞ padding: an all-negative border window still returns an input value, not 0.
        let pool = try MaxPool2D(kernelSize: 3, stride: 1, padding: 1)
        let x = try Tensor(shape: [1, 1, 2, 2], values: [-4, -3, -2, -1])
        XCTAssertEqual(pool.forward(x, mode: .inference).scalars, [-1, -1, -1, -1])
    }

    func testPaddedMaxPoolGradients() throws {
        for (k, s, p) in [(4, 2, 1), (3, 2, 1), (2, 1, 1)] {
            let pool = try MaxPool2D(kernelSize: k, stride: s, padding: p)
            assertGradientsMatch(pool, input: distinctValues([2, 2, 6, 5], seed: UInt64(k * 100 + s * 10 + p)))
        }
    }

    func testAvgPoolMatchesPyTorch() throws {
        let pool = try AvgPool2D(kernelSize: 4, stride: 2, padding: 1)
        XCTAssertEqual(pool.forward(alternating, mode: .inference).scalars, [0.375, 0.125, 0.625, 0])
        let final = try AvgPool2D(kernelSize: 2)
        XCTAssertEqual(try final.outputShape(for: [3, 1536, 8, 8]), [3, 1536, 4, 4])
        let x = try Tensor(shape: [1, 1, 2, 4], values: [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(final.forward(x, mode: .inference).scalars, [3.5, 5.5])
    }

    func testAvgPoolGradients() throws {
        for (k, s, p) in [(4, 2, 1), (2, 2, 0), (3, 1, 1)] {
            let pool = try AvgPool2D(kernelSize: k, stride: s, padding: p)
            var rng = SeededGenerator(seed: UInt64(k + s + p))
            assertGradientsMatch(pool, input: .uniform([2, 3, 6, 7], low: -1, high: 1, using: &rng))
        }
    }

    func testPoolingErrors() throws {
        XCTAssertThrowsError(try MaxPool2D(kernelSize: 4, stride: 2, padding: 3)) {
            XCTAssertEqual(
                $0 as? LayerError,
                .invalidConfiguration(
                    layer: "MaxPool2D", option: "padding", value: "3", reason: "must be in 0…2 (half the kernel)"))
        }
        XCTAssertThrowsError(try AvgPool2D(kernelSize: 2, padding: -1))
        XCTAssertThrowsError(try AvgPool2D(kernelSize: 0))
        XCTAssertThrowsError(try AvgPool2D(kernelSize: 4, stride: 2, padding: 1).outputShape(for: [1, 1, 1, 1]))
        XCTAssertThrowsError(try MaxPool2D(kernelSize: 4, stride: 2, padding: 1).outputShape(for: [1, 1, 1, 8]))
        XCTAssertThrowsError(try AvgPool2D(kernelSize: 2).outputShape(for: [1, 4]))
    }

    func testReflectionPadMatchesPyTorch() throws {
        let pad = try ReflectionPad2D(padding: 2)
        let x = try Tensor(shape: [1, 1, 3, 4], values: (0..<12).map(Float.init))
        XCTAssertEqual(try pad.outputShape(for: [1, 1, 3, 4]), [1, 1, 7, 8])
        let expected: [Float] = [
            10, 9, 8, 9, 10, 11, 10, 9, 6, 5, 4, 5, 6, 7, 6, 5, 2, 1, 0, 1, 2, 3, 2, 1,
            6, 5, 4, 5, 6, 7, 6, 5, 10, 9, 8, 9, 10, 11, 10, 9, 6, 5, 4, 5, 6, 7, 6, 5,
            2, 1, 0, 1, 2, 3, 2, 1,
        ]
        XCTAssertEqual(pad.forward(x, mode: .inference).scalars, expected)
        XCTAssertThrowsError(try pad.outputShape(for: [1, 1, 2, 4]))
        XCTAssertThrowsError(try ReflectionPad2D(padding: -1))
    }

    func testReflectionPadGradients() throws {
        for p in [1, 2] {
            var rng = SeededGenerator(seed: UInt64(p))
            assertGradientsMatch(
                try ReflectionPad2D(padding: p), input: .uniform([2, 2, 4, 5], low: -1, high: 1, using: &rng))
        }
    }

    func testTriangleMatchesPyTorch() throws {
        let tri = try TriangleActivation(power: 0.7)
        let u = try Tensor(shape: [1, 4, 1, 1], values: [1, -2, 3, 0.5])
        let y = tri.forward(u, mode: .inference).scalars
        for (a, b) in zip(y, [0.5032941699028015, 0, 1.8321647644042969, 0] as [Float]) {
            XCTAssertEqual(a, b, accuracy: 1e-6)
        }
        // Power 1 is the plain centred rectifier, per position of an NCHW map and per row of [N, C].
        let plain = try TriangleActivation()
        let x = try Tensor(shape: [1, 2, 1, 2], values: [1, 4, 3, 0])  // position 0: mean 2, position 1: mean 2
        XCTAssertEqual(plain.forward(x, mode: .inference).scalars, [0, 2, 1, 0])
        XCTAssertEqual(
            plain.forward(try Tensor(shape: [2, 2], values: [1, 3, 5, 1]), mode: .inference).scalars, [0, 1, 2, 0])
        XCTAssertThrowsError(try TriangleActivation(power: 0))
        XCTAssertThrowsError(try TriangleActivation(power: .nan))
    }

    func testTriangleGradients() throws {
        // distinctValues keeps every centred value at least ~step/2 from the kink.
        for power: Float in [1, 0.7, 1.4] {
            let tri = try TriangleActivation(power: power)
            assertGradientsMatch(
                tri, input: distinctValues([2, 5, 2, 3], step: 0.37, seed: UInt64(power * 10)),
                epsilon: 1e-3, tolerance: 2e-2)
            assertGradientsMatch(
                tri, input: distinctValues([3, 4], step: 0.37, seed: 9), epsilon: 1e-3, tolerance: 2e-2)
        }
    }

    func testNonAffineBatchNormHasNoParametersAndStillNormalises() throws {
        let bn = try BatchNorm(features: 2, affine: false)
        XCTAssertTrue(bn.parameters.isEmpty)
        XCTAssertEqual(bn.buffers.map(\.name), ["runningMean", "runningVar"])
        var rng = SeededGenerator(seed: 5)
        let x = Tensor.uniform([4, 2, 3, 3], low: -2, high: 3, using: &rng)
        let y = bn.forward(x, mode: .training)
        for c in 0..<2 {
            var values: [Float] = []
            for n in 0..<4 { for i in 0..<9 { values.append(y[flat: (n * 2 + c) * 9 + i]) } }
            let mean = values.reduce(0, +) / Float(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)
            XCTAssertEqual(mean, 0, accuracy: 1e-5)
            XCTAssertEqual(variance, 1, accuracy: 1e-3)
        }
        assertGradientsMatch(bn, input: x)
        // Backward leaves γ and β alone.
        XCTAssertEqual(bn.weight.gradient.scalars, [0, 0])
        XCTAssertEqual(bn.bias.gradient.scalars, [0, 0])
    }
}
