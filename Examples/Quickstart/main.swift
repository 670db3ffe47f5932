// Quickstart: pretrain one conv stage on unlabelled CIFAR-100 patches, transfer it into a
// CIFAR-10 classifier, print the accuracy. Run from the repository root:
//   swift run -c release quickstart [cifar-100-binary folder] [cifar-10-batches-bin folder]
// Without arguments it uses the small real sample shipped with the reproduce-paper example.
import Layerwise

let arguments = CommandLine.arguments
let sample = "Examples/ReproducePaper/Resources"
let unlabelled = try CIFAR.loadCIFAR100(
    directory: arguments.count > 1 ? arguments[1] : "\(sample)/cifar100_sample", split: .train)
let cifar10 = try CIFAR.loadCIFAR10(
    directory: arguments.count > 2 ? arguments[2] : "\(sample)/cifar10_sample", split: .train)
let (train, test) = try cifar10.split(validationCount: cifar10.count / 5)
var rng = SeededGenerator(seed: 7)

// 1. One stage: conv 6x6 → max-pool 2 → ReLU, trained on 7x7 neighbour patches with InfoNCE.
let sampler = try NeighborPatchSampler(
    dataset: unlabelled, maxOffset: 2, normalization: ChannelNormalization.fit(unlabelled))
let stage = Stage(
    layers: [
        try Conv2D(inputChannels: 3, outputChannels: 32, kernelSize: 6, using: &rng), try MaxPool2D(kernelSize: 2),
        ReLU(),
    ],
    objective: ContrastiveObjective(sampler: sampler, loss: InfoNCELoss(temperature: 0.1)),
    optimizer: Adam(learningRate: 1e-3), schedule: ConstantSchedule(1e-3),
    batchSize: 128, budget: .steps(200))
let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 7, seed: 7)
let pretraining = try trainer.pretrain()
print("pretrained stage 1 in \(pretraining.totalSeconds) s, final loss \(pretraining.finalLoss ?? .nan)")

// 2. Transfer: the pretrained conv (fine-tuned) under a small classifier head.
let head: [any Layer] = [
    try BatchNorm(features: 32), ReLU(), Flatten(),
    try Linear(inputFeatures: 32 * 13 * 13, outputFeatures: 10, using: &rng),
]
let classifier = try TransferClassifier(
    stages: [[trainer.stages[0].layers[0], trainer.stages[0].layers[1]]], mode: .fineTuned, head: head,
    inputShape: train.imageShape, seed: 7)
let normalization = ChannelNormalization.fit(train)
let report = try ClassifierTrainer(
    classifier: classifier,
    configuration: ClassifierConfiguration(
        epochs: 3, batchSize: 64, optimizer: Adam(learningRate: 1e-3), schedule: ConstantSchedule(1e-3),
        augmentation: try ClassifierConfiguration.standardAugmentation(imageSize: 32), normalization: normalization,
        seed: 7)
).train(on: train, validation: test)
print("CIFAR-10 accuracy after \(report.epochs.count) epochs: \(report.finalValidationAccuracy ?? 0)")
