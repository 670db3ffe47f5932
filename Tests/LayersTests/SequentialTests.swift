import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class SequentialTests: XCTestCase {
    private func makeNetwork(seed: UInt64) throws -> Sequential {
        var rng = SeededGenerator(seed: seed)
        let conv = try Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 3, stride: 1, padding: 1, using: &rng)
        conv.bias!.value = .uniform([3], low: -0.2, high: 0.2, using: &rng)
        return Sequential([
            conv, ReLU(), try MaxPool2D(kernelSize: 2), Flatten(),
            try Linear(inputFeatures: 12, outputFeatures: 2, using: &rng),
        ])
    }

    func testNamesFollowStateDictConvention() throws {
        var rng = SeededGenerator(seed: 1)
        let inner = Sequential([
            try Linear(inputFeatures: 4, outputFeatures: 4, using: &rng), try BatchNorm(features: 4),
        ])
        let outer = Sequential([try Linear(inputFeatures: 3, outputFeatures: 4, using: &rng), inner, ReLU()])
        XCTAssertEqual(
            outer.namedParameters().map(\.name),
            ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.1.weight", "1.1.bias"])
        XCTAssertEqual(outer.namedBuffers().map(\.name), ["1.1.runningMean", "1.1.runningVar"])
        XCTAssertEqual(outer.layers.count, 3)
    }

    func testShapesChainAndErrorsNameTheFailingLayer() throws {
        let net = try makeNetwork(seed: 1)
        XCTAssertEqual(try net.outputShape(for: [5, 2, 4, 4]), [5, 2])
        XCTAssertThrowsError(try net.outputShape(for: [5, 2, 6, 6])) { error in
            guard case let .incompatibleInput(layer, shape, _)? = error as? LayerError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(layer.hasPrefix("Linear"), layer)
            XCTAssertEqual(shape, [5, 27])
        }
    }

    func testGradientsThroughConvReluPoolFlattenLinear() throws {
        let net = try makeNetwork(seed: 3)
        // Chosen so no pre-activation sits within the finite-difference step of ReLU's kink
        // and every pooling window has a clear maximum: the check fails loudly otherwise.
        var rng = SeededGenerator(seed: 11)
        assertGradientsMatch(
            net, input: .uniform([2, 2, 4, 4], low: -1, high: 1, using: &rng), epsilon: 1e-3, tolerance: 2e-2)
    }

    func testFrozenChildrenAreSkippedByTheCheckAndKeepZeroGradients() throws {
        let net = try makeNetwork(seed: 3)
        net.layers[0].setFrozen(true)
        var rng = SeededGenerator(seed: 11)
        let x = Tensor.uniform([2, 2, 4, 4], low: -1, high: 1, using: &rng)
        let y = net.forward(x, mode: .training)
        _ = net.backward(.uniform(y.shape, low: -1, high: 1, using: &rng))
        XCTAssertTrue(net.layers[0].parameters.allSatisfy { p in p.gradient.scalars.allSatisfy { $0 == 0 } })
        XCTAssertTrue(net.layers[4].parameters[0].gradient.scalars.contains { $0 != 0 })
    }
}

final class SequentialWithNormalisationTests: XCTestCase {
    func testGradientsThroughBatchNormAndDropout() throws {
        var rng = SeededGenerator(seed: 21)
        let dropout = try Dropout(probability: 0.25, seed: 3)
        dropout.reusesMask = true
        let bn = try BatchNorm(features: 3)
        bn.weight.value = .uniform([3], low: 0.5, high: 1.5, using: &rng)
        let net = Sequential([
            try Conv2D(inputChannels: 1, outputChannels: 3, kernelSize: 2, stride: 2, using: &rng),
            bn, dropout, Flatten(),
            try Linear(inputFeatures: 12, outputFeatures: 2, using: &rng),
        ])
        XCTAssertEqual(
            net.namedParameters().map(\.name), ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"])
        assertGradientsMatch(net, input: .uniform([3, 1, 4, 4], low: -1, high: 1, using: &rng))
    }

    func testFrozenLinearKeepsZeroGradients() throws {
        var rng = SeededGenerator(seed: 1)
        let linear = try Linear(inputFeatures: 3, outputFeatures: 2, using: &rng)
        linear.setFrozen(true)
        XCTAssertTrue(linear.isFrozen)
        _ = linear.forward(.uniform([4, 3], low: -1, high: 1, using: &rng), mode: .training)
        let dx = linear.backward(.uniform([4, 2], low: -1, high: 1, using: &rng))
        XCTAssertTrue(linear.parameters.allSatisfy { $0.gradient.scalars.allSatisfy { $0 == 0 } })
        XCTAssertTrue(dx.scalars.contains { $0 != 0 })
    }

    func testParameterFreeLayersRejectBadShapes() {
        XCTAssertThrowsError(try ReLU().outputShape(for: []))
        XCTAssertThrowsError(try Dropout(probability: 0.5, seed: 1).outputShape(for: [-1, 2]))
        XCTAssertThrowsError(try Flatten().outputShape(for: [2, -3]))
    }
}
