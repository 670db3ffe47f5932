import Foundation
import LayerwiseTestSupport
import Losses
import TensorCore
import XCTest

final class SymmetricInfoNCELossTests: XCTestCase {
    /// NT-Xent written out over the 2B view rows: row i's positive is its other view, its
    /// candidates every other row (no stored negatives).
    func naiveNTXent(_ x: Tensor, batchSize b: Int, temperature: Double) -> Double {
        let rows = 2 * b, d = x.count / rows
        let unit: [[Double]] = (0..<rows).map { r in
            let v = (0..<d).map { Double(x[flat: r * d + $0]) }
            let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return v.map { $0 / n }
        }
        func sim(_ i: Int, _ j: Int) -> Double { zip(unit[i], unit[j]).reduce(0) { $0 + $1.0 * $1.1 } / temperature }
        var total = 0.0
        for i in 0..<rows {
            let p = i < b ? i + b : i - b
            let z = (0..<rows).filter { $0 != i }.reduce(0) { $0 + exp(sim(i, $1)) }
            total += log(z) - sim(i, p)
        }
        return total / Double(rows)
    }

    func testMatchesNTXentOverAllViewRows() throws {
        for (b, temperature) in [(2, Float(0.5)), (4, 0.1)] {
            let batch = randomBatch(batchSize: b, negatives: 0, dimension: 6, seed: UInt64(b))
            let r = try SymmetricInfoNCELoss(temperature: temperature).evaluate(batch)
            let naive = naiveNTXent(batch.embeddings, batchSize: b, temperature: Double(temperature))
            XCTAssertEqual(Double(r.value), naive, accuracy: 1e-4 * max(1, naive), "B=\(b) τ=\(temperature)")
            // Not the one-directional loss.
            let directed = try InfoNCELoss(temperature: temperature).evaluate(batch).value
            XCTAssertGreaterThan(abs(directed - r.value), 1e-4)
        }
    }

    func testGradientsMatchFiniteDifferences() throws {
        let sources = [0, 1, 2, 0, 1, 2, 1, 7, 8, 9, 10, 11]
        for (negatives, sources, temperature) in [(0, nil, Float(0.2)), (2, sources, 0.5)] as [(Int, [Int]?, Float)] {
            let batch = randomBatch(batchSize: 3, negatives: negatives, dimension: 5, seed: 9, sources: sources)
            try assertGradientMatchesFiniteDifferences(
                SymmetricInfoNCELoss(temperature: temperature), batch, "K=\(negatives) τ=\(temperature)")
        }
    }

    func testBadTemperatureAndLoneAnchorAreTypedErrors() {
        for t in [Float(0), -1, .nan] {
            XCTAssertThrowsError(try SymmetricInfoNCELoss(temperature: t).validate()) { error in
                guard case LossError.invalidHyperparameter("temperature", _, _) = error else {
                    return XCTFail("\(error)")
                }
            }
        }
        let lonely = randomBatch(batchSize: 1, negatives: 0, dimension: 4, seed: 1)
        XCTAssertThrowsError(try SymmetricInfoNCELoss().evaluate(lonely)) {
            XCTAssertEqual($0 as? LossError, .noNegativeCandidates(anchor: 0))
        }
        var short = randomBatch(batchSize: 2, negatives: 0, dimension: 4, seed: 1)
        short.sourceImages = [0, 1]
        XCTAssertThrowsError(try SymmetricInfoNCELoss().evaluate(short)) {
            XCTAssertEqual($0 as? LossError, .sourceImageCountMismatch(expected: 4, got: 2))
        }
    }
}
