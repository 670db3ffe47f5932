import Foundation
import Layerwise
import XCTest

/// Optimizer state read from a checkpoint is checked against the optimizer's layout, and
/// an update that would leave a weight NaN or infinite is undone with a typed error.
final class CheckpointStateTests: XCTestCase {
    override func setUp() { BLAS.threadCount = 1 }

    /// One stage, a 3x3 conv (1 → 2) on 3x3 patches of four 6x6 images, `optimizer`.
    func trainer(_ optimizer: any Optimizer, dir: String) throws -> LayerwiseTrainer {
        var g = SeededGenerator(seed: 1)
        let pixels = (0..<(4 * 36)).map { _ in UInt8(g.nextInt(below: 256)) }
        let images = try InMemoryImageDataset(pixels: pixels, shape: ImageShape(channels: 1, height: 6, width: 6))
        let stage = Stage(
            layers: [try Conv2D(inputChannels: 1, outputChannels: 2, kernelSize: 3, using: &g)],
            objective: ContrastiveObjective(
                sampler: try NeighborPatchSampler(dataset: images, maxOffset: 1),
                loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5)),
            optimizer: optimizer, schedule: ConstantSchedule(optimizer.learningRate), batchSize: 2,
            budget: .epochs(1, stepsPerEpoch: 4))
        let t = try LayerwiseTrainer(stages: [stage], inputChannels: 1, firstPatchSize: 3, seed: 7)
        t.checkpointDirectory = dir
        return t
    }

    /// A checkpoint after 2 of 4 steps, edited by `edit`; returns the resume's error.
    func resumeError(_ make: () -> any Optimizer, edit: (inout [String: Tensor]) -> Void) throws -> any Error {
        let dir = try temporaryDirectory("state\(UUID().uuidString.prefix(8))")
        let first = try trainer(make(), dir: dir)
        XCTAssertThrowsError(try first.pretrain { if case let .step(s) = $0, s.step == 2 { first.requestStop() } })
        let path = try XCTUnwrap(first.latestCheckpoint(mode: .layerwise))
        var file = try SafeTensors.read(path: path)
        edit(&file.tensors)
        try SafeTensors.write(file.tensors, metadata: file.metadata, to: path)
        var failure: (any Error)?
        do { try trainer(make(), dir: dir).pretrain(resume: true) } catch { failure = error }
        return try XCTUnwrap(failure)
    }

    func assertCheckpointError(
        _ error: any Error, mentions text: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        guard case let .checkpoint(_, reason)? = error as? TrainerError else {
            return XCTFail("expected a checkpoint error, got \(error)", file: file, line: line)
        }
        XCTAssertTrue(reason.contains(text), "\(reason) should mention \(text)", file: file, line: line)
    }

    func testAdamStateIsChecked() throws {
        let weight = "optimizer.stage1.0.weight"
        let cases: [(String, (inout [String: Tensor]) -> Void)] = [
            ("slot 1 (second moment) holds negative values", { $0["\(weight).1"]![flat: 3] = -24_648_982 }),
            ("slot 2 (step count) is -4.0", { $0["\(weight).2"]![flat: 0] = -4 }),
            ("slot 2 (step count) is 0.5", { $0["\(weight).2"]![flat: 0] = 0.5 }),
            ("slot 0 has shape [1], expected [2, 1, 3, 3]", { $0["\(weight).0"] = Tensor(shape: [1], repeating: 0) }),
            ("2 slots, expected 3", { $0["\(weight).2"] = nil }),
        ]
        for (text, edit) in cases {
            assertCheckpointError(try resumeError({ Adam(learningRate: 0.01) }, edit: edit), mentions: text)
        }
    }

    func testSGDStateIsChecked() throws {
        // A momentum buffer of shape [1] used to pass (any slot could be [1]); SGD's update
        // would then have read and written past its end.
        let error = try resumeError(
            { SGD(learningRate: 0.01, momentum: 0.9) },
            edit: { $0["optimizer.stage1.0.weight.0"] = Tensor(shape: [1], repeating: 0) })
        assertCheckpointError(error, mentions: "slot 0 has shape [1], expected [2, 1, 3, 3]")
    }

    func testAnUpdateThatOverflowsIsUndone() throws {
        // Finite, valid Adam state whose next update overflows: a huge first moment over a
        // tiny second moment. The resumed step must stop with the weights of the checkpoint.
        let dir = try temporaryDirectory()
        let first = try trainer(Adam(learningRate: 0.01), dir: dir)
        XCTAssertThrowsError(try first.pretrain { if case let .step(s) = $0, s.step == 2 { first.requestStop() } })
        let path = try XCTUnwrap(first.latestCheckpoint(mode: .layerwise))
        var file = try SafeTensors.read(path: path)
        file.tensors["optimizer.stage1.0.weight.0"] = Tensor(shape: [2, 1, 3, 3], repeating: 3e38)
        file.tensors["optimizer.stage1.0.weight.1"] = Tensor(shape: [2, 1, 3, 3], repeating: 0)
        try SafeTensors.write(file.tensors, metadata: file.metadata, to: path)

        let resumed = try trainer(Adam(learningRate: 0.01), dir: dir)
        XCTAssertThrowsError(try resumed.pretrain(resume: true)) { error in
            XCTAssertEqual(
                error as? TrainerError,
                .nonFinite(stage: 1, epoch: 1, step: 3, what: "stage1.0.weight after the optimizer update"))
        }
        for (name, value) in resumed.stateTensors() {
            XCTAssertTrue(value.isFinite, name)
            XCTAssertTrue(value.isBitIdentical(to: file.tensors[name]!), "\(name) is the checkpoint's (update undone)")
        }
    }
}
