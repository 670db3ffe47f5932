import Foundation
import Layerwise
import XCTest

/// Images of one value and too few whitening windows: typed errors or finite weights,
/// never silent NaN.
final class NumericalInputTrainingTests: XCTestCase {
    override func setUp() { BLAS.threadCount = 1 }

    let constant = try! InMemoryImageDataset(
        pixels: [UInt8](repeating: 128, count: 8 * 3 * 16 * 16), shape: ImageShape(channels: 3, height: 16, width: 16))

    func whitenedConv(seed: UInt64 = 3) throws -> WhitenedConv2D {
        var g = SeededGenerator(seed: seed)
        return try WhitenedConv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, using: &g)
    }

    func testWhiteningConstantImagesIsATypedError() throws {
        let norm = ChannelNormalization.fit(constant)
        let prep = try InputWhitening(dataset: constant, normalization: norm, imageCount: 8, windowCount: 200)
        var g = SeededGenerator(seed: 1)
        XCTAssertThrowsError(
            try prep.prepare(stage: 1, layers: [try whitenedConv()], below: FrozenStack(layers: []), using: &g)
        ) {
            guard case let .invalidOption(stage, option, _, reason)? = $0 as? TrainerError else {
                return XCTFail("\($0)")
            }
            XCTAssertEqual(stage, 1)
            XCTAssertEqual(option, "InputWhitening")
            XCTAssertTrue(reason.contains("constant"), reason)
        }
    }

    func testWhiteningOnFewerWindowsThanDimensionsStaysFinite() throws {
        // 10 windows of 3·3·3 = 27 values: the relative ε keeps the rank-deficient fit finite.
        let data = SyntheticImages(count: 8, seed: 2)
        let prep = try InputWhitening(
            dataset: data, normalization: ChannelNormalization.fit(data), imageCount: 8, windowCount: 10)
        let conv = try whitenedConv()
        var g = SeededGenerator(seed: 1)
        try prep.prepare(stage: 1, layers: [conv], below: FrozenStack(layers: []), using: &g)
        XCTAssertTrue(conv.whiteningMatrix.value.isFinite && conv.whiteningMean.value.isFinite)
        XCTAssertGreaterThan(conv.whiteningMatrix.value.scalars.map(abs).max() ?? 0, 0)
    }

    func testTrainingOnImagesOfOneValueNeverGivesNaNWeights() throws {
        var g = SeededGenerator(seed: 1)
        let sampler = try NeighborPatchSampler(dataset: constant, normalization: ChannelNormalization.fit(constant))
        let stage = Stage(
            layers: [try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 5, using: &g)],
            objective: ContrastiveObjective(
                sampler: sampler, loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5)),
            optimizer: Adam(learningRate: 0.01), schedule: ConstantSchedule(0.01), batchSize: 4,
            budget: .epochs(2, stepsPerEpoch: 3))
        let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 5, seed: 1)
        let before = trainer.stateTensors()
        // Every patch is zero after normalisation: embeddings are the bias alone, anchor =
        // positive = negative, the hinge is at the margin with zero gradient for the weights.
        let report = try trainer.pretrain()
        XCTAssertEqual(report.finalLoss ?? .nan, 0.5, accuracy: 1e-5)
        for (name, value) in trainer.stateTensors() {
            XCTAssertTrue(value.isFinite, "\(name) is finite")
            if name.hasSuffix("weight") { XCTAssertTrue(value.isBitIdentical(to: before[name]!), "\(name) unchanged") }
        }
    }
}
