import Foundation
import LayerwiseTestSupport
import Losses
import TensorCore
import XCTest

/// Records the last problem a loss handed to the miner, and delegates or returns fixed picks.
private final class SpyMiner: NegativeMiner, @unchecked Sendable {
    private let lock = NSLock()
    private var _last: MiningProblem?
    let inner: any NegativeMiner
    init(_ inner: any NegativeMiner) { self.inner = inner }
    var last: MiningProblem? { lock.withLock { _last } }
    func selectNegatives(_ problem: MiningProblem) -> [Int?] {
        lock.withLock { _last = problem }
        return inner.selectNegatives(problem)
    }
}

private struct FixedMiner: NegativeMiner {
    let picks: [Int?]
    func selectNegatives(_ problem: MiningProblem) -> [Int?] { picks }
}

final class NegativeMinerTests: XCTestCase {
    /// One anchor, d(a,p) = 0.5, margin 0.3; candidates 4 and 5 are from the anchor's image.
    func handBuiltProblem(anchorPositive: Float = 0.5) throws -> MiningProblem {
        try MiningProblem(
            anchorPositiveDistances: [anchorPositive],
            distances: [0.2, 0.9, 0.6, 0.7, 0.1, 0.55],
            allowed: [true, true, true, true, false, false], candidateCount: 6, margin: 0.3)
    }

    func testHardestPicksTheClosestAllowedCandidate() throws {
        XCTAssertEqual(HardestNegativeMiner().selectNegatives(try handBuiltProblem()), [0])  // not 4 (0.1, same image)
    }

    func testSemiHardPicksTheClosestFartherThanThePositive() throws {
        // Farther than 0.5 and allowed: 0.9, 0.6, 0.7 → 0.6 (inside the margin band 0.5…0.8).
        // 0.55 would be closer but is from the anchor's image.
        XCTAssertEqual(SemiHardNegativeMiner().selectNegatives(try handBuiltProblem()), [2])
        // Nothing farther than the positive: fall back to the farthest allowed (0.9).
        XCTAssertEqual(SemiHardNegativeMiner().selectNegatives(try handBuiltProblem(anchorPositive: 1.0)), [1])
        // Only candidates beyond the margin band: still the closest farther one.
        let far = try MiningProblem(
            anchorPositiveDistances: [0.1], distances: [1.5, 1.2, 0.05], allowed: [true, true, true],
            candidateCount: 3, margin: 0.3)
        XCTAssertEqual(SemiHardNegativeMiner().selectNegatives(far), [1])
    }

    func testMinersReturnNilWithoutAllowedCandidates() throws {
        let none = try MiningProblem(
            anchorPositiveDistances: [0.5], distances: [0.1, 0.2], allowed: [false, false], candidateCount: 2,
            margin: 0.2)
        XCTAssertEqual(HardestNegativeMiner().selectNegatives(none), [nil])
        XCTAssertEqual(SemiHardNegativeMiner().selectNegatives(none), [nil])
        XCTAssertEqual(RandomNegativeMiner(seed: 1).selectNegatives(none), [nil])
    }

    func testMiningProblemRejectsMismatchedArrays() {
        XCTAssertThrowsError(
            try MiningProblem(
                anchorPositiveDistances: [0.5], distances: [0.1, 0.2, 0.3], allowed: [true, true], candidateCount: 2,
                margin: 0.2))
        XCTAssertThrowsError(
            try MiningProblem(
                anchorPositiveDistances: [0.5], distances: [0.1, 0.2], allowed: [true], candidateCount: 2, margin: 0.2))
    }

    func testRandomMinerIsSeededAllowedOnlyAndCoversCandidates() throws {
        let problem = try handBuiltProblem()
        let a = RandomNegativeMiner(seed: 7), b = RandomNegativeMiner(seed: 7)
        var seen = Set<Int>()
        var sequence: [Int] = []
        for _ in 0..<200 {
            let pa = a.selectNegatives(problem), pb = b.selectNegatives(problem)
            XCTAssertEqual(pa, pb)
            let pick = try XCTUnwrap(pa[0])
            XCTAssertTrue(problem.isAllowed(anchor: 0, candidate: pick), "picked disallowed \(pick)")
            seen.insert(pick)
            sequence.append(pick)
        }
        XCTAssertEqual(seen, [0, 1, 2, 3])
        XCTAssertNotEqual(Set(sequence.prefix(10)).count, 1, "the generator must advance between calls")
        XCTAssertNotEqual(
            (0..<20).map { _ in RandomNegativeMiner(seed: 8).selectNegatives(problem)[0]! },
            (0..<20).map { _ in a.selectNegatives(problem)[0]! })
    }

    /// Rows: a0 a1 p0 p1 n0 n1.
    let rows: [Float] = [1, 0, 0, 1, 0.9, 0.1, 0.1, 1, 1, 0.01, 0.7, 0.7]

    func testSourceImagesDecideTheCandidates() throws {
        let x = try Tensor(shape: [6, 2], values: rows)
        let layout = TripletLayout(batchSize: 2, negativesPerAnchor: 1)
        // n0 (row 4) is from a third image, n1 (row 5) from anchor 0's image.
        let spy = SpyMiner(HardestNegativeMiner())
        let withSources = try TripletMarginLoss(margin: 2, miner: spy)
            .evaluate(TripletEmbeddings(x, layout: layout, sourceImages: [10, 11, 10, 11, 12, 10]))
        let problem = try XCTUnwrap(spy.last)
        XCTAssertEqual(
            (0..<6).map { problem.isAllowed(anchor: 0, candidate: $0) }, [false, true, false, true, true, false])
        XCTAssertEqual(
            (0..<6).map { problem.isAllowed(anchor: 1, candidate: $0) }, [true, false, true, false, true, true])
        // Anchor 0: the closest allowed row is n0 (row 4, d ≈ 5e-5); n1 would be excluded anyway.
        // Anchor 1: allowed rows 0, 2, 4, 5 — the closest is n1 (row 5).
        let x64 = Naive.rows(x)
        let expected = Naive.triplet(
            .cosine, rows: x64, triplets: [(0, 2, 4), (1, 3, 5)], margin: 2, overActive: false)
        XCTAssertEqual(Double(withSources.value), expected.loss, accuracy: 1e-5)

        // Without source images, anchor i's own rows (a_i, p_i, n_i) are its source: anchor 0
        // may not take row 4 (its stored negative) and takes n1 (row 5) instead; anchor 1 may
        // take rows 0, 2, 4 and the closest is p0 (row 2, d ≈ 0.89).
        let spy2 = SpyMiner(HardestNegativeMiner())
        let grouped = try TripletMarginLoss(margin: 2, miner: spy2).evaluate(TripletEmbeddings(x, layout: layout))
        let p2 = try XCTUnwrap(spy2.last)
        XCTAssertEqual((0..<6).map { p2.isAllowed(anchor: 0, candidate: $0) }, [false, true, false, true, false, true])
        let expected2 = Naive.triplet(
            .cosine, rows: x64, triplets: [(0, 2, 5), (1, 3, 2)], margin: 2, overActive: false)
        XCTAssertEqual(Double(grouped.value), expected2.loss, accuracy: 1e-5)
        XCTAssertEqual(problem.anchorPositiveDistances.count, 2)
        XCTAssertEqual(
            problem.distance(anchor: 0, candidate: 4), Float(Naive.distance(.cosine, x64[0], x64[4])), accuracy: 1e-5)
    }

    func testTheAnchorsOwnPositiveIsNeverANegativeEvenFromAnotherImage() throws {
        // Frame-pair style sources: every row its own image. p0 (row 2) is anchor 0's closest
        // row but must not be mined for it.
        let x = try Tensor(shape: [6, 2], values: rows)
        let spy = SpyMiner(HardestNegativeMiner())
        _ = try TripletMarginLoss(margin: 2, miner: spy)
            .evaluate(
                TripletEmbeddings(
                    x, layout: TripletLayout(batchSize: 2, negativesPerAnchor: 1), sourceImages: [0, 1, 2, 3, 4, 5]))
        let problem = try XCTUnwrap(spy.last)
        XCTAssertEqual(
            (0..<6).map { problem.isAllowed(anchor: 0, candidate: $0) }, [false, true, false, true, true, true])
        XCTAssertEqual(
            (0..<6).map { problem.isAllowed(anchor: 1, candidate: $0) }, [true, false, true, false, true, true])
        XCTAssertEqual(HardestNegativeMiner().selectNegatives(problem), [4, 5])
    }

    func testBadMinerAnswersAndMissingCandidatesAreTypedErrors() throws {
        let x = try Tensor(shape: [6, 2], values: rows)
        let batch = TripletEmbeddings(x, layout: TripletLayout(batchSize: 2, negativesPerAnchor: 1))
        XCTAssertThrowsError(try TripletMarginLoss(miner: FixedMiner(picks: [0, 0])).evaluate(batch)) {
            XCTAssertEqual($0 as? LossError, .invalidMinerChoice(anchor: 0, row: 0))
        }
        XCTAssertThrowsError(try TripletMarginLoss(miner: FixedMiner(picks: [1, 99])).evaluate(batch)) {
            XCTAssertEqual($0 as? LossError, .invalidMinerChoice(anchor: 1, row: 99))
        }
        XCTAssertThrowsError(try TripletMarginLoss(miner: FixedMiner(picks: [nil, 0])).evaluate(batch)) {
            XCTAssertEqual($0 as? LossError, .noNegativeCandidates(anchor: 0))
        }
        XCTAssertThrowsError(try TripletMarginLoss(miner: FixedMiner(picks: [1])).evaluate(batch)) {
            XCTAssertEqual($0 as? LossError, .invalidMinerChoice(anchor: 1, row: -1))
        }
        // Every row from one image: nothing to mine.
        let oneImage = TripletEmbeddings(x, layout: batch.layout, sourceImages: Array(repeating: 3, count: 6))
        XCTAssertThrowsError(try TripletMarginLoss(miner: HardestNegativeMiner()).evaluate(oneImage)) {
            XCTAssertEqual($0 as? LossError, .noNegativeCandidates(anchor: 0))
        }
        // K = 0 with a miner works: in-batch negatives only.
        let noStored = try Tensor(shape: [4, 2], values: Array(rows.prefix(8)))
        let r = try TripletMarginLoss(margin: 2, miner: HardestNegativeMiner())
            .evaluate(TripletEmbeddings(noStored, layout: TripletLayout(batchSize: 2, negativesPerAnchor: 0)))
        XCTAssertTrue(r.value > 0 && r.gradient.isFinite)
    }
}
