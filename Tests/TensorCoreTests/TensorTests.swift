import LayerwiseTestSupport
import TensorCore
import XCTest

final class TensorTests: XCTestCase {
    func testCopyOnWriteLeavesTheOriginalUnchanged() throws {
        let a = try Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        var b = a
        b[flat: 0] = 9
        XCTAssertEqual(a.scalars, [1, 2, 3, 4])
        XCTAssertEqual(b.scalars, [9, 2, 3, 4])
    }

    func testWrongElementCountIsATypedError() {
        XCTAssertThrowsError(try Tensor(shape: [2, 3], values: [1, 2])) { error in
            XCTAssertEqual(error as? TensorError, .elementCountMismatch(shape: [2, 3], count: 2))
        }
        XCTAssertThrowsError(try Tensor.zeros([4]).reshaped([3]))
    }

    func testMatmulWithTransposesMatchesNaiveProduct() throws {
        var rng = SeededGenerator(seed: 1)
        let a = Tensor.uniform([3, 5], low: -1, high: 1, using: &rng)
        let b = Tensor.uniform([4, 5], low: -1, high: 1, using: &rng)
        let c = try BLAS.matmul(a, b, transposeB: true)
        XCTAssertEqual(c.shape, [3, 4])
        for i in 0..<3 {
            for j in 0..<4 {
                var s: Float = 0
                for k in 0..<5 { s += a[flat: i * 5 + k] * b[flat: j * 5 + k] }
                XCTAssertEqual(c[flat: i * 4 + j], s, accuracy: 1e-5)
            }
        }
        XCTAssertThrowsError(try BLAS.matmul(a, b))
    }

    func testIm2colThenCol2imIsTheAdjoint() {
        // <im2col(x), y> == <x, col2im(y)> for random x, y: the defining property of an adjoint.
        var rng = SeededGenerator(seed: 2)
        for (stride, padding) in [(1, 0), (2, 1), (1, 2), (3, 0)] {
            let g = ConvGeometry(
                channels: 2, height: 7, width: 6, kernel: (3, 2), stride: (stride, stride), padding: (padding, padding))
            let x = Tensor.uniform([2, 7, 6], low: -1, high: 1, using: &rng)
            let y = Tensor.uniform([g.patchLength, g.outputPositions], low: -1, high: 1, using: &rng)
            var cols = Tensor.zeros([g.patchLength, g.outputPositions])
            var back = Tensor.zeros([2, 7, 6])
            x.withUnsafeBufferPointer { xb in
                cols.withUnsafeMutableBufferPointer {
                    Im2Col.im2col(xb.baseAddress!, geometry: g, columns: $0.baseAddress!)
                }
            }
            y.withUnsafeBufferPointer { yb in
                back.withUnsafeMutableBufferPointer {
                    Im2Col.col2imAdd(yb.baseAddress!, geometry: g, image: $0.baseAddress!)
                }
            }
            var lhs = 0.0, rhs = 0.0
            for i in 0..<cols.count { lhs += Double(cols[flat: i]) * Double(y[flat: i]) }
            for i in 0..<x.count { rhs += Double(x[flat: i]) * Double(back[flat: i]) }
            XCTAssertEqual(lhs, rhs, accuracy: 1e-4, "stride \(stride) padding \(padding)")
        }
    }

    func testSeededGeneratorIsDeterministicAndRestorable() throws {
        var a = SeededGenerator(seed: 7), b = SeededGenerator(seed: 7)
        XCTAssertEqual((0..<5).map { _ in a.next() }, (0..<5).map { _ in b.next() })
        var c = try SeededGenerator(state: a.state)
        XCTAssertEqual(a.next(), c.next())
        XCTAssertThrowsError(try SeededGenerator(state: [0, 0, 0, 0]))
        var n = SeededGenerator(seed: 3)
        let xs = (0..<20_000).map { _ in Double(n.nextNormal()) }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
    }

    func testSplitMix64MatchesTheReferenceSequence() {
        // First outputs of splitmix64 seeded with 0 (published test vector).
        var g = SplitMix64(seed: 0)
        XCTAssertEqual(g.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(g.next(), 0x6E78_9E6A_A1B9_65F4)
    }
}
