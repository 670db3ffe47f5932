import Layerwise
import XCTest

/// An objective that wraps the contrastive one and adds a diagnostic of its own: the
/// trainer checks it, the events carry it and the progress line shows it, with no change
/// to any of them.
final class MeasuringObjective: StageObjective {
    let inner: ContrastiveObjective
    let extra: Double
    init(_ inner: ContrastiveObjective, extra: Double) {
        self.inner = inner
        self.extra = extra
    }
    var inputChannels: Int? { inner.inputChannels }
    var sampleUnit: String { "pair" }
    func step(_ context: StageStepContext, using generator: inout SeededGenerator) throws -> StepStatistics {
        var stats = try inner.step(context, using: &generator)
        stats.metrics.append(StepMetric(name: "spread", value: extra))
        stats.progress.append("spread \(extra)")
        return stats
    }
}

final class ObjectiveMetricsTests: XCTestCase {
    func stage(extra: Double) -> Stage {
        let data = SyntheticImages(count: 24, seed: 99)
        return Stage(
            layers: [conv(3, 8, 4), pool(2), ReLU()],
            objective: MeasuringObjective(
                ContrastiveObjective(
                    sampler: neighborSampler(data), loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5)),
                extra: extra),
            optimizer: SGD(learningRate: 0.01), schedule: ConstantSchedule(0.01), batchSize: 8, budget: .steps(2))
    }

    func testAnObjectivesOwnMetricReachesEventsAndTheProgressLine() throws {
        let t = try LayerwiseTrainer(stages: [stage(extra: 0.25)], inputChannels: 3, firstPatchSize: 5, seed: 1)
        var steps: [StepEvent] = []
        try t.pretrain { e in if case let .step(s) = e { steps.append(s) } }
        let last = try XCTUnwrap(steps.last)
        XCTAssertEqual(
            last.metrics.map(\.name), ["activeFraction", "meanPositiveDistance", "meanNegativeDistance", "spread"])
        XCTAssertEqual(last.sampleUnit, "pair")
        let line = ProgressLine().render(last)
        XCTAssertTrue(line.contains("│ spread 0.25 │"), line)
        XCTAssertTrue(line.contains(" pair/s │ eta"), line)
        XCTAssertTrue(line.contains("│ active "), line)
    }

    func testANonFiniteOwnMetricStopsTrainingNamingIt() throws {
        let t = try LayerwiseTrainer(stages: [stage(extra: .nan)], inputChannels: 3, firstPatchSize: 5, seed: 1)
        XCTAssertThrowsError(try t.pretrain()) { error in
            XCTAssertEqual(error as? TrainerError, .nonFinite(stage: 1, epoch: 1, step: 1, what: "spread"))
        }
    }

    func testTheLibraryObjectivesLabelTheirSamples() {
        let data = SyntheticImages(count: 24, seed: 99)
        let contrastive = ContrastiveObjective(
            sampler: neighborSampler(data), loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5))
        XCTAssertEqual(contrastive.sampleUnit, "trip")
    }
}
