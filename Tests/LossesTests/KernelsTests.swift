import Foundation
import TensorCore
import XCTest

@testable import Losses

final class KernelsTests: XCTestCase {
    func testVectorExpMatchesLibm() {
        var rng = SeededGenerator(seed: 6)
        var worst: Float = 0
        for trial in 0..<4000 {
            var lanes = SIMD8<Float>()
            for l in 0..<8 { lanes[l] = trial < 10 ? -Float(trial * 8 + l) * 1.1 : rng.nextUniform(-87, 10) }
            let got = Kernels.exp(lanes)
            for l in 0..<8 {
                let want = Foundation.exp(lanes[l])
                worst = max(worst, abs(got[l] - want) / max(want, .leastNormalMagnitude))
            }
        }
        XCTAssertLessThan(worst, 4e-7)
        let edges = Kernels.exp(SIMD8<Float>(0, -.infinity, -100, -87.3, 1, -1e-8, -0.5, 88))
        XCTAssertEqual(edges[0], 1)
        XCTAssertEqual(edges[1], 0)
        XCTAssertEqual(edges[2], 0)
        XCTAssertEqual(edges[3] / Foundation.exp(-87.3), 1, accuracy: 1e-5)
        XCTAssertEqual(edges[4], Foundation.exp(1), accuracy: 1e-6)
        XCTAssertEqual(edges[7] / Foundation.exp(88), 1, accuracy: 1e-6)
    }

    func testMaskedStatisticsSkipMinusInfinity() {
        var row: [Float] = (0..<21).map { Float($0) * 0.1 - 1 }
        row[3] = -.infinity
        row[20] = -.infinity
        row[9] = -.infinity
        let kept = row.filter { $0 != -.infinity }
        let stats = row.withUnsafeBufferPointer { Kernels.maskedStatistics($0.baseAddress!, $0.count) }
        XCTAssertEqual(stats.max, kept.max()!)
        XCTAssertEqual(stats.min, kept.min()!)
        XCTAssertEqual(stats.sum, kept.reduce(0.0) { $0 + Double($1) }, accuracy: 1e-5)
        var copy = row
        let z = copy.withUnsafeMutableBufferPointer {
            Kernels.exponentiate($0.baseAddress!, $0.count, scale: 2, shift: 1)
        }
        XCTAssertEqual(Double(z), row.reduce(0.0) { $0 + Foundation.exp(2 * Double($1) - 1) }, accuracy: 1e-4)
        XCTAssertEqual(copy[3], 0)
        XCTAssertEqual(copy[20], 0)
    }

    func testFirstNonFinite() {
        var x = [Float](repeating: 1, count: 200)
        XCTAssertNil(x.withUnsafeBufferPointer { Kernels.firstNonFinite($0) })
        for bad in [0, 63, 64, 130, 199] {
            x[bad] = bad % 2 == 0 ? .nan : -.infinity
            XCTAssertEqual(x.withUnsafeBufferPointer { Kernels.firstNonFinite($0) }, bad)
            x[bad] = 1
        }
    }
}
