import Foundation
import Layerwise
import XCTest

@testable import Training

final class StagePreparationTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    /// A frozen "stage 1" (conv 3x3, 3 → 4, ReLU) whose outputs are strongly correlated.
    func frozenStage(seed: UInt64 = 3) throws -> [any Layer] {
        var g = SeededGenerator(seed: seed)
        return [try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, using: &g), ReLU()]
    }

    func whitenedStage(kernel: Int = 2) throws -> WhitenedConv2D {
        var g = SeededGenerator(seed: 4)
        let layer = try WhitenedConv2D(inputChannels: 4, outputChannels: 5, kernelSize: kernel, using: &g)
        // Unfitted: the identity whitening.
        XCTAssertEqual(layer.whiteningMean.value.scalars, [Float](repeating: 0, count: 4 * kernel * kernel))
        XCTAssertEqual(layer.whiteningMatrix.value[flat: 0], 1)
        XCTAssertEqual(layer.whiteningMatrix.value[flat: 1], 0)
        return layer
    }

    func testInputWhiteningWhitensWhatTheFrozenStagesOutput() throws {
        let data = SyntheticImages(count: 24, seed: 1)
        let norm = ChannelNormalization.fit(data)
        let frozen = FrozenStack(layers: try frozenStage())
        let layer = try whitenedStage()
        let weight = layer.weight.value
        let prep = try InputWhitening(
            dataset: data, normalization: norm, imageCount: 24, windowCount: 3_000, relativeEpsilon: 1e-4)
        var g = SeededGenerator(seed: 5)
        try prep.prepare(stage: 2, layers: [layer], below: frozen, using: &g)
        XCTAssertTrue(layer.weight.value.isBitIdentical(to: weight), "preparation must not touch W")

        // The same draws give the same windows: whitened, they have (nearly) identity covariance.
        var again = SeededGenerator(seed: 5)
        let windows = try prep.sampleWindows(kernel: 2, below: frozen, stage: 2, using: &again)
        XCTAssertEqual(windows.shape, [3_000, 16])
        var white = windows
        try ZCAWhitening(mean: layer.whiteningMean.value, matrix: layer.whiteningMatrix.value).apply(to: &white)
        let n = white.shape[0], d = white.shape[1]
        for i in 0..<d {
            var mean = 0.0
            for r in 0..<n { mean += Double(white[flat: r * d + i]) }
            XCTAssertEqual(mean / Double(n), 0, accuracy: 1e-3)
            for j in i..<d {
                var c = 0.0
                for r in 0..<n { c += Double(white[flat: r * d + i]) * Double(white[flat: r * d + j]) }
                XCTAssertEqual(c / Double(n), i == j ? 1 : 0, accuracy: 0.03, "covariance[\(i), \(j)]")
            }
        }
        // Before preparation the windows were far from white (the test can fail).
        var raw = 0.0
        for r in 0..<n { raw += Double(windows[flat: r * d]) * Double(windows[flat: r * d + 1]) }
        XCTAssertGreaterThan(abs(raw / Double(n)), 0.03)
    }

    func testInputWhiteningErrorsNameTheProblem() throws {
        let data = SyntheticImages(count: 4, seed: 1)
        let norm = ChannelNormalization.fit(data)
        let prep = try InputWhitening(dataset: data, normalization: norm, imageCount: 4, windowCount: 100)
        var g = SeededGenerator(seed: 1)
        var plain = SeededGenerator(seed: 2)
        XCTAssertThrowsError(
            try prep.prepare(
                stage: 2, layers: [try Conv2D(inputChannels: 4, outputChannels: 2, kernelSize: 2, using: &plain)],
                below: FrozenStack(layers: try frozenStage()), using: &g)
        ) { error in
            XCTAssertTrue("\(error)".contains("stage 2"), "\(error)")
            XCTAssertTrue("\(error)".contains("WhitenedConv2D"), "\(error)")
        }
        // A frozen stack that leaves less than one window.
        let shrink: [any Layer] = try frozenStage() + [try MaxPool2D(kernelSize: 8)]
        XCTAssertThrowsError(
            try prep.prepare(stage: 3, layers: [try whitenedStage()], below: FrozenStack(layers: shrink), using: &g)
        ) { error in
            XCTAssertTrue("\(error)".contains("stage 3"), "\(error)")
            XCTAssertTrue("\(error)".contains("too small"), "\(error)")
        }
        XCTAssertThrowsError(try InputWhitening(dataset: data, normalization: norm, relativeEpsilon: 0))
        XCTAssertThrowsError(try InputWhitening(dataset: data, normalization: norm, imageCount: 0))
        XCTAssertThrowsError(try InputWhitening(dataset: data, normalization: norm, windowCount: 1))
    }

    /// max |a − b| over the elements (same element count).
    func largestDifference(_ a: Tensor, _ b: Tensor) -> Float {
        (0..<a.count).reduce(Float(0)) { max($0, abs(a[flat: $1] - b[flat: $1])) }
    }

    func testKMeansStartPutsTheBaselinesFiltersIntoAWhitenedStage1() throws {
        let data = SyntheticImages(count: 24, seed: 1)
        let norm = ChannelNormalization.fit(data)
        var g = SeededGenerator(seed: 7)
        let baseline = try KMeansBaseline.fit(
            dataset: data, filters: 5, kernelSize: 3, patches: 600, normalization: norm, using: &g)
        let conv = try WhitenedConv2D(inputChannels: 3, outputChannels: 5, kernelSize: 3, using: &g)
        // Stage 1's own whitening first (fitted on the normalised images), then the start.
        try InputWhitening(dataset: data, normalization: norm, imageCount: 24, windowCount: 2_000)
            .prepare(stage: 1, layers: [conv], below: FrozenStack(layers: []), using: &g)
        let input = Tensor.normal([2, 3, 8, 8], using: &g)
        let expected = try baseline.convolution().forward(input, mode: .inference)
        let before = conv.forward(input, mode: .inference)
        XCTAssertGreaterThan(
            largestDifference(before, expected), 0.1,
            "the random start must differ from k-means, or the test cannot fail")

        try KMeansStart(baseline: baseline).prepare(stage: 1, layers: [conv], below: FrozenStack(layers: []), using: &g)
        // The layer now computes the baseline's folded convolution.
        let got = conv.forward(input, mode: .inference)
        XCTAssertEqual(got.shape, expected.shape)
        let worst = largestDifference(got, expected), scale = largestDifference(expected, Tensor.zeros(expected.shape))
        XCTAssertLessThan(worst, 1e-3 * max(1, scale), "largest difference \(worst)")

        // A scale multiplies every output by the same constant.
        try KMeansStart(baseline: baseline, scale: 0.25).prepare(
            stage: 1, layers: [conv], below: FrozenStack(layers: []), using: &g)
        let scaled = conv.forward(input, mode: .inference)
        for i in 0..<got.count {
            XCTAssertEqual(scaled[flat: i], 0.25 * expected[flat: i], accuracy: 1e-3 * max(1, scale))
        }
    }

    /// The GettingStarted recipe: `KMeansStart` as stage 1's preparation. With a zero
    /// learning rate the trained stage must be exactly the baseline's convolution, so the
    /// trainer ran the preparation before the stage trained.
    func testTrainerStartsStage1FromKMeansThroughItsPreparation() throws {
        let data = SyntheticImages(count: 24, seed: 2)
        let norm = ChannelNormalization.fit(data)
        var g = SeededGenerator(seed: 9)
        let baseline = try KMeansBaseline.fit(
            dataset: data, filters: 4, kernelSize: 3, patches: 400, normalization: norm, using: &g)
        // Identity whitening.
        let conv = try WhitenedConv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, using: &g)
        let stage = Stage(
            layers: [conv, try MaxPool2D(kernelSize: 2), ReLU()],
            objective: ContrastiveObjective(
                sampler: try NeighborPatchSampler(dataset: data, maxOffset: 1, normalization: norm),
                loss: InfoNCELoss(temperature: 0.1)),
            optimizer: SGD(learningRate: 0), schedule: ConstantSchedule(0),
            batchSize: 8, budget: .epochs(1, stepsPerEpoch: 2),
            preparation: try KMeansStart(baseline: baseline))
        let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 4, seed: 1)
        let (expected, _) = baseline.foldedFilters()
        XCTAssertGreaterThan(
            largestDifference(conv.foldedParameters().weight, expected), 0.05,
            "the random start must differ from k-means, or the test cannot fail")
        try trainer.pretrain()
        let trained = conv.foldedParameters().weight
        for i in 0..<expected.count { XCTAssertEqual(trained[flat: i], expected[flat: i], accuracy: 1e-4) }
    }

    func testKMeansStartErrorsNameTheStageAndTheProblem() throws {
        let data = SyntheticImages(count: 8, seed: 1)
        var g = SeededGenerator(seed: 7)
        let baseline = try KMeansBaseline.fit(dataset: data, filters: 5, kernelSize: 3, patches: 200, using: &g)
        let start = try KMeansStart(baseline: baseline)
        // Not the images: frozen layers below.
        XCTAssertThrowsError(
            try start.prepare(
                stage: 2, layers: [try WhitenedConv2D(inputChannels: 4, outputChannels: 5, kernelSize: 3, using: &g)],
                below: FrozenStack(layers: try frozenStage()), using: &g)
        ) { error in
            XCTAssertTrue("\(error)".contains("stage 2"), "\(error)")
            XCTAssertTrue("\(error)".contains("image windows"), "\(error)")
        }
        // Not a whitened conv.
        XCTAssertThrowsError(
            try start.prepare(
                stage: 1, layers: [try Conv2D(inputChannels: 3, outputChannels: 5, kernelSize: 3, using: &g)],
                below: FrozenStack(layers: []), using: &g)
        ) { error in
            XCTAssertTrue("\(error)".contains("WhitenedConv2D"), "\(error)")
        }
        // Another filter count than the baseline's: the layer is left as it was.
        let four = try WhitenedConv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, using: &g)
        let weight = four.weight.value
        XCTAssertThrowsError(try start.prepare(stage: 1, layers: [four], below: FrozenStack(layers: []), using: &g)) {
            error in
            XCTAssertTrue("\(error)".contains("stage 1"), "\(error)")
            XCTAssertTrue("\(error)".contains("5 filters"), "\(error)")
        }
        XCTAssertTrue(four.weight.value.isBitIdentical(to: weight))
        XCTAssertThrowsError(try KMeansStart(baseline: baseline, scale: 0))
        XCTAssertThrowsError(try KMeansStart(baseline: baseline, scale: .nan))
    }

    /// Records every call: the stage number, how many frozen layers it got, and what the
    /// first frozen layer's weights were at that moment.
    final class RecordingPreparation: StagePreparation {
        var calls: [(stage: Int, frozenLayers: Int, frozenWeights: [Tensor])] = []
        func prepare(stage: Int, layers: [any Layer], below: FrozenStack, using generator: inout SeededGenerator) throws
        {
            calls.append((stage, below.layers.count, below.layers.flatMap(\.parameters).map(\.value)))
        }
    }

    func testTrainerPreparesAStageOnTopOfItsTrainedFrozenStages() throws {
        var f = TwoStageFixture(steps: 6, stepsPerEpoch: 3)
        let first = RecordingPreparation(), second = RecordingPreparation()
        f.stages[0].preparation = first
        f.stages[1].preparation = second
        let initialStage1 = snapshot(f.stages[0].parameters)
        try f.trainer().pretrain()
        XCTAssertEqual(first.calls.map(\.stage), [1])
        XCTAssertEqual(first.calls.map(\.frozenLayers), [0])
        XCTAssertEqual(second.calls.map(\.stage), [2])
        XCTAssertEqual(second.calls.map(\.frozenLayers), [f.stages[0].layers.count])
        // Stage 2 was prepared with stage 1 as trained, not as initialised.
        let seen = try XCTUnwrap(second.calls.first).frozenWeights
        XCTAssertTrue(bitIdentical(seen, snapshot(f.stages[0].parameters)))
        XCTAssertFalse(bitIdentical(seen, initialStage1))
    }

    func testEndToEndPreparesEveryStageInOrder() throws {
        var f = TwoStageFixture(steps: 2, stepsPerEpoch: 2)
        let shared = RecordingPreparation()
        f.stages[0].preparation = shared
        f.stages[1].preparation = shared
        let initialStage1 = snapshot(f.stages[0].parameters)
        try f.trainer().pretrainEndToEnd()
        XCTAssertEqual(shared.calls.map(\.stage), [1, 2])
        XCTAssertEqual(shared.calls.map(\.frozenLayers), [0, f.stages[0].layers.count])
        XCTAssertTrue(
            bitIdentical(shared.calls[1].frozenWeights, initialStage1), "end to end, stage 1 is not trained yet")
    }

    func testAWhitenedFirstLayerSkipsItsInputGradientOnlyWhileItsStageTrains() throws {
        let whitened = try whitenedStage()
        let layers: [any Layer] = [whitened, ReLU(), try whitenedStage()]
        let saved = LayerwiseTrainer.configureInputGradients(layers)
        XCTAssertFalse(whitened.needsInputGradient, "nothing below the first layer learns")
        XCTAssertTrue((layers[2] as! WhitenedConv2D).needsInputGradient)
        LayerwiseTrainer.restoreInputGradients(saved)
        XCTAssertTrue(whitened.needsInputGradient)
    }

    /// A whitened stage 2 interrupted mid-way and resumed in a new process ends
    /// bit-identical to the uninterrupted run (the fitted whitening is in the checkpoint).
    func testResumeInsideAWhitenedStageEqualsTheUninterruptedRun() throws {
        func fixture(seed: UInt64) throws -> TwoStageFixture {
            var f = TwoStageFixture(seed: seed, momentum: 0.9, steps: 8, stepsPerEpoch: 4)
            var g = SeededGenerator(seed: seed &+ 50)
            f.stages[1].layers[0] = try WhitenedConv2D(inputChannels: 8, outputChannels: 8, kernelSize: 2, using: &g)
            f.stages[1].preparation = try InputWhitening(
                dataset: f.data, normalization: ChannelNormalization.fit(f.data), imageCount: 12, windowCount: 400)
            return f
        }
        func state(_ t: LayerwiseTrainer) -> [Tensor] { t.namedState().map(\.parameter.value) }
        let full = try fixture(seed: 1).trainer(seed: 11)
        try full.pretrain()
        let whitening = try XCTUnwrap(full.stages[1].layers[0] as? WhitenedConv2D).whiteningMatrix.value
        XCTAssertNotEqual(whitening[flat: 1], 0, "the whitening was fitted")

        let dir = try temporaryDirectory()
        let first = try fixture(seed: 1).trainer(seed: 11)
        first.checkpointDirectory = dir
        first.checkpointEvery = 3
        XCTAssertThrowsError(
            try first.pretrain { e in if case let .step(s) = e, s.stage == 2, s.step == 5 { first.requestStop() } })
        let resumed = try fixture(seed: 77).trainer(seed: 999)
        resumed.checkpointDirectory = dir
        try resumed.pretrain(resume: true)
        XCTAssertTrue(bitIdentical(state(full), state(resumed)), "resume inside the whitened stage differs")
    }
}
