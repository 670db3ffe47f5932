import Foundation
import Layerwise
import XCTest

/// Same seed → bit-identical results (single-threaded BLAS), different seeds → different
/// results, and with two BLAS threads only summation-order differences, within a stated
/// tolerance.
final class ReproducibilityTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    override func tearDown() {
        BLAS.threadCount = 1
    }

    /// One stage of a given objective on 16×16 synthetic images, its layers from `layerSeed`.
    private struct Pretraining {
        enum Kind { case triplet, infoNCE, exemplar }
        var kind = Kind.triplet
        var layerSeed: UInt64 = 1
        var trainerSeed: UInt64 = 7
        var steps = 8
        var batchSize = 16
        var width = 8
        var adam = false

        /// Trains and returns (trainer, stage parameters, every step's loss).
        func run() throws -> (LayerwiseTrainer, [Parameter], [Float]) {
            let (trainer, parameters) = try make()
            var losses: [Float] = []
            try trainer.pretrain { if case let .step(e) = $0 { losses.append(e.loss) } }
            return (trainer, parameters, losses)
        }

        /// The trainer (not yet trained) and its stage parameters.
        func make() throws -> (LayerwiseTrainer, [Parameter]) {
            let data = SyntheticImages(count: 24, seed: 99)
            var g = SeededGenerator(seed: layerSeed)
            let layers: [any Layer] = [
                try Conv2D(inputChannels: 3, outputChannels: width, kernelSize: 4, using: &g),
                try MaxPool2D(kernelSize: 2, stride: 2), ReLU(),
            ]
            let objective: ContrastiveObjective
            switch kind {
            case .triplet:
                objective = ContrastiveObjective(
                    sampler: try NeighborPatchSampler(dataset: data, maxOffset: 1),
                    loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5))
            case .infoNCE:
                objective = ContrastiveObjective(
                    sampler: try NeighborPatchSampler(dataset: data, maxOffset: 1, negativesPerAnchor: 3),
                    loss: InfoNCELoss(temperature: 0.2))
            case .exemplar:
                let augmentation = Compose([
                    try HorizontalFlip(), try ColorJitter(brightness: 0.3, contrast: 0.3),
                    try GaussianNoise(standardDeviation: 0.02),
                ])
                objective = ContrastiveObjective(
                    sampler: try AugmentedPatchSampler(dataset: data, augmentation: augmentation),
                    loss: TripletMarginLoss(distance: SquaredEuclideanDistance(), margin: 1))
            }
            let lr: Float = adam ? 1e-3 : 0.05
            let stage = Stage(
                layers: layers, objective: objective,
                optimizer: adam ? Adam(learningRate: lr) : SGD(learningRate: lr, momentum: 0.9),
                schedule: ConstantSchedule(lr), batchSize: batchSize, budget: .steps(steps))
            let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 5, seed: trainerSeed)
            return (trainer, stage.parameters)
        }
    }

    private func bits(_ losses: [Float]) -> [UInt32] { losses.map(\.bitPattern) }

    func testSameSeedGivesBitIdenticalWeightsLossesAndFiles() throws {
        let dir = try temporaryDirectory()
        for kind in [Pretraining.Kind.triplet, .infoNCE, .exemplar] {
            let config = Pretraining(kind: kind)
            let (ta, pa, la) = try config.run()
            let (tb, pb, lb) = try config.run()
            XCTAssertEqual(la.count, config.steps)
            XCTAssertEqual(bits(la), bits(lb), "\(kind): losses differ between identical runs")
            XCTAssertTrue(bitIdentical(snapshot(pa), snapshot(pb)), "\(kind): weights differ between identical runs")
            XCTAssertFalse(la.allSatisfy { $0 == la[0] }, "\(kind): the loss never changed, nothing was trained")
            // The saved files are byte-identical too.
            let a = dir + "/\(kind)-a.safetensors", b = dir + "/\(kind)-b.safetensors"
            try ta.saveWeights(to: a)
            try tb.saveWeights(to: b)
            XCTAssertEqual(
                try Data(contentsOf: URL(fileURLWithPath: a)), try Data(contentsOf: URL(fileURLWithPath: b)), "\(kind)")
        }
    }

    /// Resuming an Adam run (Adam keeps a per-parameter step count of shape [1] next to its
    /// moments) gives the uninterrupted run's weights exactly. Before the fix in
    /// Checkpoint.swift every Adam resume failed: the loader required each optimizer slot
    /// to have the parameter's shape.
    func testInterruptedAdamRunResumesBitIdentically() throws {
        let config = Pretraining(kind: .exemplar, steps: 9, adam: true)
        let (_, reference, referenceLosses) = try config.run()
        for stopAfter in [1, 4, 8] {
            let dir = try temporaryDirectory("adam\(stopAfter)")
            let (first, _) = try config.make()
            first.checkpointDirectory = dir
            first.checkpointEvery = 1
            XCTAssertThrowsError(
                try first.pretrain { e in
                    if case let .step(s) = e, s.step == stopAfter { first.requestStop() }
                })
            // A "new process": other initial weights and trainer seed, all restored from disk.
            let (resumed, parameters) = try Pretraining(
                kind: .exemplar, layerSeed: 9, trainerSeed: 99, steps: 9, adam: true
            ).make()
            resumed.checkpointDirectory = dir
            var losses: [Float] = []
            try resumed.pretrain(resume: true) { if case let .step(e) = $0 { losses.append(e.loss) } }
            XCTAssertEqual(bits(losses), bits(Array(referenceLosses[stopAfter...])), "stopped after \(stopAfter)")
            XCTAssertTrue(bitIdentical(snapshot(reference), snapshot(parameters)), "stopped after \(stopAfter)")
        }
    }

    /// A run killed while writing a checkpoint leaves `.<name>.tmp-<pid>-<random>` behind;
    /// the next run removes those of dead processes and nothing else.
    func testRunRemovesTemporaryCheckpointFilesOfDeadWriters() throws {
        let dir = try temporaryDirectory()
        let dead = Int32.max - 7  // above any pid_max: no such process
        let live = ProcessInfo.processInfo.processIdentifier
        let stale = [
            ".layerwise-stage1-step000000004.safetensors.tmp-\(dead)-1x2y",
            ".endToEnd-stage0-step000000010.safetensors.tmp-\(dead)-zz",
        ]
        let kept = [
            ".layerwise-stage1-step000000004.safetensors.tmp-\(live)-abc",  // a live writer
            ".notes.safetensors.tmp-\(dead)-q", "notes.txt", ".hidden",
        ]
        for name in stale + kept {
            XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/" + name, contents: Data([1, 2, 3])))
        }
        let (trainer, _) = try Pretraining(steps: 2).make()
        trainer.checkpointDirectory = dir
        try trainer.pretrain(resume: true)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        for name in stale { XCTAssertFalse(left.contains(name), "\(name) was not removed") }
        for name in kept { XCTAssertTrue(left.contains(name), "\(name) was removed") }
        XCTAssertTrue(left.contains("layerwise-stage1-step000000002.safetensors"))
    }

    func testDifferentSeedsGiveDifferentResults() throws {
        let (_, reference, referenceLosses) = try Pretraining().run()
        // Another trainer seed (sampling), same initial weights.
        let (_, otherSampling, otherLosses) = try Pretraining(trainerSeed: 8).run()
        XCTAssertNotEqual(bits(referenceLosses), bits(otherLosses))
        XCTAssertFalse(
            zip(snapshot(reference), snapshot(otherSampling)).contains { $0.isBitIdentical(to: $1) },
            "every parameter should differ when the sampled triplets differ")
        // Another initialisation seed, same sampling.
        let (_, otherInit, _) = try Pretraining(layerSeed: 2).run()
        XCTAssertFalse(zip(snapshot(reference), snapshot(otherInit)).contains { $0.isBitIdentical(to: $1) })
    }

    /// Two OpenBLAS threads split the GEMMs differently, so sums may round differently; the
    /// training trajectory must stay within the stated tolerance of the 1-thread run:
    /// every step's loss within 1e-3 relative and every weight within 1e-3 absolute after
    /// 12 steps (the run is sized so the convolutions' GEMMs are large enough to be split).
    func testTwoBLASThreadsStayWithinToleranceOfOneThread() throws {
        let config = Pretraining(steps: 12, batchSize: 64, width: 32)
        BLAS.threadCount = 1
        let (_, single, singleLosses) = try config.run()
        BLAS.threadCount = 2
        let threads = BLAS.threadCount
        let (_, double, doubleLosses) = try config.run()
        BLAS.threadCount = 1
        XCTAssertEqual(BLAS.threadCount, 1, "threadCount restored")

        XCTAssertEqual(singleLosses.count, doubleLosses.count)
        var worstLoss: Float = 0, worstWeight: Float = 0
        for (a, b) in zip(singleLosses, doubleLosses) {
            XCTAssertTrue(a.isFinite && b.isFinite)
            worstLoss = max(worstLoss, abs(a - b) / max(abs(a), 1e-6))
        }
        for (a, b) in zip(snapshot(single), snapshot(double)) {
            XCTAssertEqual(a.shape, b.shape)
            a.withUnsafeBufferPointer { x in
                b.withUnsafeBufferPointer { y in
                    for i in 0..<x.count { worstWeight = max(worstWeight, abs(x[i] - y[i])) }
                }
            }
        }
        XCTAssertLessThanOrEqual(worstLoss, 1e-3, "loss drifted beyond summation-order noise")
        XCTAssertLessThanOrEqual(worstWeight, 1e-3, "weights drifted beyond summation-order noise")
        let identical = bitIdentical(snapshot(single), snapshot(double))
        print(
            "ReproducibilityTests: BLAS threads \(threads) vs 1 after \(config.steps) steps: worst relative loss "
                + "difference \(worstLoss), worst weight difference \(worstWeight), bit-identical: \(identical)")
    }

    /// The BLAS call alone, at a size OpenBLAS certainly splits between threads: a 2-thread
    /// product must agree with the 1-thread product to float rounding (it is typically
    /// bit-identical, because OpenBLAS partitions the output, not the summed dimension).
    func testTwoThreadMatrixProductAgreesWithOneThread() throws {
        var g = SeededGenerator(seed: 4)
        let a = Tensor.normal([384, 512], using: &g), b = Tensor.normal([512, 384], using: &g)
        BLAS.threadCount = 1
        let one = try BLAS.matmul(a, b)
        BLAS.threadCount = 2
        let two = try BLAS.matmul(a, b)
        BLAS.threadCount = 1
        var worst: Float = 0
        one.withUnsafeBufferPointer { x in
            two.withUnsafeBufferPointer { y in
                for i in 0..<x.count { worst = max(worst, abs(x[i] - y[i])) }
            }
        }
        // Entries are sums of 512 products of N(0,1) values (|c| ~ 23): 1e-3 is ~100 ulps.
        XCTAssertLessThanOrEqual(worst, 1e-3)
        print(
            "ReproducibilityTests: 384x512x512 SGEMM, 2 vs 1 threads: worst difference \(worst), "
                + "bit-identical: \(one.isBitIdentical(to: two))")
    }
}
