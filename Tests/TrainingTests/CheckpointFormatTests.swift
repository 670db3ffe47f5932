import Foundation
import Layerwise
import XCTest

/// The checkpoint format is a contract with files already on disk: these names and
/// metadata fields were written by the library before the layer tree owned the names,
/// and every checkpoint written since must use exactly the same ones.
final class CheckpointFormatTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    /// Stage 1 nests a `Sequential` (conv, BatchNorm, Dropout) and has a `Sequential` head
    /// with a Dropout; its miner draws from its own generator. Stage 2 has an objective
    /// with auxiliary parameters.
    func makeStages(seed: UInt64) throws -> [Stage] {
        let data = SyntheticImages(count: 24, seed: 99)
        var g = SeededGenerator(seed: seed)
        let block = Sequential([
            try Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 4, using: &g),
            try BatchNorm(features: 8), try Dropout(probability: 0.2, seed: seed + 1),
        ])
        let head = Sequential([
            try Linear(inputFeatures: 8, outputFeatures: 4, using: &g), try Dropout(probability: 0.1, seed: seed + 2),
        ])
        let stage1 = Stage(
            layers: [block, try MaxPool2D(kernelSize: 2, stride: 2), ReLU()], projectionHead: head,
            objective: ContrastiveObjective(
                sampler: neighborSampler(data),
                loss: TripletMarginLoss(
                    distance: CosineDistance(), margin: 0.5, miner: RandomNegativeMiner(seed: seed))),
            optimizer: SGD(learningRate: 0.01, momentum: 0.9), schedule: ConstantSchedule(0.01),
            batchSize: 8, budget: .epochs(2, stepsPerEpoch: 2))
        let stage2 = Stage(
            layers: [
                try Conv2D(inputChannels: 8, outputChannels: 8, kernelSize: 2, using: &g),
                try MaxPool2D(kernelSize: 2, stride: 2),
            ],
            objective: TestSurrogateObjective(sampler: neighborSampler(data), classes: 2),
            optimizer: SGD(learningRate: 0.01, momentum: 0.9), schedule: ConstantSchedule(0.01),
            batchSize: 8, budget: .epochs(2, stepsPerEpoch: 2))
        return [stage1, stage2]
    }

    func checkpoint(stoppingAt stop: (stage: Int, step: Int)) throws -> SafeTensorsFile {
        let stages = try makeStages(seed: 1)
        let trainer = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: 5, seed: 3)
        trainer.checkpointDirectory = try temporaryDirectory("format\(stop.stage)x\(stop.step)")
        var saved: [String] = []
        XCTAssertThrowsError(
            try trainer.pretrain { e in
                if case let .step(s) = e, s.stage == stop.stage, s.step == stop.step { trainer.requestStop() }
                if case let .checkpointSaved(path) = e { saved.append(path) }
            })
        return try SafeTensors.read(path: try XCTUnwrap(saved.last))
    }

    func testStageOneCheckpointKeepsItsNames() throws {
        let file = try checkpoint(stoppingAt: (1, 3))
        XCTAssertEqual(
            file.tensors.keys.sorted(),
            [
                "optimizer.stage1.0.0.bias.0", "optimizer.stage1.0.0.weight.0", "optimizer.stage1.0.1.bias.0",
                "optimizer.stage1.0.1.weight.0", "optimizer.stage1.head.0.bias.0", "optimizer.stage1.head.0.weight.0",
                "stage1.0.0.bias", "stage1.0.0.weight", "stage1.0.1.bias", "stage1.0.1.runningMean",
                "stage1.0.1.runningVar", "stage1.0.1.weight", "stage1.head.0.bias", "stage1.head.0.weight",
                "stage2.0.bias", "stage2.0.weight",
            ])
        XCTAssertEqual(
            file.metadata.keys.sorted(),
            [
                "architecture", "epochLossCount", "epochLossSum", "format", "generator", "generator.stage1.0.2",
                "generator.stage1.head.1", "generator.stage1.objective.loss.miner", "kind", "mode",
                "optimizerStepCount", "patchSizes", "phase", "seed", "stage", "stepsDone", "totalSteps",
            ])
        XCTAssertEqual(file.metadata["format"], "layerwise-checkpoint-v1")
        XCTAssertEqual(file.metadata["architecture"], "Sequential,MaxPool2D,ReLU | Conv2D,MaxPool2D")
    }

    func testStageTwoCheckpointKeepsItsNames() throws {
        let file = try checkpoint(stoppingAt: (2, 3))
        XCTAssertEqual(
            file.tensors.keys.sorted(),
            [
                "optimizer.stage2.0.bias.0", "optimizer.stage2.0.weight.0", "optimizer.stage2.objective.bias.0",
                "optimizer.stage2.objective.weight.0",
                "stage1.0.0.bias", "stage1.0.0.weight", "stage1.0.1.bias", "stage1.0.1.runningMean",
                "stage1.0.1.runningVar", "stage1.0.1.weight", "stage1.head.0.bias", "stage1.head.0.weight",
                "stage2.0.bias", "stage2.0.weight", "stage2.objective.bias", "stage2.objective.weight",
            ])
        XCTAssertEqual(
            file.metadata.keys.sorted(),
            [
                "architecture", "epochLossCount", "epochLossSum", "format", "generator", "generator.stage1.0.2",
                "generator.stage1.head.1", "kind", "mode", "optimizerStepCount", "patchSizes", "phase", "seed", "stage",
                "stepsDone", "totalSteps",
            ])
    }
}
