import Foundation
import Layerwise
import XCTest

@testable import Training

/// One rank's view of a job whose collectives do nothing: for checking how work is split
/// over ranks without a transport (multi-rank runs are tested by Scripts/mpi_test.sh).
final class RankView: Communicator {
    let rank: Int
    let size: Int
    init(rank: Int, of size: Int) { (self.rank, self.size) = (rank, size) }
    func allReduce(_ values: UnsafeMutableBufferPointer<Float>, _ reduction: Reduction) throws {}
    func allReduce(_ values: UnsafeMutableBufferPointer<Double>, _ reduction: Reduction) throws {}
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {}
    func barrier() throws {}
}

final class DataParallelTests: XCTestCase {
    func testSharesAreContiguousCoverEverythingAndDifferByAtMostOne() {
        XCTAssertEqual(SingleProcessCommunicator.shares(of: 10, parts: 3), [0..<4, 4..<7, 7..<10])
        XCTAssertEqual(SingleProcessCommunicator.shares(of: 1, parts: 2), [0..<1, 1..<1])
        XCTAssertEqual(RankView(rank: 1, of: 2).share(of: 7), 4..<7)
        XCTAssertEqual(ShardedSampling(shards: 4).shards(ofRank: 1, size: 2), 2..<4)
    }

    func testTheSingleProcessCommunicatorChangesNothingAndHasOnlyRoot0() throws {
        let one = SingleProcessCommunicator()
        var values: [Float] = [1, 2, 3]
        try one.allReduce(&values, .mean)
        XCTAssertEqual(values, [1, 2, 3])
        XCTAssertTrue(try one.any(true))
        XCTAssertFalse(try one.any(false))
        var x = 5
        XCTAssertThrowsError(try withUnsafeMutableBytes(of: &x) { try one.broadcast($0, root: 1) }) { error in
            XCTAssertTrue("\(error)".contains("root 1"), "\(error)")
        }
    }

    func testShardGeneratorsDependOnEveryCoordinateAndOnNothingElse() {
        func first(_ g: SeededGenerator) -> UInt64 { var g = g; return g.next() }
        let base = first(ShardedSampling.generator(key: 1, stage: 1, step: 0, shard: 0))
        XCTAssertEqual(base, first(ShardedSampling.generator(key: 1, stage: 1, step: 0, shard: 0)))
        let others = [
            ShardedSampling.generator(key: 2, stage: 1, step: 0, shard: 0),
            ShardedSampling.generator(key: 1, stage: 2, step: 0, shard: 0),
            ShardedSampling.generator(key: 1, stage: 1, step: 1, shard: 0),
            ShardedSampling.generator(key: 1, stage: 1, step: 0, shard: 1),
        ].map(first)
        XCTAssertEqual(Set(others + [base]).count, 5)
    }

    func state(_ t: LayerwiseTrainer) -> [Tensor] { t.namedState().map(\.parameter.value) }

    /// One process computing two shards per batch: deterministic, different from the single
    /// stream, and a resume is bit-identical (the shards' generators are derived per step).
    func testShardedSamplingIsDeterministicAndResumesBitIdentically() throws {
        func sharded(_ seed: UInt64 = 11) throws -> LayerwiseTrainer {
            let t = try TwoStageFixture(momentum: 0.9, steps: 12, stepsPerEpoch: 4).trainer(seed: seed)
            t.sampling = ShardedSampling(shards: 2)
            return t
        }
        let full = try sharded()
        try full.pretrain()
        let again = try sharded()
        try again.pretrain()
        XCTAssertTrue(bitIdentical(state(full), state(again)))
        let single = try TwoStageFixture(momentum: 0.9, steps: 12, stepsPerEpoch: 4).trainer(seed: 11)
        try single.pretrain()
        XCTAssertFalse(bitIdentical(state(full), state(single)), "two shards draw other batches than one stream")

        let dir = try temporaryDirectory()
        let first = try sharded()
        first.checkpointDirectory = dir
        XCTAssertThrowsError(
            try first.pretrain { e in
                if case let .step(s) = e, s.stage == 2, s.step == 7 { first.requestStop() }
            })
        let resumed = try sharded(999)
        resumed.checkpointDirectory = dir
        try resumed.pretrain(resume: true)
        XCTAssertTrue(bitIdentical(state(full), state(resumed)))
    }

    func testABatchThatDoesNotSplitIntoTheShardsIsATypedError() throws {
        let t = try TwoStageFixture(batchSize: 16).trainer()
        t.sampling = ShardedSampling(shards: 3)
        XCTAssertThrowsError(try t.pretrain()) { error in
            guard case let TrainerError.invalidOption(stage, option, value, reason) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(stage, 1)
            XCTAssertEqual(option, "batchSize")
            XCTAssertEqual(value, "16")
            XCTAssertTrue(reason.contains("3 data-parallel shards"), reason)
        }
        let tooFew = try TwoStageFixture(batchSize: 16).trainer()
        tooFew.sampling = ShardedSampling(shards: 1)
        tooFew.communicator = RankView(rank: 0, of: 2)
        XCTAssertThrowsError(try tooFew.pretrain()) { error in
            XCTAssertTrue("\(error)".contains("at least one shard per rank"), "\(error)")
        }
    }

    /// Every rank draws the same windows but keeps only those of its image chunks: the
    /// ranks' rows, in chunk order, are exactly one process's rows.
    func testInputWhiteningRanksKeepTheirChunksOfTheSameDraws() throws {
        let data = SyntheticImages(count: 24, seed: 1)
        let prep = try InputWhitening(
            dataset: data, normalization: ChannelNormalization.fit(data), imageCount: 600, windowCount: 1_200)
        var g = SeededGenerator(seed: 1)
        let frozen = FrozenStack(layers: [try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, using: &g)])
        func windows(_ c: any Communicator) throws -> [Float] {
            var g = SeededGenerator(seed: 5)
            let w = try prep.sampleWindows(kernel: 2, below: frozen, stage: 2, communicator: c, using: &g)
            XCTAssertEqual(
                g.next(),
                {
                    var h = SeededGenerator(seed: 5);
                    _ = try? prep.sampleWindows(
                        kernel: 2, below: frozen, stage: 2, using: &h);
                    return h.next()
                }(), "every rank makes the same draws")
            return w.scalars
        }
        let all = try windows(SingleProcessCommunicator())
        let (r0, r1) = (try windows(RankView(rank: 0, of: 2)), try windows(RankView(rank: 1, of: 2)))
        let d = 16, chunkRows = 512 * d  // 256 images x 2 windows per image
        XCTAssertEqual(all.count, 1_200 * d)
        XCTAssertEqual(r1, Array(all[chunkRows..<(2 * chunkRows)]))
        XCTAssertEqual(r0, Array(all[0..<chunkRows] + all[(2 * chunkRows)...]))
    }

    /// Each rank extracts the pooled features of its own block of images; its rows equal one
    /// process's rows (the other rows arrive by broadcast, a no-op in this view).
    func testPooledFeaturesRanksComputeTheirOwnBlockOfImages() throws {
        let data = SyntheticImages(count: 10, seed: 3)
        var g = SeededGenerator(seed: 2)
        let extractor = FeatureExtractor(layers: [
            try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, using: &g)
        ])
        let all = try Evaluation.pooledFeatures(extractor, of: data, batchSize: 3).features
        let width = all.shape[1]
        for rank in 0..<3 {
            let view = RankView(rank: rank, of: 3)
            let mine = view.share(of: 10)
            let features = try Evaluation.pooledFeatures(extractor, of: data, batchSize: 3, communicator: view).features
            XCTAssertEqual(features.shape, all.shape)
            let range = (mine.lowerBound * width)..<(mine.upperBound * width)
            XCTAssertEqual(Array(features.scalars[range]), Array(all.scalars[range]), "rank \(rank)")
        }
    }
}
