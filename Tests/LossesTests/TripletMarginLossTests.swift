import LayerwiseTestSupport
import Losses
import TensorCore
import XCTest

final class TripletMarginLossTests: XCTestCase {
    /// A margin that leaves some triplets active and some not, per distance scale (D = 8, N(0,1)).
    static func margin(for kind: Naive.Kind) -> Float {
        switch kind {
        case .cosine: return 0.5
        case .euclidean: return 1
        case .squaredEuclidean: return 6
        }
    }

    /// The first seed whose hinge values are all at least `gap` from the kink, so central
    /// differences never straddle it. Chosen by a property of the data, not of the result.
    static func wellSeparatedBatch(
        _ kind: Naive.Kind, batchSize: Int, negatives: Int, margin: Float, sources: [Int]? = nil,
        extra: (TripletEmbeddings) -> Bool = { _ in true }
    ) -> TripletEmbeddings {
        let gap = 0.02 * (kind == .squaredEuclidean ? 8.0 : 1.0)
        for seed in UInt64(1)...500 {
            let batch = randomBatch(
                batchSize: batchSize, negatives: negatives, dimension: 8, seed: seed, sources: sources)
            let x = Naive.rows(batch.embeddings)
            let hinges = Naive.triplet(
                kind, rows: x, triplets: Naive.storedTriplets(batch.layout), margin: Double(margin), overActive: false
            ).hinges
            if hinges.allSatisfy({ abs($0) > gap }), hinges.contains(where: { $0 > 0 }), extra(batch) { return batch }
        }
        fatalError("no well-separated batch found")  // test fixture invariant, not user input
    }

    func testKnownAnswersIdenticalAnchorPositiveOrthogonalNegative() throws {
        // a = p = e1, n = e2: cosine d(a,p) = 0, d(a,n) = 1.
        let x = try Tensor(shape: [3, 2], values: [1, 0, 1, 0, 0, 1])
        let batch = TripletEmbeddings(x, layout: TripletLayout(batchSize: 1, negativesPerAnchor: 1))
        let easy = try TripletMarginLoss(margin: 0.5).evaluate(batch)
        XCTAssertEqual(easy.value, 0, accuracy: 1e-6)
        XCTAssertEqual(easy.diagnostics.activeFraction, 0)
        XCTAssertEqual(easy.gradient.scalars, [0, 0, 0, 0, 0, 0])
        let hard = try TripletMarginLoss(margin: 1.5).evaluate(batch)
        XCTAssertEqual(hard.value, 0.5, accuracy: 1e-6)
        XCTAssertEqual(hard.diagnostics.meanPositiveDistance, 0, accuracy: 1e-6)
        XCTAssertEqual(hard.diagnostics.meanNegativeDistance, 1, accuracy: 1e-6)
        XCTAssertEqual(hard.diagnostics.activeFraction, 1)
        XCTAssertFalse(hard.diagnostics.isCollapsed)
        // Euclidean: d(a,n) = √2, squared: 2.
        let euclid = try TripletMarginLoss(distance: EuclideanDistance(), margin: 2).evaluate(batch)
        XCTAssertEqual(euclid.value, 2 - Float(2).squareRoot(), accuracy: 1e-6)
        let squared = try TripletMarginLoss(distance: SquaredEuclideanDistance(), margin: 3).evaluate(batch)
        XCTAssertEqual(squared.value, 1, accuracy: 1e-6)
    }

    func testCollapsedEmbeddingsAreReportedAndLossEqualsMargin() throws {
        var rng = SeededGenerator(seed: 5)
        let row = (0..<6).map { _ in rng.nextNormal() }
        let layout = TripletLayout(batchSize: 4, negativesPerAnchor: 2)
        let x = try Tensor(shape: [layout.rowCount, 6], values: Array((0..<layout.rowCount).map { _ in row }.joined()))
        for kind in Naive.Kind.allCases {
            for miner in [nil, HardestNegativeMiner() as any NegativeMiner] {
                let result = try TripletMarginLoss(distance: Naive.distance(for: kind), margin: 0.3, miner: miner)
                    .evaluate(TripletEmbeddings(x, layout: layout))
                XCTAssertEqual(result.value, 0.3, accuracy: 1e-5, "\(kind)")
                XCTAssertTrue(result.diagnostics.isCollapsed, "\(kind)")
                XCTAssertEqual(result.diagnostics.activeFraction, 1)
            }
        }
        // Healthy random embeddings are not collapsed.
        let healthy = try TripletMarginLoss().evaluate(randomBatch(batchSize: 8, negatives: 1, dimension: 8, seed: 3))
        XCTAssertFalse(healthy.diagnostics.isCollapsed)
    }

    func testGradientsMatchFiniteDifferencesForEveryDistanceReductionAndK() throws {
        for kind in Naive.Kind.allCases {
            for k in [1, 3] {
                let margin = Self.margin(for: kind)
                let batch = Self.wellSeparatedBatch(kind, batchSize: 3, negatives: k, margin: margin)
                for reduction in [TripletReduction.mean, .meanOverActive] {
                    try assertGradientMatchesFiniteDifferences(
                        TripletMarginLoss(distance: Naive.distance(for: kind), margin: margin, reduction: reduction),
                        batch, "\(kind) K=\(k) \(reduction)")
                }
            }
        }
    }

    func testMatchesNaivePerTripletRecomputation() throws {
        for kind in Naive.Kind.allCases {
            for (k, seed) in [(1, UInt64(11)), (3, 12)] {
                let batch = randomBatch(batchSize: 16, negatives: k, dimension: 12, seed: seed)
                let x = Naive.rows(batch.embeddings)
                for reduction in [TripletReduction.mean, .meanOverActive] {
                    let margin = Self.margin(for: kind)
                    let loss = TripletMarginLoss(
                        distance: Naive.distance(for: kind), margin: margin, reduction: reduction)
                    let result = try loss.evaluate(batch)
                    let naive = Naive.triplet(
                        kind, rows: x, triplets: Naive.storedTriplets(batch.layout), margin: Double(margin),
                        overActive: reduction == .meanOverActive)
                    let label = "\(kind) K=\(k) \(reduction)"
                    XCTAssertEqual(Double(result.value), naive.loss, accuracy: 1e-4 * max(1, naive.loss), label)
                    assertClose(result.gradient, naive.gradient, accuracy: 1e-4, label)
                    let active = naive.hinges.filter { $0 > 0 }.count
                    XCTAssertEqual(result.diagnostics.activeFraction, Float(active) / Float(naive.hinges.count), label)
                    XCTAssertGreaterThan(active, 0, label)
                    XCTAssertLessThan(active, naive.hinges.count, label)
                }
            }
        }
    }

    func testMinedTripletsMatchNaiveSelectionAndRecomputation() throws {
        let batch = randomBatch(batchSize: 12, negatives: 2, dimension: 10, seed: 21)
        let x = Naive.rows(batch.embeddings)
        let b = 12, r = batch.layout.rowCount
        func group(_ row: Int) -> Int { row < b ? row : row < 2 * b ? row - b : (row - 2 * b) / 2 }
        for kind in Naive.Kind.allCases {
            let margin = Double(Self.margin(for: kind))
            for (name, miner) in [
                ("hardest", HardestNegativeMiner() as any NegativeMiner), ("semihard", SemiHardNegativeMiner()),
            ] {
                // Naive selection per the documented rules.
                var triplets: [(Int, Int, Int)] = []
                for i in 0..<b {
                    let dap = Naive.distance(kind, x[i], x[b + i])
                    let allowed = (0..<r).filter { group($0) != i }
                    let d = allowed.map { Naive.distance(kind, x[i], x[$0]) }
                    var pick: Int
                    if name == "hardest" {
                        pick = allowed[d.indices.min { d[$0] < d[$1] }!]
                    } else if let j = d.indices.filter({ d[$0] > dap }).min(by: { d[$0] < d[$1] }) {
                        pick = allowed[j]
                    } else {
                        pick = allowed[d.indices.max { d[$0] < d[$1] }!]
                    }
                    triplets.append((i, b + i, pick))
                }
                let naive = Naive.triplet(kind, rows: x, triplets: triplets, margin: margin, overActive: false)
                let result = try TripletMarginLoss(
                    distance: Naive.distance(for: kind), margin: Float(margin), miner: miner
                )
                .evaluate(batch)
                XCTAssertEqual(Double(result.value), naive.loss, accuracy: 1e-4 * max(1, naive.loss), "\(kind) \(name)")
                assertClose(result.gradient, naive.gradient, accuracy: 1e-4, "\(kind) \(name)")
            }
        }
    }

    func testMinedGradientsMatchFiniteDifferences() throws {
        // Data where every anchor's candidate distances (and d(a,p)) are well apart, so the
        // miner's choice cannot flip under the ±ε probes.
        let b = 3, k = 1
        for kind in Naive.Kind.allCases {
            let margin = Self.margin(for: kind)
            let gap = 0.01 * (kind == .squaredEuclidean ? 8.0 : kind == .euclidean ? 2 : 1)
            let batch = Self.wellSeparatedBatch(kind, batchSize: b, negatives: k, margin: margin) { batch in
                let x = Naive.rows(batch.embeddings)
                for i in 0..<b {
                    let values = ([b + i] + (0..<x.count).filter { $0 % b != i }).map {
                        Naive.distance(kind, x[i], x[$0])
                    }
                    .sorted()
                    if zip(values, values.dropFirst()).contains(where: { $1 - $0 < gap }) { return false }
                    // Mined hinges away from the kink too: every candidate's hinge.
                    if values.contains(where: { abs(values[0] - $0 + Double(margin)) < gap }) { return false }
                    let dap = Naive.distance(kind, x[i], x[b + i])
                    if values.contains(where: { abs(dap - $0 + Double(margin)) < gap }) { return false }
                }
                return true
            }
            for miner in [HardestNegativeMiner() as any NegativeMiner, SemiHardNegativeMiner()] {
                try assertGradientMatchesFiniteDifferences(
                    TripletMarginLoss(distance: Naive.distance(for: kind), margin: margin, miner: miner),
                    batch, "\(kind) \(type(of: miner))")
            }
            // The random miner's choices depend only on the seed and the allowed mask: a fresh
            // miner per evaluation makes the same picks.
            try assertGradientMatchesFiniteDifferences(
                TripletMarginLoss(
                    distance: Naive.distance(for: kind), margin: margin, miner: RandomNegativeMiner(seed: 9)),
                batch, "\(kind) random")
        }
    }

    func testTrailingFeatureDimensionsAreFlattenedAndGradientKeepsTheShape() throws {
        let flat = randomBatch(batchSize: 4, negatives: 2, dimension: 6, seed: 8)
        var conv = flat
        conv.embeddings = try flat.embeddings.reshaped([flat.layout.rowCount, 3, 2, 1])
        let losses: [any ContrastiveLoss] = [
            TripletMarginLoss(), TripletMarginLoss(distance: EuclideanDistance(), miner: SemiHardNegativeMiner()),
            InfoNCELoss(),
        ]
        for loss in losses {
            let a = try loss.evaluate(flat), b = try loss.evaluate(conv)
            XCTAssertEqual(a.value, b.value)
            XCTAssertEqual(b.gradient.shape, [flat.layout.rowCount, 3, 2, 1])
            XCTAssertEqual(a.gradient.scalars, b.gradient.scalars)
        }
    }

    func testZeroNormRowsGiveFiniteCosineLossAndGradient() throws {
        var x = Tensor.zeros([3, 4])
        x[flat: 4] = 1  // positive (1,0,0,0); anchor and negative are zero vectors
        let result = try TripletMarginLoss(margin: 0.5).evaluate(
            TripletEmbeddings(x, layout: TripletLayout(batchSize: 1, negativesPerAnchor: 1)))
        XCTAssertEqual(result.value, 0.5, accuracy: 1e-6)  // d = 1 to everything
        XCTAssertTrue(result.gradient.isFinite)
        // Identical rows under Euclidean distance: gradient 0, not NaN.
        let same = Tensor(shape: [3, 4], repeating: 1)
        let e = try TripletMarginLoss(distance: EuclideanDistance(), margin: 1).evaluate(
            TripletEmbeddings(same, layout: TripletLayout(batchSize: 1, negativesPerAnchor: 1)))
        XCTAssertTrue(e.gradient.isFinite)
        XCTAssertEqual(e.value, 1)
    }

    func testAWrongGradientIsCaughtByTheCheck() throws {
        // The check itself must be able to fail: a loss whose gradient is 10% too large.
        struct Broken: ContrastiveLoss {
            let inner = TripletMarginLoss(margin: 0.5)
            func evaluate(_ batch: TripletEmbeddings) throws -> LossResult {
                var r = try inner.evaluate(batch)
                r.gradient.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= 1.1 } }
                return r
            }
        }
        let batch = Self.wellSeparatedBatch(.cosine, batchSize: 3, negatives: 1, margin: 0.5)
        let analytic = try Broken().evaluate(batch).gradient
        let numeric = try GradientCheck.numericGradient(at: batch.embeddings, epsilon: 1e-3) { x in
            Double(try Broken().evaluate(TripletEmbeddings(x, layout: batch.layout)).value)
        }
        XCTAssertGreaterThan(relativeError(analytic, numeric), 0.05)
        let good = try GradientCheck.check(loss: TripletMarginLoss(margin: 0.5), batch: batch)
        XCTAssertTrue(good.passes(tolerance: 2e-3), "\(good)")
    }
}
