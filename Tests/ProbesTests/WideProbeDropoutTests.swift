import Foundation
import Layerwise
import XCTest

@testable import Probes

final class WideProbeDropoutTests: XCTestCase {
    /// The rule the gather implements, one value at a time: each random word gives four 16-bit
    /// draws, lowest first; a value is kept (scaled by 1 / (1 − p)) when its draw is below
    /// (1 − p) · 65,536. A row starts a new word.
    private func reference(
        _ x: [Float], width d: Int, rows: [Int], dropout p: Float, using generator: inout SeededGenerator
    ) -> [Float] {
        let threshold = UInt64((1 - Double(p)) * 65_536), scale = 1 / (1 - p)
        var out: [Float] = []
        for r in rows {
            var word: UInt64 = 0
            for j in 0..<d {
                if j % 4 == 0 { word = generator.next() }
                out.append((word >> (16 * UInt64(j % 4))) & 0xFFFF < threshold ? x[r * d + j] * scale : 0)
            }
        }
        return out
    }

    /// Widths with and without a tail of fewer than four values, rows in any order: the same
    /// values as the one-at-a-time rule, the same bits, and the generator left in the same state.
    func testGatherMatchesTheOneValueAtATimeRule() throws {
        for (d, p) in [(11, Float(0.5)), (16, 0.5), (7, 0.25), (3, 0.9)] {
            var data = SeededGenerator(seed: 5)
            let x = (0..<(6 * d)).map { _ in Float.random(in: -1...1, using: &data) }
            let rows = [4, 0, 5, 5, 2]
            var batch = Tensor.uninitialized(shape: [rows.count, d])
            var gathering = SeededGenerator(seed: 9), expecting = SeededGenerator(seed: 9)
            let source = try Tensor(shape: [6, d], values: x)
            WideProbe.gatherRows(source, rows[...], into: &batch, dropout: p, using: &gathering)
            let expected = reference(x, width: d, rows: rows, dropout: p, using: &expecting)
            XCTAssertEqual(batch.scalars.map(\.bitPattern), expected.map(\.bitPattern), "d \(d), p \(p)")
            XCTAssertEqual(gathering.next(), expecting.next(), "the generator's state, d \(d)")
        }
    }

    /// Over many values the kept fraction is 1 − p and the kept values are scaled; p = 0 copies.
    func testKeptFractionAndScale() throws {
        let d = 4_001
        let x = [Float](repeating: 2, count: 10 * d)
        var batch = Tensor.uninitialized(shape: [10, d])
        var generator = SeededGenerator(seed: 3)
        WideProbe.gatherRows(
            try Tensor(shape: [10, d], values: x), Array(0..<10)[...], into: &batch, dropout: 0.5, using: &generator)
        let kept = batch.scalars.filter { $0 != 0 }
        XCTAssertEqual(Double(kept.count) / Double(x.count), 0.5, accuracy: 0.01)
        XCTAssertTrue(kept.allSatisfy { $0 == 4 })
        WideProbe.gatherRows(
            try Tensor(shape: [10, d], values: x), Array(0..<10)[...], into: &batch, dropout: 0, using: &generator)
        XCTAssertEqual(batch.scalars, x)
    }
}
