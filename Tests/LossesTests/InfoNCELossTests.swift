import Foundation
import LayerwiseTestSupport
import Losses
import TensorCore
import XCTest

final class InfoNCELossTests: XCTestCase {
    func testKnownAnswer() throws {
        // a = p = e1, n = e2, τ = 0.1: candidates {p: cos 1, n: cos 0} → −log(e¹⁰ / (e¹⁰ + 1)).
        let x = try Tensor(shape: [3, 2], values: [1, 0, 1, 0, 0, 1])
        let r = try InfoNCELoss(temperature: 0.1).evaluate(
            TripletEmbeddings(x, layout: TripletLayout(batchSize: 1, negativesPerAnchor: 1)))
        XCTAssertEqual(Double(r.value), log1p(exp(-10.0)), accuracy: 1e-6)
        XCTAssertEqual(r.diagnostics.meanPositiveDistance, 0, accuracy: 1e-6)
        XCTAssertEqual(r.diagnostics.meanNegativeDistance, 1, accuracy: 1e-6)
        XCTAssertEqual(r.diagnostics.activeFraction, 0)
        XCTAssertFalse(r.diagnostics.isCollapsed)
        // Swap positive and negative: the positive is no longer top-1 → active.
        let swapped = try Tensor(shape: [3, 2], values: [1, 0, 0, 1, 1, 0])
        let s = try InfoNCELoss(temperature: 0.1).evaluate(
            TripletEmbeddings(swapped, layout: TripletLayout(batchSize: 1, negativesPerAnchor: 1)))
        XCTAssertEqual(Double(s.value), 10 + log1p(exp(-10.0)), accuracy: 1e-4)
        XCTAssertEqual(s.diagnostics.activeFraction, 1)
    }

    func testCollapsedEmbeddings() throws {
        let layout = TripletLayout(batchSize: 3, negativesPerAnchor: 2)
        let x = Tensor(shape: [layout.rowCount, 5], repeating: 0.3)
        let r = try InfoNCELoss(temperature: 0.2).evaluate(TripletEmbeddings(x, layout: layout))
        // Every anchor sees R − 1 equal logits.
        XCTAssertEqual(Double(r.value), log(Double(layout.rowCount - 1)), accuracy: 1e-5)
        XCTAssertTrue(r.diagnostics.isCollapsed)
        XCTAssertEqual(r.diagnostics.activeFraction, 1)
        let healthy = try InfoNCELoss().evaluate(randomBatch(batchSize: 4, negatives: 1, dimension: 8, seed: 4))
        XCTAssertFalse(healthy.diagnostics.isCollapsed)
    }

    /// Sources for B = 3, K = 2 (12 rows): positives share their anchor's image, the first
    /// stored negative of anchor 0 comes from anchor 1's image, the rest are distinct.
    let sources = [0, 1, 2, 0, 1, 2, 1, 10, 11, 12, 13, 14]

    func testMatchesNaiveRecomputation() throws {
        for (sources, temperature) in [(nil, Float(0.1)), (sources, 0.5), (sources, 0.07)] as [([Int]?, Float)] {
            let batch = randomBatch(batchSize: 3, negatives: 2, dimension: 7, seed: 31, sources: sources)
            let r = try InfoNCELoss(temperature: temperature).evaluate(batch)
            let naive = Naive.infoNCE(
                rows: Naive.rows(batch.embeddings), batchSize: 3, sources: sources, temperature: Double(temperature))
            XCTAssertEqual(Double(r.value), naive.loss, accuracy: 1e-4 * max(1, naive.loss), "τ=\(temperature)")
            assertClose(r.gradient, naive.gradient, accuracy: 1e-4 / Double(temperature) * 0.1, "τ=\(temperature)")
        }
        // A larger batch, no source images.
        let big = randomBatch(batchSize: 16, negatives: 3, dimension: 12, seed: 32)
        let r = try InfoNCELoss(temperature: 0.2).evaluate(big)
        let naive = Naive.infoNCE(rows: Naive.rows(big.embeddings), batchSize: 16, sources: nil, temperature: 0.2)
        XCTAssertEqual(Double(r.value), naive.loss, accuracy: 1e-4)
        assertClose(r.gradient, naive.gradient, accuracy: 1e-5, "B=16")
    }

    func testSourceImagesChangeTheCandidateSet() throws {
        // Row 6 (anchor 0's first stored negative) is from anchor 1's image: make it a copy of
        // anchor 1. Without source images it is anchor 1's most similar negative; with them it
        // is excluded.
        var plain = randomBatch(batchSize: 3, negatives: 2, dimension: 7, seed: 31)
        for k in 0..<7 { plain.embeddings[flat: 6 * 7 + k] = plain.embeddings[flat: 1 * 7 + k] }
        var withSources = plain
        withSources.sourceImages = sources
        let a = try InfoNCELoss().evaluate(plain).value, b = try InfoNCELoss().evaluate(withSources).value
        XCTAssertGreaterThan(a - b, 0.1)
    }

    func testGradientsMatchFiniteDifferences() throws {
        for (sources, temperature) in [(nil, Float(0.1)), (sources, 0.5), (nil, 1)] as [([Int]?, Float)] {
            let batch = randomBatch(batchSize: 3, negatives: 2, dimension: 5, seed: 41, sources: sources)
            try assertGradientMatchesFiniteDifferences(
                InfoNCELoss(temperature: temperature), batch, "InfoNCE τ=\(temperature) sources=\(sources != nil)")
        }
    }

    func testSmallTemperatureStaysFiniteAndZeroRowsAreGuarded() throws {
        let batch = randomBatch(batchSize: 4, negatives: 1, dimension: 6, seed: 5)
        let r = try InfoNCELoss(temperature: 1e-4).evaluate(batch)
        XCTAssertTrue(r.value.isFinite && r.gradient.isFinite)
        var zeros = batch
        zeros.embeddings = Tensor.zeros(batch.embeddings.shape)
        let z = try InfoNCELoss().evaluate(zeros)
        XCTAssertTrue(z.value.isFinite && z.gradient.isFinite)
    }

    func testNoNegativeCandidatesIsATypedError() {
        let batch = randomBatch(
            batchSize: 2, negatives: 1, dimension: 4, seed: 1, sources: Array(repeating: 0, count: 6))
        XCTAssertThrowsError(try InfoNCELoss().evaluate(batch)) {
            XCTAssertEqual($0 as? LossError, .noNegativeCandidates(anchor: 0))
        }
        // B = 1, K = 0: the positive is the only candidate.
        let lonely = randomBatch(batchSize: 1, negatives: 0, dimension: 4, seed: 1)
        XCTAssertThrowsError(try InfoNCELoss().evaluate(lonely)) {
            XCTAssertEqual($0 as? LossError, .noNegativeCandidates(anchor: 0))
        }
    }
}
