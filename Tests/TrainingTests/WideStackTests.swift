import Foundation
import Layerwise
import XCTest

final class WideStackTests: XCTestCase {
    func testSoftHebbStackShapesAndInit() throws {
        var g = SeededGenerator(seed: 1)
        let layers = try WideStack.layers(WideStack.softHebbCIFAR, inputChannels: 3, using: &g)
        var shape = [2, 3, 32, 32]
        var maps: [[Int]] = []
        for stage in layers {
            for l in stage { shape = try l.outputShape(for: shape) }
            maps.append(shape)
        }
        XCTAssertEqual(maps, [[2, 96, 16, 16], [2, 384, 8, 8], [2, 1536, 4, 4]])
        // Every stage's own map has 24,576 values, as SoftHebb's readout.
        XCTAssertEqual(maps.map { $0.dropFirst().reduce(1, *) }, [24_576, 24_576, 24_576])
        // Non-affine BN: the convolution is the only parameter of each stage.
        XCTAssertEqual(layers.map { $0.flatMap(\.parameters).count }, [1, 1, 1])
        // N(0, 1)·25/√fan-in: mean filter norm ≈ 25.
        let w = WideStack.convolution(of: layers[1])!.weight.value
        let l = w.count / 384
        var norm = 0.0
        for o in 0..<384 {
            var s = 0.0
            for j in 0..<l { s += Double(w[flat: o * l + j] * w[flat: o * l + j]) }
            norm += s.squareRoot() / 384
        }
        XCTAssertEqual(norm, 25, accuracy: 0.5)
    }

    /// A narrow three-stage stack trains through the trainer on 16x16 images and changes
    /// every stage's filters.
    func testNarrowStackTrainsEveryStage() throws {
        let data = SyntheticImages(count: 12, seed: 4)
        let specs = WideStack.softHebbCIFAR.map { s -> WideStageSpec in
            var s = s; s.width /= 24; return s
        }
        var g = SeededGenerator(seed: 2)
        let layers = try WideStack.layers(specs, inputChannels: 3, using: &g)
        let before = layers.map { WideStack.convolution(of: $0)!.weight.value }
        let stages = try WideStack.softHebbStages(layers: layers, specs: specs, dataset: data, batchSize: 4)
        let patch = try XCTUnwrap(ReceptiveField.smallestPatch([layers[0]], channels: 3))
        let trainer = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: patch, seed: 3)
        let report = try trainer.pretrain()
        XCTAssertEqual(report.stages.map(\.steps), [3, 3, 3])
        for (k, stage) in layers.enumerated() {
            XCTAssertFalse(
                WideStack.convolution(of: stage)!.weight.value.isBitIdentical(to: before[k]), "stage \(k + 1)")
        }
    }

    func testCalibrationFitsBatchNormStatisticsWithoutTouchingWeights() throws {
        let data = SyntheticImages(count: 10, seed: 5)
        var g = SeededGenerator(seed: 1)
        let stage = try WideStack.stageLayers(WideStack.softHebbCIFAR[0], inputChannels: 3, using: &g)
        let bn = stage[0] as! BatchNorm
        let weight = WideStack.convolution(of: stage)!.weight.value
        var c = SeededGenerator(seed: 2)
        try StatisticsCalibration.calibrate(
            stage, below: FrozenStack(layers: []), dataset: data, batchSize: 5, using: &c)
        XCTAssertTrue(WideStack.convolution(of: stage)!.weight.value.isBitIdentical(to: weight))
        XCTAssertNotEqual(bn.runningMean.value.scalars, [0, 0, 0])
        XCTAssertNotEqual(bn.runningVar.value.scalars, [1, 1, 1])
        XCTAssertThrowsError(
            try StatisticsCalibration.calibrate(
                stage, below: FrozenStack(layers: []), dataset: data, batchSize: 0, using: &c))
    }
}

final class WideProbeTests: XCTestCase {
    private func stack() throws -> [[any Layer]] {
        let specs = WideStack.softHebbCIFAR.map { s -> WideStageSpec in
            var s = s; s.width /= 48; return s
        }
        var g = SeededGenerator(seed: 1)
        return try WideStack.layers(specs, inputChannels: 3, using: &g)
    }

    func testTypedErrorsBeforeAnyWork() throws {
        let layers = try stack()  // 16x16 images: maps 8x8, 4x4, 2x2
        let shape = ImageShape(channels: 3, height: 16, width: 16)
        let probe = WideProbe(epochs: 1)
        XCTAssertThrowsError(
            try probe.validate(stages: layers, taps: [ProbeTap(stage: 3, grid: 4)], imageShape: shape, rows: 10)
        ) {
            XCTAssertEqual($0 as? ProbeError, .gridLargerThanMap(tap: "stage3@4x4", grid: 4, map: [1, 32, 2, 2]))
        }
        XCTAssertThrowsError(
            try probe.validate(stages: layers, taps: [ProbeTap(stage: 1, grid: 3)], imageShape: shape, rows: 10)
        ) {
            XCTAssertEqual($0 as? ProbeError, .mapCannotReachGrid(tap: "stage1@3x3", grid: 3, map: [1, 2, 8, 8]))
        }
        let small = WideProbe(epochs: 1, memoryLimitBytes: 1_000)
        XCTAssertThrowsError(
            try small.validate(stages: layers, taps: [ProbeTap(stage: 1)], imageShape: shape, rows: 10)
        ) {
            XCTAssertEqual($0 as? ProbeError, .featureCacheTooLarge(bytes: 10 * 128 * 4, limit: 1_000))
        }
        XCTAssertThrowsError(
            try probe.validate(stages: layers, taps: [ProbeTap(stage: 4)], imageShape: shape, rows: 10))
        XCTAssertThrowsError(
            try WideProbe(dropout: 1).validate(stages: layers, taps: [ProbeTap(stage: 1)], imageShape: shape, rows: 1))
        // Stage 2 pooled to quadrants, concatenated with stage 3's map: 8·2·2 + 32·2·2.
        XCTAssertEqual(
            try probe.validate(
                stages: layers, taps: [ProbeTap(stage: 2, grid: 2), ProbeTap(stage: 3)],
                imageShape: shape, rows: 10), 32 + 128)
    }

    /// An augmentation that leaves the image as it is, and one that crops it.
    private struct Unchanged: Augmentation {
        func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image { image }
    }
    private struct Shrink: Augmentation {
        func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
            Image(channels: image.channels, height: 1, width: 1)
        }
    }

    /// Training views add one block of rows per view, with the same labels: an unchanged view
    /// repeats the plain features bit for bit, a mirror changes them, a view that changes the
    /// image shape and a cache over the limit are typed errors.
    func testTrainingViewsAddRowsOfTransformedImages() throws {
        let layers = try stack()
        let data = SyntheticImages(count: 10, seed: 3)
        let taps = [ProbeTap(stage: 1)]
        let probe = WideProbe(chunkSize: 4)
        let plain = try probe.features(stages: layers, taps: taps, of: data, normalization: nil)
        let views = try probe.features(
            stages: layers, taps: taps, of: data, normalization: nil,
            views: [nil, Unchanged(), try HorizontalFlip(probability: 1)])
        let d = plain.features.shape[1]
        XCTAssertEqual(views.features.shape, [30, d])
        XCTAssertEqual(views.labels, plain.labels + plain.labels + plain.labels)
        let rows = plain.features.scalars, all = views.features.scalars
        XCTAssertEqual(Array(all[0..<(10 * d)]), rows)
        XCTAssertEqual(Array(all[(10 * d)..<(20 * d)]), rows)
        XCTAssertNotEqual(Array(all[(20 * d)..<(30 * d)]), rows)
        XCTAssertThrowsError(
            try probe.features(stages: layers, taps: taps, of: data, normalization: nil, views: [Shrink()])
        ) { XCTAssertTrue("\($0)".contains("trainingViews"), "\($0)") }
        // Room for the plain training rows and the test rows, not for a second view.
        let limit = (10 + 10) * d * 4
        let fits = WideProbe(epochs: 1, memoryLimitBytes: limit)
        XCTAssertNoThrow(try fits.evaluate(stages: layers, taps: taps, train: data, test: data))
        let flipped = WideProbe(
            epochs: 1, memoryLimitBytes: limit, trainingViews: [try HorizontalFlip(probability: 1)])
        XCTAssertThrowsError(try flipped.evaluate(stages: layers, taps: taps, train: data, test: data)) {
            XCTAssertEqual($0 as? ProbeError, .featureCacheTooLarge(bytes: 30 * d * 4, limit: limit))
        }
    }

    func testGridPoolingAveragesEqualCells() throws {
        let map = try Tensor(shape: [1, 1, 4, 4], values: (0..<16).map(Float.init))
        var out = [Float](repeating: 0, count: 4)
        out.withUnsafeMutableBufferPointer { WideProbe.pool(map, grid: 2, into: $0.baseAddress!, rowStride: 4) }
        XCTAssertEqual(out, [2.5, 4.5, 10.5, 12.5])
    }

    func testConcatenatedFeaturesAreChunkIndependentAndTheProbeLearns() throws {
        let layers = try stack()
        let data = SyntheticImages(count: 40, seed: 7)
        let taps = [ProbeTap(stage: 1, grid: 2), ProbeTap(stage: 2)]
        let a = try WideProbe(chunkSize: 7).features(stages: layers, taps: taps, of: data, normalization: nil)
        let b = try WideProbe(chunkSize: 40).features(stages: layers, taps: taps, of: data, normalization: nil)
        XCTAssertEqual(a.features.shape, [40, 8 + 8 * 4 * 4])
        XCTAssertEqual(a.labels, b.labels)
        for i in 0..<a.features.count { XCTAssertEqual(a.features[flat: i], b.features[flat: i], accuracy: 1e-4) }
        // The stripes of the synthetic classes are linearly separable in these features.
        let r = try WideProbe(epochs: 30, learningRate: 1e-2, batchSize: 8, dropout: 0.2, standardize: true)
            .train(train: a.features, trainLabels: a.labels, test: a.features, testLabels: a.labels, classCount: 2)
        XCTAssertGreaterThan(r.trainAccuracy, 0.9)
        XCTAssertEqual(r.testAccuracyByEpoch.map(\.epoch), [1, 10, 20, 30])
    }
}
