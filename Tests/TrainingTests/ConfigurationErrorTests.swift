import Foundation
import Layerwise
import XCTest

/// Configuration mistakes are caught before any training step, with a typed error whose
/// message names the option (and the stage) and the bad value.
///
/// Each case is checked at the component that owns the option (sampler, loss, optimizer)
/// and, where the trainer assembles components, at ``LayerwiseTrainer`` too — with the
/// weights asserted untouched, so "before training" is measured, not assumed.
final class ConfigurationErrorTests: XCTestCase {
    // MARK: - Helpers

    /// Runs `body`, which must throw an error of type `E` whose description contains every
    /// string in `mentions`; returns the error.
    @discardableResult
    private func expectError<E: Error, T>(
        _ type: E.Type, mentioning mentions: [String], file: StaticString = #filePath, line: UInt = #line,
        _ body: () throws -> T
    ) -> E? {
        do {
            _ = try body()
            XCTFail("expected a \(E.self) mentioning \(mentions)", file: file, line: line)
        } catch let error as E {
            let text = String(describing: error)
            for m in mentions {
                XCTAssertTrue(text.contains(m), "\"\(text)\" does not mention \"\(m)\"", file: file, line: line)
            }
            return error
        } catch {
            XCTFail("expected a \(E.self), got \(Swift.type(of: error)): \(error)", file: file, line: line)
        }
        return nil
    }

    /// Eight random 12×12 RGB images.
    private static func images(count: Int = 8, size: Int = 12) -> InMemoryImageDataset {
        var g = SeededGenerator(seed: 3)
        let shape = ImageShape(channels: 3, height: size, width: size)
        let pixels = (0..<(count * shape.elementCount)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
        return try! InMemoryImageDataset(pixels: pixels, shape: shape)
    }

    // MARK: - Samplers

    func testSamplerOptionsAreNamed() throws {
        let data = Self.images()
        var g = SeededGenerator(seed: 1)
        expectError(SamplerError.self, mentioning: ["negativesPerAnchor", "0"]) {
            try NeighborPatchSampler(dataset: data, negativesPerAnchor: 0)
        }
        expectError(SamplerError.self, mentioning: ["negativesPerAnchor", "-2"]) {
            try AugmentedPatchSampler(dataset: data, augmentation: try HorizontalFlip(), negativesPerAnchor: -2)
        }
        expectError(SamplerError.self, mentioning: ["maxOffset", "-1"]) {
            try NeighborPatchSampler(dataset: data, maxOffset: -1)
        }
        expectError(SamplerError.self, mentioning: ["contextMargin", "-3"]) {
            try AugmentedPatchSampler(dataset: data, augmentation: try HorizontalFlip(), contextMargin: -3)
        }
        var sampler = try NeighborPatchSampler(dataset: data, maxOffset: 2)
        expectError(SamplerError.self, mentioning: ["batchSize", "0"]) {
            try sampler.sample(batchSize: 0, patchSize: 5, using: &g)
        }
        expectError(SamplerError.self, mentioning: ["patchSize", "0"]) {
            try sampler.sample(batchSize: 4, patchSize: 0, using: &g)
        }
        // 11 + maxOffset 2 = 13 > 12: the message gives the patch, what it needs and the image size.
        let error = expectError(SamplerError.self, mentioning: ["patchSize 11", "13", "12×12", "maxOffset 2"]) {
            try sampler.sample(batchSize: 4, patchSize: 11, using: &g)
        }
        XCTAssertEqual(
            error,
            .patchLargerThanImage(
                patchSize: 11, needed: 13, imageHeight: 12, imageWidth: 12, reason: "patch plus maxOffset 2"))
        XCTAssertNoThrow(try sampler.sample(batchSize: 4, patchSize: 10, using: &g))
        var exemplar = try AugmentedPatchSampler(dataset: data, augmentation: try HorizontalFlip())
        expectError(SamplerError.self, mentioning: ["patchSize 13", "12×12"]) {
            try exemplar.sample(batchSize: 2, patchSize: 13, using: &g)
        }
    }

    // MARK: - Losses

    func testLossHyperparametersAreNamed() throws {
        for margin: Float in [-0.1, -.infinity, .nan] {
            expectError(LossError.self, mentioning: ["margin"]) { try TripletMarginLoss(margin: margin).validate() }
        }
        XCTAssertNoThrow(try TripletMarginLoss(margin: 0).validate())
        for t: Float in [0, -0.0, -1, .infinity, .nan] {
            expectError(LossError.self, mentioning: ["temperature"]) { try InfoNCELoss(temperature: t).validate() }
        }
        XCTAssertNoThrow(try InfoNCELoss(temperature: 1e-3).validate())
        // The losses also refuse to evaluate with a bad hyper-parameter (no silent NaN).
        let batch = TripletEmbeddings(
            try Tensor(shape: [3, 2], values: [1, 0, 1, 0.1, 0, 1]),
            layout: TripletLayout(batchSize: 1, negativesPerAnchor: 1))
        expectError(LossError.self, mentioning: ["margin", "-1"]) { try TripletMarginLoss(margin: -1).evaluate(batch) }
        expectError(LossError.self, mentioning: ["temperature", "0"]) {
            try InfoNCELoss(temperature: 0).evaluate(batch)
        }
    }

    // MARK: - Optimizers and schedules

    func testOptimizerHyperparametersAreNamed() throws {
        for lr: Float in [-1e-3, .nan, .infinity] {
            expectError(OptimizerError.self, mentioning: ["learningRate"]) { try SGD(learningRate: lr).validate() }
            expectError(OptimizerError.self, mentioning: ["learningRate"]) { try Adam(learningRate: lr).validate() }
        }
        expectError(OptimizerError.self, mentioning: ["momentum", "-0.5"]) {
            try SGD(learningRate: 0.1, momentum: -0.5).validate()
        }
        expectError(OptimizerError.self, mentioning: ["weightDecay"]) {
            try SGD(learningRate: 0.1, weightDecay: -1).validate()
        }
        expectError(OptimizerError.self, mentioning: ["nesterov"]) {
            try SGD(learningRate: 0.1, nesterov: true).validate()
        }
        expectError(OptimizerError.self, mentioning: ["beta1"]) { try Adam(learningRate: 0.1, beta1: 1).validate() }
        expectError(OptimizerError.self, mentioning: ["epsilon"]) { try Adam(learningRate: 0.1, epsilon: 0).validate() }
        expectError(OptimizerError.self, mentioning: ["warmupSteps"]) {
            try CosineSchedule(initial: 0.1, warmupSteps: -1).validate()
        }
        expectError(OptimizerError.self, mentioning: ["milestones"]) {
            try StepDecaySchedule(initial: 0.1, milestones: [1.5]).validate()
        }
        XCTAssertNoThrow(try SGD(learningRate: 0).validate())
    }

    // MARK: - Through the trainer

    /// A valid two-stage configuration on 12×12 images: stage 1 conv 4 (3→4) + pool 2 on
    /// 5×5 patches, stage 2 conv 2 (4→4) + pool 2 on 9×9 patches.
    private struct Setup {
        var data: any ImageDataset = SyntheticImages(count: 8, size: 12, seed: 5)
        var stage2Input = 4
        var firstPatchSize = 5
        var inputChannels = 3
        var batchSize = [4, 4]
        var learningRate: [Float] = [0.01, 0.01]
        var adam = false
        var margin: Float = 0.5
        var temperature: Float?
        var negativesPerAnchor = 1
        var maxOffset = 1
        var schedule: (any LearningRateSchedule)?

        func stages() throws -> [Stage] {
            try (0..<2).map { k in
                let layers: [any Layer] =
                    k == 0 ? [conv(3, 4, 4, seed: 1), pool(2)] : [conv(stage2Input, 4, 2, seed: 2), pool(2)]
                let sampler = try NeighborPatchSampler(
                    dataset: data, maxOffset: maxOffset, negativesPerAnchor: negativesPerAnchor)
                let loss: any ContrastiveLoss =
                    temperature.map { InfoNCELoss(temperature: $0) }
                    ?? TripletMarginLoss(distance: CosineDistance(), margin: margin)
                let optimizer: any Optimizer =
                    adam ? Adam(learningRate: learningRate[k]) : SGD(learningRate: learningRate[k])
                return Stage(
                    layers: layers, objective: ContrastiveObjective(sampler: sampler, loss: loss), optimizer: optimizer,
                    schedule: schedule ?? ConstantSchedule(max(0, learningRate[k])), batchSize: batchSize[k],
                    budget: .steps(3))
            }
        }

        func trainer() throws -> LayerwiseTrainer {
            try LayerwiseTrainer(
                stages: try stages(), inputChannels: inputChannels, firstPatchSize: firstPatchSize, seed: 1)
        }
    }

    func testTheValidSetupTrains() throws {
        let trainer = try Setup().trainer()
        XCTAssertEqual(trainer.patchSizes, [5, 9])
        XCTAssertEqual(try trainer.pretrain().stages.map(\.steps), [3, 3])
    }

    /// Every case: building the stages or the trainer throws a typed error naming the option,
    /// stage and value. Nothing can have trained: the trainer does not exist yet.
    func testTrainerRejectsEachMisconfigurationBeforeTraining() throws {
        let cases: [(String, (inout Setup) -> Void, [String])] = [
            (
                "patch the stack cannot reduce to 1x1", { $0.firstPatchSize = 7 },
                ["stage 1", "7x7", "2x2", "smallest patch that gives 1x1 is 5x5"]
            ),
            ("patch smaller than the kernel", { $0.firstPatchSize = 3 }, ["stage 1", "3x3", "too small"]),
            ("channel mismatch between stages", { $0.stage2Input = 6 }, ["stage 2", "layer 0 (Conv2D)", "6"]),
            ("raw channels differ from the data", { $0.inputChannels = 1 }, ["objective.inputChannels", "3", "1"]),
            ("batch size 0", { $0.batchSize[1] = 0 }, ["stage 2", "batchSize = 0"]),
            ("batch size -5", { $0.batchSize[0] = -5 }, ["stage 1", "batchSize = -5"]),
            (
                "negative learning rate (SGD)", { $0.learningRate[0] = -0.1 },
                ["stage 1", "optimizer.learningRate = -0.1"]
            ),
            (
                "negative learning rate (Adam)",
                {
                    $0.adam = true; $0.learningRate[1] = -1e-3
                }, ["stage 2", "optimizer.learningRate = -0.001"]
            ),
            ("NaN learning rate", { $0.learningRate[0] = .nan }, ["stage 1", "optimizer.learningRate = nan"]),
            ("negative schedule", { $0.schedule = ConstantSchedule(-1) }, ["stage 1", "schedule", "-1"]),
            (
                "cosine warm-up < 0", { $0.schedule = CosineSchedule(initial: 0.1, warmupSteps: -2) },
                ["stage 1", "schedule.warmupSteps", "-2"]
            ),
            ("margin < 0", { $0.margin = -0.5 }, ["stage 1", "loss.margin = -0.5", "≥ 0"]),
            ("temperature 0", { $0.temperature = 0 }, ["stage 1", "loss.temperature = 0", "> 0"]),
            ("temperature < 0", { $0.temperature = -0.2 }, ["stage 1", "loss.temperature = -0.2"]),
            ("negativesPerAnchor 0", { $0.negativesPerAnchor = 0 }, ["negativesPerAnchor = 0", "≥ 1"]),
            ("maxOffset < 0", { $0.maxOffset = -1 }, ["maxOffset = -1", "≥ 0"]),
        ]
        for (name, mutate, mentions) in cases {
            var setup = Setup()
            mutate(&setup)
            do {
                let trainer = try setup.trainer()
                XCTFail("\(name): accepted (patch sizes \(trainer.patchSizes))")
            } catch let error as TrainerError {
                print("ConfigurationErrorTests: \(name): \(error)")
                for m in mentions {
                    XCTAssertTrue("\(error)".contains(m), "\(name): \"\(error)\" does not mention \"\(m)\"")
                }
            } catch let error as SamplerError {
                print("ConfigurationErrorTests: \(name): \(error)")
                for m in mentions {
                    XCTAssertTrue("\(error)".contains(m), "\(name): \"\(error)\" does not mention \"\(m)\"")
                }
            } catch {
                XCTFail("\(name): untyped or unexpected error \(type(of: error)): \(error)")
            }
        }
    }

    /// A stack whose top stage needs patches larger than the images: the run must fail with a
    /// typed error naming the patch and the image size, and must not spend the budget of the
    /// lower stages first.
    func testPatchLargerThanImageIsCaughtBeforeAnyStep() throws {
        var setup = Setup()
        setup.data = SyntheticImages(count: 8, size: 9, seed: 5)  // stage 2 needs 9 + maxOffset 1 = 10
        var steps = 0
        var error: Error?
        do {
            let trainer = try setup.trainer()
            try trainer.pretrain { if case .step = $0 { steps += 1 } }
        } catch let e {
            error = e
        }
        let text = error.map { "\($0)" } ?? "no error"
        print("ConfigurationErrorTests: patch larger than image: \(text)")
        XCTAssertTrue(error is SamplerError || error is TrainerError, "untyped: \(text)")
        for m in ["patchSize 9", "10", "9×9"] {
            XCTAssertTrue(text.contains(m), "\"\(text)\" does not mention \"\(m)\"")
        }
        XCTAssertEqual(steps, 0, "stage 1 trained \(steps) steps before the stage-2 patch size was found not to fit")
    }

    /// A checkpoint directory that cannot be created (a regular file is in the way) is
    /// reported before the first step, not when the first checkpoint is due.
    func testUnusableCheckpointDirectoryIsReportedBeforeAnyStep() throws {
        let dir = try temporaryDirectory()
        let blocker = dir + "/not-a-directory"
        XCTAssertTrue(FileManager.default.createFile(atPath: blocker, contents: Data([1])))
        for path in [blocker, blocker + "/checkpoints"] {
            let trainer = try Setup().trainer()
            trainer.checkpointDirectory = path
            var steps = 0
            XCTAssertThrowsError(try trainer.pretrain { if case .step = $0 { steps += 1 } }) { error in
                guard case let TrainerError.checkpoint(p, _) = error else {
                    return XCTFail("\(type(of: error)): \(error)")
                }
                print("ConfigurationErrorTests: checkpoint directory: \(error)")
                XCTAssertTrue(p.hasPrefix(blocker), p)
            }
            XCTAssertEqual(
                steps, 0, "\(path): \(steps) steps trained before the checkpoint directory was found unusable")
        }
    }
}
