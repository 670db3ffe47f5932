import Foundation
import Layerwise
import XCTest

/// A small two-stage stack on 16x16 synthetic images, built from the library's layers:
/// stage 1: conv 4x4 (3→8) → max-pool 2 → ReLU → running-mean buffer (a custom layer),
/// trained on 5x5 patches (5 → 2 → 1); stage 2: conv 2x2 (8→8) → max-pool 2, which
/// needs 9x9 patches (9 → 6 → 3 → 2 → 1).
struct TwoStageFixture {
    var data: SyntheticImages
    var stages: [Stage]
    var optimizers: [SGD]

    init(
        seed: UInt64 = 1, learningRate: Float = 0.01, momentum: Float = 0.9, steps: Int = 20,
        stepsPerEpoch: Int = 5, batchSize: Int = 16, margin: Float = 0.5, stage2: Bool = true
    ) {
        data = SyntheticImages(count: 24, seed: 99)
        optimizers = []
        stages = []
        var g = SeededGenerator(seed: seed)
        let sgd1 = SGD(learningRate: learningRate, momentum: momentum)
        optimizers.append(sgd1)
        stages.append(
            Stage(
                layers: [
                    try! Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 4, using: &g),
                    try! MaxPool2D(kernelSize: 2, stride: 2), ReLU(), TestRunningMean(channels: 8),
                ],
                objective: ContrastiveObjective(
                    sampler: neighborSampler(data),
                    loss: TripletMarginLoss(distance: CosineDistance(), margin: margin)),
                optimizer: sgd1, schedule: ConstantSchedule(learningRate), batchSize: batchSize,
                budget: .epochs(steps / stepsPerEpoch, stepsPerEpoch: stepsPerEpoch)))
        if stage2 {
            let sgd2 = SGD(learningRate: learningRate, momentum: momentum)
            optimizers.append(sgd2)
            stages.append(
                Stage(
                    layers: [
                        try! Conv2D(inputChannels: 8, outputChannels: 8, kernelSize: 2, using: &g),
                        try! MaxPool2D(kernelSize: 2, stride: 2),
                    ],
                    objective: ContrastiveObjective(
                        sampler: neighborSampler(data),
                        loss: TripletMarginLoss(distance: CosineDistance(), margin: margin)),
                    optimizer: sgd2, schedule: ConstantSchedule(learningRate), batchSize: batchSize,
                    budget: .epochs(steps / stepsPerEpoch, stepsPerEpoch: stepsPerEpoch)))
        }
    }

    func trainer(seed: UInt64 = 7) throws -> LayerwiseTrainer {
        try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: 5, seed: seed)
    }
}

func snapshot(_ parameters: [Parameter]) -> [Tensor] { parameters.map(\.value) }

func bitIdentical(_ a: [Tensor], _ b: [Tensor]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.isBitIdentical(to: $1) }
}

/// A fresh empty directory under the system temporary directory.
func temporaryDirectory(_ name: String = #function) throws -> String {
    let base = (NSTemporaryDirectory() as NSString).appendingPathComponent(
        "layerwise-trainer-tests-\(ProcessInfo.processInfo.processIdentifier)")
    let clean = name.filter { $0.isLetter || $0.isNumber }
    let dir = (base as NSString).appendingPathComponent(clean)
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

// Short builders for the library layers.
func conv(_ i: Int, _ o: Int, _ k: Int, stride: Int = 1, padding: Int = 0, seed: UInt64 = 1) -> Conv2D {
    var g = SeededGenerator(seed: seed)
    return try! Conv2D(inputChannels: i, outputChannels: o, kernelSize: k, stride: stride, padding: padding, using: &g)
}

func pool(_ k: Int, stride: Int? = nil) -> MaxPool2D { try! MaxPool2D(kernelSize: k, stride: stride ?? k) }

func linear(_ i: Int, _ o: Int, seed: UInt64 = 1) -> Linear {
    var g = SeededGenerator(seed: seed)
    return try! Linear(inputFeatures: i, outputFeatures: o, using: &g)
}

/// The library's neighbour sampler (positives shifted by at most one pixel).
func neighborSampler(_ data: any ImageDataset) -> NeighborPatchSampler {
    try! NeighborPatchSampler(dataset: data, maxOffset: 1)
}
