import Foundation
import Layerwise
import LayerwiseTestSupport
import XCTest

/// A user's composite layer, written against the public API only: a convolution, then
/// dropout, then a learned scalar gain. It lists its parts as `children` and nothing else.
final class ScaledDropoutConv: Layer {
    let conv: Conv2D
    let dropout: Dropout
    /// The block's own parameter, named `"gain"` under the block's path.
    let gain = Parameter(name: "gain", value: Tensor(shape: [1], repeating: 1))
    private var dropped = Tensor.zeros([0])

    init(conv: Conv2D, dropoutSeed: UInt64) throws {
        self.conv = conv
        dropout = try Dropout(probability: 0.3, seed: dropoutSeed)
    }

    var children: [(name: String, layer: any Layer)] { [("conv", conv), ("dropout", dropout)] }
    var parameters: [Parameter] { [gain] + conv.parameters }

    func outputShape(for inputShape: [Int]) throws -> [Int] { try conv.outputShape(for: inputShape) }

    func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let y = dropout.forward(conv.forward(input, mode: mode), mode: mode)
        if mode == .training { dropped = y }
        return Self.scaled(y, by: gain.value[flat: 0])
    }

    func backward(_ outputGradient: Tensor) -> Tensor {
        if !gain.isFrozen {
            var sum: Float = 0
            for (g, y) in zip(outputGradient.scalars, dropped.scalars) { sum += g * y }
            gain.gradient[flat: 0] += sum
        }
        return conv.backward(dropout.backward(Self.scaled(outputGradient, by: gain.value[flat: 0])))
    }

    private static func scaled(_ x: Tensor, by factor: Float) -> Tensor {
        var y = x
        y.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] *= factor } }
        return y
    }
}

/// A composite layer that lists its `children` is checkpointed (its own and its
/// children's parameters, its dropout generator) and gets input-gradient skipping, with
/// no library code that knows it.
final class CompositeLayerTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    func makeStage(weightsSeed: UInt64, dropoutSeed: UInt64) throws -> (stage: Stage, block: ScaledDropoutConv) {
        let data = SyntheticImages(count: 24, seed: 99)
        let block = try ScaledDropoutConv(conv: conv(3, 8, 4, seed: weightsSeed), dropoutSeed: dropoutSeed)
        let stage = Stage(
            layers: [block, pool(2), ReLU()],
            objective: ContrastiveObjective(
                sampler: neighborSampler(data), loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5)),
            optimizer: SGD(learningRate: 0.05, momentum: 0.9), schedule: ConstantSchedule(0.05),
            batchSize: 8, budget: .epochs(2, stepsPerEpoch: 5))
        return (stage, block)
    }

    func trainer(weightsSeed: UInt64 = 1, dropoutSeed: UInt64 = 5, seed: UInt64 = 3) throws -> LayerwiseTrainer {
        let stage = try makeStage(weightsSeed: weightsSeed, dropoutSeed: dropoutSeed).stage
        return try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 5, seed: seed)
    }

    func state(_ t: LayerwiseTrainer) -> [Tensor] { t.namedState().map(\.parameter.value) }

    func testTheTreeNamesTheBlocksState() throws {
        XCTAssertEqual(
            try trainer().namedState().map(\.name), ["stage1.0.gain", "stage1.0.conv.weight", "stage1.0.conv.bias"])
    }

    func testTheFirstConvolutionInsideTheBlockSkipsItsInputGradient() throws {
        let (stage, block) = try makeStage(weightsSeed: 1, dropoutSeed: 5)
        let t = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 5, seed: 3)
        var flags: [Bool] = []
        try t.pretrain { e in if case .step = e { flags.append(block.conv.needsInputGradient) } }
        XCTAssertEqual(Set(flags), [false])
        XCTAssertTrue(block.conv.needsInputGradient, "restored after training")
    }

    func testResumeRestoresTheBlockAndItsDropoutGenerator() throws {
        let full = try trainer()
        try full.pretrain()
        // The dropout generator matters: another seed trains other weights.
        let other = try trainer(dropoutSeed: 6)
        try other.pretrain()
        XCTAssertFalse(bitIdentical(state(full), state(other)))

        let dir = try temporaryDirectory()
        let first = try trainer()
        first.checkpointDirectory = dir
        first.checkpointEvery = 3
        var saved: [String] = []
        XCTAssertThrowsError(
            try first.pretrain { e in
                if case let .step(s) = e, s.step == 7 { first.requestStop() }
                if case let .checkpointSaved(path) = e { saved.append(path) }
            })
        let file = try SafeTensors.read(path: try XCTUnwrap(saved.last))
        XCTAssertNotNil(file.metadata["generator.stage1.0.dropout"])
        XCTAssertNotNil(file.tensors["stage1.0.gain"])
        XCTAssertNotNil(file.tensors["optimizer.stage1.0.gain.0"])

        // A new process with other weights, another dropout seed and another trainer seed.
        let resumed = try trainer(weightsSeed: 123, dropoutSeed: 99, seed: 999)
        resumed.checkpointDirectory = dir
        try resumed.pretrain(resume: true)
        XCTAssertTrue(bitIdentical(state(full), state(resumed)), "the resumed run differs from the uninterrupted one")
    }

    func testGradientsOfTheBlock() throws {
        let block = try ScaledDropoutConv(conv: conv(2, 3, 2, seed: 4), dropoutSeed: 1)
        block.dropout.reusesMask = true
        block.gain.value[flat: 0] = 0.7
        var rng = SeededGenerator(seed: 2)
        let input = Tensor.uniform([2, 2, 4, 4], low: -1, high: 1, using: &rng)
        let report = GradientCheck.check(layer: block, input: input)
        XCTAssertTrue(report.passes(), "\(report)")
        XCTAssertGreaterThan(report.checked, 0)
    }
}
