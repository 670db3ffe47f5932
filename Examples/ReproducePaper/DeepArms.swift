import Foundation
import Layerwise

/// The budget of the deep stack's transfer arms (`--epochs`, `--seeds`, the preset's batch).
struct DeepTransfer {
    var epochs: Int
    var batchSize: Int
    var seeds: Int
}

/// The transfer arms of `--layers 3`, named in results.json like the paper's arms.
enum DeepArm: String, CaseIterable {
    /// The pretrained stages (copies, batch-norm statistics included), fine-tuned end to end
    /// with a linear head.
    case finetuned
    /// The same stages and head from a seeded random start.
    case scratch

    var mode: TransferMode { self == .finetuned ? .fineTuned : .scratch }
}

extension DeepExperiment {
    /// Builds every arm's classifier and trainer once before any training, so a bad option
    /// or data without labels fails first. `layers` is the stack about to be pretrained.
    func validateArms(_ layers: [[any Layer]], data: DataSources) throws {
        guard transfer != nil else { return }
        guard data.train.classCount != nil, data.test.classCount != nil else {
            throw ExperimentError.data("the finetuned and scratch arms need labelled CIFAR-10 images")
        }
        let state = WideStack.state(of: layers)
        for arm in DeepArm.allCases { _ = try armTrainer(arm, pretrained: state, seed: seed, data: data) }
    }

    /// Trains both arms on the CIFAR-10 training split, scored on the evaluation split
    /// (the probe's), and adds them to `results`.
    func runArms(_ layers: [[any Layer]], data: DataSources, results: inout Results) throws {
        guard let transfer else { return }
        let pretrained = WideStack.state(of: layers)
        log(
            "transfer arms: \(DeepArm.allCases.map(\.rawValue).joined(separator: ", ")), \(transfer.epochs) epochs, "
                + "batch \(transfer.batchSize), \(transfer.seeds) seed(s)")
        for arm in DeepArm.allCases {
            results.arms[arm.rawValue] = try trainArm(
                arm.rawValue, seeds: transfer.seeds, epochs: transfer.epochs, baseSeed: seed, data: data
            ) { armSeed in
                try armTrainer(arm, pretrained: pretrained, seed: armSeed, data: data)
            }
            try results.write(to: out)
        }
        try writeCurves(results)
    }

    /// The stack of `specs` plus a linear head, trained like the paper's classifier (Adam
    /// 1e-3, ×0.1 after two thirds, crop and flip) on raw pixels: stage 1's batch norm
    /// normalises the input, with the statistics pretraining fitted on raw pixels.
    func armTrainer(
        _ arm: DeepArm, pretrained: [String: Tensor], seed: UInt64, data: DataSources
    ) throws -> ClassifierTrainer {
        guard let transfer else { throw ExperimentError.data("no transfer budget (--probe-only)") }
        let classifier = try WideStack.classifier(
            specs, mode: arm.mode, pretrained: pretrained, classes: data.train.classCount ?? 10,
            inputShape: data.train.imageShape, seed: seed)
        let configuration = try PaperClassifier.trainingConfiguration(
            epochs: transfer.epochs, batchSize: transfer.batchSize, normalization: nil, seed: seed)
        return try ClassifierTrainer(classifier: classifier, configuration: configuration)
    }

    /// curves.svg: validation accuracy per epoch of both arms.
    func writeCurves(_ results: Results) throws {
        let seeds = transfer?.seeds ?? 1
        let chart = LineChart(
            title: "CIFAR-10 validation accuracy per epoch (deep stack, "
                + (seeds > 1 ? "mean ± std of \(seeds) seeds)" : "1 seed)"),
            xLabel: "epoch", yLabel: "accuracy (%)",
            series: DeepArm.allCases.compactMap { arm in
                results.arms[arm.rawValue].map { .init(name: arm.rawValue, runs: $0.curvePerSeed) }
            })
        try AtomicFile.write(Data(try chart.svg().utf8), to: out + "/curves.svg")
    }
}
