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
        XCTAssertEqual(error, .patchLargerThanImage(
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
            try Tensor(shape: [3, 2], values: [1, 0, 1, 0.1, 0, 1]), layout: TripletLayout(batchSize: 1, negativesPerAnchor: 1))
        expectError(LossError.self, mentioning: ["margin", "-1"]) { try TripletMarginLoss(margin: -1).evaluate(batch) }
        expectError(LossError.self, mentioning: ["temperature", "0"]) { try InfoNCELoss(temperature: 0).evaluate(batch) }
    }

    // MARK: - Optimizers and schedules

    func testOptimizerHyperparametersAreNamed() throws {
        for lr: Float in [-1e-3, .nan, .infinity] {
            expectError(OptimizerError.self, mentioning: ["learningRate"]) { try SGD(learningRate: lr).validate() }
            expectError(OptimizerError.self, mentioning: ["learningRate"]) { try Adam(learningRate: lr).validate() }
        }
        expectError(OptimizerError.self, mentioning: ["momentum", "-0.5"]) { try SGD(learningRate: 0.1, momentum: -0.5).validate() }
        expectError(OptimizerError.self, mentioning: ["weightDecay"]) { try SGD(learningRate: 0.1, weightDecay: -1).validate() }
        expectError(OptimizerError.self, mentioning: ["nesterov"]) { try SGD(learningRate: 0.1, nesterov: true).validate() }
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
}
