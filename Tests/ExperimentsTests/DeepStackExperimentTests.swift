import Foundation
import Layerwise
import XCTest

/// The deep-stack study (Docs/DeepStacks.md) on real CIFAR-10: the first 16,000 of the
/// 20,000 training images pretrain the stages (labels unused) and train the probe, the
/// last 4,000 evaluate it. Opt-in like every experiment:
///
///     LAYERWISE_EXPERIMENTS=1 swift test -c release --filter DeepStackExperimentTests
final class DeepStackExperimentTests: XCTestCase {
    private func data() throws -> (train: InMemoryImageDataset, validation: InMemoryImageDataset) {
        let directory = try ExperimentEnvironment.requireEnabled()
        BLAS.threadCount = ExperimentEnvironment.threads
        let c10 = directory + "/cifar-10-batches-bin"
        let all = try CIFAR.loadCIFAR10(files: [c10 + "/data_batch_1.bin", c10 + "/data_batch_2.bin"])
        let parts = try all.split(validationCount: 4_000)
        return (parts.train, parts.validation)
    }

    /// Every SoftHebb stage beats its calibrated untrained control and the stage below.
    func testSoftHebbStagesEachLearn() throws {
        let (train, validation) = try data()
        var g = SeededGenerator(seed: 1)
        let specs = WideStack.softHebbCIFAR
        let layers = try WideStack.layers(specs, inputChannels: 3, using: &g)
        let stages = try WideStack.softHebbStages(layers: layers, specs: specs, dataset: train)
        let patch = try XCTUnwrap(ReceptiveField.smallestPatch([layers[0]], channels: 3))
        let report = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: patch, seed: 1).pretrain()
        for r in report.stages { reportLine("softhebb stage\(r.stage) pretraining \(Int(r.seconds)) s") }
        let probe = WideProbe(epochs: 50, seed: 1)
        var fresh = SeededGenerator(seed: 1)
        let initial = try WideStack.layers(specs, inputChannels: 3, using: &fresh)
        var previous: Float = 0
        for k in 1...3 {
            let trained = try probe.evaluate(stages: layers, taps: [ProbeTap(stage: k)], train: train, test: validation)
            var c = SeededGenerator(seed: UInt64(k))
            let below = FrozenStack(layers: layers[..<(k - 1)].flatMap { $0 })
            try StatisticsCalibration.calibrate(initial[k - 1], below: below, dataset: train, using: &c)
            let control = try probe.evaluate(
                stages: Array(layers[..<(k - 1)]) + [initial[k - 1]], taps: [ProbeTap(stage: k)], train: train,
                test: validation)
            reportLine("softhebb stage\(k) probe \(trained.testAccuracy) untrained \(control.testAccuracy)")
            XCTAssertGreaterThan(trained.testAccuracy, control.testAccuracy, "stage \(k) vs its untrained control")
            XCTAssertGreaterThan(trained.testAccuracy, previous, "stage \(k) vs the stage below")
            previous = trained.testAccuracy
        }
    }

    /// Stage-1 width curve (64, 256, 1,024 filters) of k-means and SoftHebb, probed on the
    /// stage's own 16x16 map pooled to 4x4.
    func testStage1WidthCurve() throws {
        let (train, validation) = try data()
        let probe = WideProbe(epochs: 20, seed: 1)
        for width in [64, 256, 1024] {
            var spec = WideStack.softHebbCIFAR[0]
            spec.width = width
            for objective in ["kmeans", "softhebb"] {
                var g = SeededGenerator(seed: 1)
                let layers = [try WideStack.stageLayers(spec, inputChannels: 3, using: &g)]
                if objective == "kmeans" {
                    try DeepKMeansStart(dataset: train).fit(stage: 1, layers: layers[0], below: FrozenStack(layers: []), using: &g)
                } else {
                    let stages = try WideStack.softHebbStages(layers: layers, specs: [spec], dataset: train)
                    let patch = try XCTUnwrap(ReceptiveField.smallestPatch(layers, channels: 3))
                    try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: patch, seed: 1).pretrain()
                }
                let r = try probe.evaluate(stages: layers, taps: [ProbeTap(stage: 1, grid: 4)], train: train, test: validation)
                reportLine("width curve \(objective) \(width) filters: probe \(r.testAccuracy)")
                XCTAssertGreaterThan(r.testAccuracy, 0.3)
            }
        }
    }

    private func reportLine(_ s: String) { report(s) }
}
