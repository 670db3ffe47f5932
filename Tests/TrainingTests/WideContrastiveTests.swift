import Foundation
import Layerwise
import LayerwiseTestSupport
import XCTest

final class WideContrastiveTests: XCTestCase {
    /// Two narrow stages on 8x8 images; average pooling and a linear triangle keep the
    /// loss smooth enough for central differences (no max-pool ties).
    let specs = [
        WideStageSpec(
            width: 4, kernel: 3, padding: 1, pooling: .average(kernel: 2, stride: 2, padding: 0),
            trianglePower: 1, temperature: 1, learningRate: 0.1),
        WideStageSpec(
            width: 5, kernel: 3, padding: 1, pooling: .average(kernel: 2, stride: 2, padding: 0),
            trianglePower: 1, temperature: 1, learningRate: 0.1),
    ]
    let data = SyntheticImages(count: 12, size: 8, seed: 3)

    func views() throws -> any Augmentation {
        Compose([try RandomCrop(size: 8, padding: 1), try HorizontalFlip(probability: 0.5)])
    }

    func build(
        seed: UInt64, radius: Float = WideStack.initialRadius, options: WideContrastiveOptions
    ) throws -> (
        layers: [[any Layer]], stages: [Stage]
    ) {
        var g = SeededGenerator(seed: seed)
        let layers = try WideStack.layers(specs, inputChannels: 3, radius: radius, using: &g)
        let stages = try WideStack.contrastiveStages(
            layers: layers, dataset: data, views: try views(), options: options, radius: radius, using: &g)
        return (layers, stages)
    }

    /// ‖analytic − numeric‖ / ‖numeric‖ of the step's gradient for `parameter`, with the
    /// same views every evaluation (the step's generator restarts from one seed).
    func relativeError(
        _ objective: any StageObjective, frozen: [any Layer], trainable: TrainableBlock, parameter: Parameter
    ) throws -> Double {
        let context = StageStepContext(
            stage: 1, patchSize: 8, batchSize: 3, frozen: FrozenStack(layers: frozen), trainable: trainable)
        func loss() throws -> Double {
            var g = SeededGenerator(seed: 17)
            for p in trainable.parameters { p.zeroGradient() }
            return Double(try objective.step(context, using: &g).loss)
        }
        _ = try loss()
        let analytic = parameter.gradient
        let saved = parameter.value
        let numeric = try GradientCheck.numericGradient(at: saved, epsilon: 1e-3) { v in
            parameter.value = v
            return try loss()
        }
        parameter.value = saved
        var difference = 0.0, norm = 0.0
        for i in 0..<numeric.count {
            difference += pow(Double(analytic[flat: i] - numeric[flat: i]), 2)
            norm += pow(Double(numeric[flat: i]), 2)
        }
        XCTAssertGreaterThan(norm, 1e-6, "the gradient is not zero")
        return (difference / norm).squareRoot()
    }

    func testStepGradientsMatchFiniteDifferencesAtEveryDepthAndEndToEnd() throws {
        let (layers, stages) = try build(
            seed: 1, radius: 2, options: .init(temperature: 0.5, batchSize: 3, embeddingGrid: 2, projection: 3))
        let conv1 = try XCTUnwrap(WideStack.convolution(of: layers[0]))
        let conv2 = try XCTUnwrap(WideStack.convolution(of: layers[1]))
        let head1 = try XCTUnwrap(stages[0].projectionHead)
        let stage1 = TrainableBlock(layers: layers[0], head: head1)
        XCTAssertLessThan(
            try relativeError(stages[0].objective, frozen: [], trainable: stage1, parameter: conv1.weight), 1e-2)
        let projection = try XCTUnwrap(head1.parameters.first { $0.name == "weight" })
        XCTAssertLessThan(
            try relativeError(stages[0].objective, frozen: [], trainable: stage1, parameter: projection), 1e-2)
        // Stage 2 on the frozen stage 1, and both stages end to end (through stage 2 into stage 1).
        let stage2 = TrainableBlock(layers: layers[1], head: stages[1].projectionHead)
        XCTAssertLessThan(
            try relativeError(stages[1].objective, frozen: layers[0], trainable: stage2, parameter: conv2.weight), 1e-2)
        let both = TrainableBlock(layers: layers[0] + layers[1], head: stages[1].projectionHead)
        XCTAssertLessThan(
            try relativeError(stages[1].objective, frozen: [], trainable: both, parameter: conv1.weight), 1e-2)
    }

    func testTrainingIsDeterministicAndLearnsLayerwiseAndEndToEnd() throws {
        func train(seed: UInt64, endToEnd: Bool = false) throws -> (before: [Tensor], after: [Tensor]) {
            let (layers, stages) = try build(seed: seed, options: .init(batchSize: 4))
            let before = layers.map { WideStack.convolution(of: $0)!.weight.value }
            let patch = try XCTUnwrap(ReceptiveField.smallestPatch([layers[0]], channels: 3))
            let trainer = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: patch, seed: seed)
            let report = try endToEnd ? trainer.pretrainEndToEnd() : trainer.pretrain()
            XCTAssertEqual(report.stages.map(\.steps), endToEnd ? [3] : [3, 3])
            XCTAssertTrue(report.stages.allSatisfy { $0.finalLoss.isFinite })
            return (before, layers.map { WideStack.convolution(of: $0)!.weight.value })
        }
        let a = try train(seed: 4), b = try train(seed: 4), c = try train(seed: 5)
        for k in 0..<2 {
            XCTAssertTrue(a.after[k].isBitIdentical(to: b.after[k]), "stage \(k + 1): same seed, same weights")
            XCTAssertFalse(a.after[k].isBitIdentical(to: a.before[k]), "stage \(k + 1) learned")
            XCTAssertFalse(a.after[k].isBitIdentical(to: c.after[k]), "stage \(k + 1): another seed")
        }
        let e2e = try train(seed: 4, endToEnd: true)
        XCTAssertFalse(e2e.after[0].isBitIdentical(to: e2e.before[0]), "end to end reaches stage 1")
    }

    func testBadOptionsAreTypedErrorsBeforeTraining() throws {
        let cases: [(WideContrastiveOptions, String)] = [
            (.init(temperature: 0), "contrastive.temperature"), (.init(temperature: -1), "contrastive.temperature"),
            (.init(batchSize: 1), "contrastive.batchSize"), (.init(batchSize: 13), "contrastive.batchSize"),
            (.init(relativeLearningRate: 0), "contrastive.relativeLearningRate"),
            (.init(epochs: 0), "contrastive.epochs"),
            (.init(projection: 0), "contrastive.projection"), (.init(embeddingGrid: 0), "contrastive.embeddingGrid"),
        ]
        for (options, name) in cases {
            XCTAssertThrowsError(try build(seed: 1, options: options), name) { error in
                guard case let TrainerError.invalidOption(_, option, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(option, name)
            }
        }
    }
}
