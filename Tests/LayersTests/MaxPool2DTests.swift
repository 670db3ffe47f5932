import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class MaxPool2DTests: XCTestCase {
    /// The one-pass backward for non-overlapping windows (including the SIMD path for
    /// 2×2 planes and a plane count that is not a multiple of four, and sizes with
    /// uncovered rows/columns, and rows of nine 2×2 windows: two SIMD groups of four and a
    /// scalar tail) gives exactly the zero-fill-then-scatter result, bit for bit, including
    /// −0 gradients (0 + (−0) = +0).
    func testNonOverlappingBackwardMatchesScatterBitForBit() throws {
        for (shape, k) in [([3, 3, 2, 2], 2), ([2, 3, 5, 7], 2), ([1, 2, 7, 8], 3), ([2, 3, 9, 19], 2)] {
            let pool = try MaxPool2D(kernelSize: k)
            let x = distinctValues(shape, seed: UInt64(shape.reduce(0, +)))
            let y = pool.forward(x, mode: .training)
            var rng = SeededGenerator(seed: 3)
            var gv = (0..<y.count).map { _ in rng.nextUniform(-1, 1) }
            gv[0] = -0.0
            let g = try Tensor(shape: y.shape, values: gv)
            let dx = pool.backward(g).scalars
            // Reference: zero-fill, then add each gradient at its window's maximum.
            var expected = [Float](repeating: 0, count: x.count)
            let (h, w, oh, ow) = (shape[2], shape[3], y.shape[2], y.shape[3])
            let xs = x.scalars
            for plane in 0..<(shape[0] * shape[1]) {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var best = -Float.infinity, at = 0
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let i = plane * h * w + (oy * k + ky) * w + ox * k + kx
                                if xs[i] > best { best = xs[i]; at = i }
                            }
                        }
                        expected[at] += gv[plane * oh * ow + oy * ow + ox]
                    }
                }
            }
            XCTAssertEqual(dx.map(\.bitPattern), expected.map(\.bitPattern), "\(shape) k\(k)")
        }
    }

    /// Training forward and backward split the planes over two workers when each gets at
    /// least 64 K elements; outputs and gradients must equal the one-thread run bit for bit.
    func testTrainingPoolIsBitIdenticalAcrossThreadCounts() throws {
        var rng = SeededGenerator(seed: 41)
        let x = Tensor.uniform([4, 9, 64, 64], low: -1, high: 1, using: &rng)
        for kernel in [2, 3] {
            let side = 64 / kernel
            let g = Tensor.uniform([4, 9, side, side], low: -1, high: 1, using: &rng)
            func run(threads: Int) throws -> [[UInt32]] {
                let saved = BLAS.threadCount
                defer { BLAS.threadCount = saved }
                BLAS.threadCount = threads
                let pool = try MaxPool2D(kernelSize: kernel)
                let y = pool.forward(x, mode: .training)
                return [y.scalars.map(\.bitPattern), pool.backward(g).scalars.map(\.bitPattern)]
            }
            let one = try run(threads: 1), two = try run(threads: 2)
            XCTAssertEqual(one, two, "k\(kernel)")
            XCTAssertFalse(one[1].allSatisfy { $0 == 0 })
        }
    }

    func testForwardAndBackwardRouteToTheArgmax() throws {
        let pool = try MaxPool2D(kernelSize: 2)
        // One 4×4 plane; window maxima at (0,1)=5, (1,2)=8, (3,0)=9, (2,3)=7.
        let x = try Tensor(
            shape: [1, 1, 4, 4],
            values: [
                1, 5, 2, 0,
                3, 4, 8, 6,
                0, 2, 1, 7,
                9, 1, 3, 2,
            ])
        let y = pool.forward(x, mode: .training)
        XCTAssertEqual(y.shape, [1, 1, 2, 2])
        XCTAssertEqual(y.scalars, [5, 8, 9, 7])
        let dx = pool.backward(try Tensor(shape: [1, 1, 2, 2], values: [10, 20, 30, 40]))
        XCTAssertEqual(
            dx.scalars,
            [
                0, 10, 0, 0,
                0, 0, 20, 0,
                0, 0, 0, 40,
                30, 0, 0, 0,
            ])
    }

    func testOverlappingWindowsAccumulate() throws {
        let pool = try MaxPool2D(kernelSize: 2, stride: 1)
        let x = try Tensor(shape: [1, 1, 3, 3], values: [0, 0, 0, 0, 9, 0, 0, 0, 0])
        XCTAssertEqual(pool.forward(x, mode: .training).scalars, [9, 9, 9, 9])
        XCTAssertEqual(pool.backward(Tensor(shape: [1, 1, 2, 2], repeating: 1)).scalars, [0, 0, 0, 0, 4, 0, 0, 0, 0])
    }

    func testInferenceMatchesTraining() throws {
        let pool = try MaxPool2D(kernelSize: 3, stride: 2)
        let x = distinctValues([2, 3, 7, 6], seed: 1)
        XCTAssertTrue(pool.forward(x, mode: .inference).isBitIdentical(to: pool.forward(x, mode: .training)))
        // The SIMD 2×2 inference path: widths with and without a remainder, odd sizes (floor).
        let pool2 = try MaxPool2D(kernelSize: 2)
        for shape in [[2, 3, 8, 8], [1, 2, 11, 11], [2, 1, 5, 19], [1, 1, 2, 2], [3, 2, 9, 10]] {
            let x = distinctValues(shape, seed: UInt64(shape.reduce(0, +)))
            XCTAssertTrue(
                pool2.forward(x, mode: .inference).isBitIdentical(to: pool2.forward(x, mode: .training)), "\(shape)")
        }
    }

    func testGradients() throws {
        for (k, s) in [(2, 2), (2, 1), (3, 2)] {
            let pool = try MaxPool2D(kernelSize: k, stride: s)
            assertGradientsMatch(pool, input: distinctValues([2, 2, 5, 5], seed: UInt64(k * 10 + s)))
        }
    }

    func testShapesAndErrors() throws {
        let pool = try MaxPool2D(kernelSize: 2)
        XCTAssertEqual(pool.stride, 2)
        XCTAssertEqual(try pool.outputShape(for: [768, 64, 2, 2]), [768, 64, 1, 1])
        XCTAssertEqual(try pool.outputShape(for: [1, 1, 5, 5]), [1, 1, 2, 2])
        XCTAssertThrowsError(try pool.outputShape(for: [1, 1, 1, 4]))
        XCTAssertThrowsError(try pool.outputShape(for: [1, 4]))
        XCTAssertThrowsError(try MaxPool2D(kernelSize: 0))
        XCTAssertThrowsError(try MaxPool2D(kernelSize: 2, stride: -1)) {
            XCTAssertEqual(
                $0 as? LayerError,
                .invalidConfiguration(layer: "MaxPool2D", option: "stride", value: "-1", reason: "must be > 0"))
        }
    }
}
