import Foundation
import Layerwise
import XCTest

/// `WideStack.classifier`: the deep stack's finetuned and scratch arms.
final class WideStackClassifierTests: XCTestCase {
    /// A narrow stack (4 / 16 / 64 filters) for 16x16 images: 64 x 2 x 2 features.
    let specs = WideStack.softHebbCIFAR.map { s -> WideStageSpec in
        var s = s; s.width /= 24; return s
    }
    let data = SyntheticImages(count: 20, seed: 5)

    /// A "pretrained" stack: drawn from seed 1, batch-norm statistics fitted to the data
    /// (so they differ from a fresh layer's 0 and 1).
    func pretrainedStack() throws -> [[any Layer]] {
        var g = SeededGenerator(seed: 1)
        let layers = try WideStack.layers(specs, inputChannels: 3, using: &g)
        for k in layers.indices {
            var c = SeededGenerator(seed: 2)
            let below = FrozenStack(layers: layers[..<k].flatMap { $0 })
            try StatisticsCalibration.calibrate(layers[k], below: below, dataset: data, using: &c)
        }
        return layers
    }

    func train(_ classifier: TransferClassifier, seed: UInt64) throws {
        let configuration = ClassifierConfiguration(
            epochs: 2, batchSize: 5, optimizer: Adam(learningRate: 1e-2), schedule: ConstantSchedule(1e-2),
            augmentation: try ClassifierConfiguration.standardAugmentation(imageSize: 16), seed: seed)
        try ClassifierTrainer(classifier: classifier, configuration: configuration).train(on: data)
    }

    func values(_ state: [String: Tensor]) -> [String: [Float]] { state.mapValues(\.scalars) }

    func testStateNamesEveryStageTensorOnce() throws {
        let layers = try pretrainedStack()
        let state = WideStack.state(of: layers)
        // Per stage: BN running mean and variance, the conv weight (bias-free, non-affine BN).
        XCTAssertEqual(state.count, 9)
        XCTAssertEqual(state["stage1.0.runningMean"]?.scalars, (layers[0][0] as? BatchNorm)?.runningMean.value.scalars)
        XCTAssertEqual(state["stage3.2.weight"]?.scalars, WideStack.convolution(of: layers[2])?.weight.value.scalars)
    }

    /// The finetuned arm starts exactly at the pretrained weights and statistics, learns,
    /// and leaves the pretrained stack (which the probes read) untouched.
    func testFineTunedStartsAtThePretrainedStateAndLeavesItAlone() throws {
        let layers = try pretrainedStack()
        let pretrained = values(WideStack.state(of: layers))
        XCTAssertNotEqual(pretrained["stage2.0.runningVar"], [Float](repeating: 1, count: 4))
        let classifier = try WideStack.classifier(
            specs, mode: .fineTuned, pretrained: WideStack.state(of: layers), classes: 2, inputShape: data.imageShape,
            seed: 7)
        XCTAssertEqual(values(classifier.stateTensors()), pretrained)
        XCTAssertEqual(classifier.trainableParameters.count, 5, "three convs and the head's weight and bias")
        try train(classifier, seed: 7)
        let tuned = values(classifier.stateTensors())
        for name in ["stage1.2.weight", "stage3.2.weight", "stage2.0.runningMean", "stage3.0.runningVar"] {
            XCTAssertNotEqual(tuned[name], pretrained[name], "\(name) did not train")
        }
        XCTAssertEqual(values(WideStack.state(of: layers)), pretrained, "fine-tuning changed the pretrained stack")
    }

    /// Scratch: the same architecture re-drawn from the seed, fresh statistics, the same
    /// head as the finetuned arm of that seed; the same seed gives the same weights.
    func testScratchIsSeededAndSharesTheFineTunedHead() throws {
        let pretrained = WideStack.state(of: try pretrainedStack())
        func make(_ mode: TransferMode, seed: UInt64) throws -> TransferClassifier {
            try WideStack.classifier(
                specs, mode: mode, pretrained: pretrained, classes: 2, inputShape: data.imageShape, seed: seed)
        }
        func state(_ c: TransferClassifier) -> [String: [Float]] {
            Dictionary(uniqueKeysWithValues: c.namedState.map { ($0.name, $0.parameter.value.scalars) })
        }
        let scratch = try make(.scratch, seed: 7)
        XCTAssertEqual(state(scratch), state(try make(.scratch, seed: 7)))
        XCTAssertNotEqual(state(scratch)["stage2.2.weight"], state(try make(.scratch, seed: 8))["stage2.2.weight"])
        XCTAssertNotEqual(state(scratch)["stage2.2.weight"], pretrained["stage2.2.weight"]?.scalars)
        XCTAssertEqual(state(scratch)["stage2.0.runningVar"], [Float](repeating: 1, count: 4))
        let fineTuned = state(try make(.fineTuned, seed: 7))
        XCTAssertEqual(state(scratch)["head.1.weight"], fineTuned["head.1.weight"])
        XCTAssertEqual(scratch.forward(Tensor.zeros([3, 3, 16, 16]), mode: .inference).shape, [3, 2])
    }

    func testTrainingTwiceFromOneSeedGivesTheSameWeights() throws {
        let pretrained = WideStack.state(of: try pretrainedStack())
        var results: [[String: [Float]]] = []
        for _ in 0..<2 {
            let c = try WideStack.classifier(
                specs, mode: .fineTuned, pretrained: pretrained, classes: 2, inputShape: data.imageShape, seed: 3)
            try train(c, seed: 3)
            results.append(values(c.stateTensors()))
        }
        XCTAssertEqual(results[0], results[1])
    }

    func testInvalidOptionsAreTypedErrors() throws {
        XCTAssertThrowsError(
            try WideStack.classifier(
                specs, mode: .fineTuned, pretrained: nil, classes: 2, inputShape: data.imageShape, seed: 1)
        ) { error in
            guard case let TrainerError.invalidOption(_, option, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(option, "pretrained")
        }
        XCTAssertThrowsError(
            try WideStack.classifier(
                specs, mode: .scratch, pretrained: nil, classes: 0, inputShape: data.imageShape, seed: 1)
        ) { error in
            guard case let TrainerError.invalidOption(_, option, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(option, "classes")
        }
        // A 4x4 image is too small for the stack's pooling.
        XCTAssertThrowsError(
            try WideStack.classifier(
                specs, mode: .scratch, pretrained: nil, classes: 2,
                inputShape: ImageShape(channels: 3, height: 2, width: 2), seed: 1)
        ) { error in
            guard case TrainerError.incompatibleStage = error else { return XCTFail("\(error)") }
        }
        let state = WideStack.state(of: try pretrainedStack())
        XCTAssertThrowsError(
            try WideStack.classifier(
                specs, mode: .fineTuned, pretrained: state.filter { $0.key != "stage2.2.weight" }, classes: 2,
                inputShape: data.imageShape, seed: 1))
    }
}
