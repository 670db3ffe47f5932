import Layers
import TensorCore
import XCTest

final class InputTrimmingTests: XCTestCase {
    /// The l2 benchmark's stack: conv 6 → ReLU → pool 2 → conv 3 → ReLU → pool 2 → Flatten.
    private func makeTwoStages(seed: UInt64) throws -> (frozen: Sequential, trained: Sequential) {
        var rng = SeededGenerator(seed: seed)
        let c1 = try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 6, using: &rng)
        let c2 = try Conv2D(inputChannels: 4, outputChannels: 5, kernelSize: 3, using: &rng)
        c1.bias!.value = .uniform([4], low: -0.1, high: 0.1, using: &rng)
        c2.bias!.value = .uniform([5], low: -0.1, high: 0.1, using: &rng)
        let frozen = Sequential([c1, ReLU(), try MaxPool2D(kernelSize: 2)])
        frozen.setFrozen(true)
        return (frozen, Sequential([c2, ReLU(), try MaxPool2D(kernelSize: 2), Flatten()]))
    }

    func testReadExtentOfTheL2StackIs13Of16() throws {
        let (frozen, trained) = try makeTwoStages(seed: 1)
        let extent = try InputTrimming.readExtent(of: [frozen, trained], inputShape: [2, 3, 16, 16])
        XCTAssertEqual(extent?.height, 13)
        XCTAssertEqual(extent?.width, 13)
        // A patch of exactly the receptive field is read whole; a non-square one per axis.
        let exact = try InputTrimming.readExtent(of: [frozen, trained], inputShape: [2, 3, 13, 13])
        XCTAssertEqual(exact?.height, 13)
        let wide = try InputTrimming.readExtent(of: [frozen, trained], inputShape: [2, 3, 13, 20])
        XCTAssertEqual(wide?.height, 13)
        XCTAssertEqual(wide?.width, 17)  // 20 → 15 → 7 → 5 → 2; 2 pooled columns read 4 → 6 → 12 → 17
    }

    func testPaddedConvolutionAndUnknownLayersStopTheAnalysis() throws {
        var rng = SeededGenerator(seed: 2)
        let padded = try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: 1, using: &rng)
        XCTAssertNil(
            try InputTrimming.readExtent(of: [padded, try MaxPool2D(kernelSize: 2)], inputShape: [1, 3, 9, 9]))
        let bn = try BatchNorm(features: 3)
        XCTAssertNil(try InputTrimming.readExtent(of: [bn, try MaxPool2D(kernelSize: 2)], inputShape: [1, 3, 9, 9]))
        // Shape errors surface as the layer's own error.
        XCTAssertThrowsError(try InputTrimming.readExtent(of: [padded], inputShape: [1, 2, 9, 9]))
    }

    func testCropCopiesTheTopLeftWindow() {
        var x = Tensor.zeros([2, 2, 4, 5])
        x.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] = Float(i) } }
        let y = InputTrimming.crop(x, height: 2, width: 3)
        XCTAssertEqual(y.shape, [2, 2, 2, 3])
        // plane p starts at 20p; row r at 5r.
        XCTAssertEqual(Array(y.scalars.prefix(6)), [0, 1, 2, 5, 6, 7])
        XCTAssertEqual(Array(y.scalars[6..<12]), [20, 21, 22, 25, 26, 27])
    }

    /// The claim the benchmark rests on: cropping to the read window changes neither the
    /// embedding nor any parameter gradient. A wrong extent (one row too few) must fail.
    func testTrimmedInputGivesTheSameOutputAndGradients() throws {
        var rng = SeededGenerator(seed: 5)
        let input = Tensor.normal([6, 3, 16, 16], using: &rng)
        let outputGradient = Tensor.normal([6, 5], using: &rng)

        func run(_ x: Tensor) throws -> (output: [Float], gradients: [[Float]]) {
            let (frozen, trained) = try makeTwoStages(seed: 9)
            let y = trained.forward(frozen.forward(x, mode: .inference), mode: .training)
            _ = trained.backward(outputGradient)
            return (y.scalars, trained.parameters.map { $0.gradient.scalars })
        }
        let full = try run(input)
        let trimmed = try run(InputTrimming.crop(input, height: 13, width: 13))
        XCTAssertEqual(full.output.count, trimmed.output.count)
        for (a, b) in zip(full.output, trimmed.output) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for (ga, gb) in zip(full.gradients, trimmed.gradients) {
            XCTAssertEqual(ga.count, gb.count)
            for (a, b) in zip(ga, gb) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        }
        // The window is where the output looks: the bottom-right 13×13 gives other values.
        var shifted = InputTrimming.crop(input, height: 16, width: 16)
        shifted = try Tensor(
            shape: [6, 3, 13, 13],
            values: (0..<6 * 3).flatMap { p in
                (3..<16).flatMap { r in (3..<16).map { c in shifted.scalars[p * 256 + r * 16 + c] } }
            })
        let other = try run(shifted)
        XCTAssertGreaterThan(zip(full.output, other.output).map { abs($0 - $1) }.max() ?? 0, 1e-3)
    }
}
