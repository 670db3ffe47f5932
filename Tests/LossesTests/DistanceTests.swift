import LayerwiseTestSupport
import Losses
import TensorCore
import XCTest

final class DistanceTests: XCTestCase {
    func testRowDistancesGradientsAndMatricesMatchNaive() throws {
        var rng = SeededGenerator(seed: 17)
        let a = Tensor.normal([5, 9], using: &rng), b = Tensor.normal([7, 9], using: &rng)
        let ra = Naive.rows(a), rb = Naive.rows(b)
        for kind in Naive.Kind.allCases {
            let dist = Naive.distance(for: kind)
            var matrix = [Float](repeating: 0, count: 35)
            var ga = Tensor.zeros([5, 9]), gb = Tensor.zeros([7, 9])
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    matrix.withUnsafeMutableBufferPointer { m in
                        dist.distances(
                            from: pa.baseAddress!, count: 5, to: pb.baseAddress!, count: 7, dimension: 9,
                            into: m.baseAddress!)
                    }
                    for i in 0..<5 {
                        for j in 0..<7 {
                            let d = dist.distance(pa.baseAddress! + i * 9, pb.baseAddress! + j * 9, dimension: 9)
                            XCTAssertEqual(
                                Double(d), Naive.distance(kind, ra[i], rb[j]), accuracy: 1e-4 * max(1, Double(d)))
                            XCTAssertEqual(matrix[i * 7 + j], d, accuracy: 1e-4 * max(1, d))
                        }
                    }
                    // Gradient of Σ_ij w_ij d(a_i, b_j) with w_ij = i − j.
                    ga.withUnsafeMutableBufferPointer { gpa in
                        gb.withUnsafeMutableBufferPointer { gpb in
                            for i in 0..<5 {
                                for j in 0..<7 {
                                    dist.accumulateGradient(
                                        pa.baseAddress! + i * 9, pb.baseAddress! + j * 9, dimension: 9,
                                        upstream: Float(i - j),
                                        gradA: gpa.baseAddress! + i * 9, gradB: gpb.baseAddress! + j * 9)
                                }
                            }
                        }
                    }
                }
            }
            var expectA = ra.map { $0.map { _ in 0.0 } }, expectB = rb.map { $0.map { _ in 0.0 } }
            for i in 0..<5 {
                for j in 0..<7 {
                    let (gi, gj) = Naive.distanceGradient(kind, ra[i], rb[j])
                    for k in 0..<9 {
                        expectA[i][k] += Double(i - j) * gi[k]
                        expectB[j][k] += Double(i - j) * gj[k]
                    }
                }
            }
            assertClose(ga, expectA, accuracy: 1e-3, "\(kind) gradA")
            assertClose(gb, expectB, accuracy: 1e-3, "\(kind) gradB")
        }
    }

    func testNames() {
        XCTAssertEqual(CosineDistance().name, "cosine")
        XCTAssertEqual(EuclideanDistance().name, "euclidean")
        XCTAssertEqual(SquaredEuclideanDistance().name, "squared-euclidean")
        XCTAssertEqual(Manhattan().name, "Manhattan")
    }

    /// A user-defined distance needs only the two row functions; the loss uses it unchanged.
    struct Manhattan: Distance {
        func distance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int) -> Float {
            (0..<dimension).reduce(0) { $0 + abs(a[$1] - b[$1]) }
        }
        func accumulateGradient(
            _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int, upstream: Float,
            gradA: UnsafeMutablePointer<Float>, gradB: UnsafeMutablePointer<Float>
        ) {
            for k in 0..<dimension {
                let s: Float = a[k] > b[k] ? upstream : a[k] < b[k] ? -upstream : 0
                gradA[k] += s
                gradB[k] -= s
            }
        }
    }

    func testCustomDistanceWorksWithLossAndMiner() throws {
        let batch = randomBatch(batchSize: 3, negatives: 1, dimension: 5, seed: 2)
        let plain = try TripletMarginLoss(distance: Manhattan(), margin: 1).evaluate(batch)
        let x = Naive.rows(batch.embeddings)
        let l1 = { (a: Int, b: Int) in zip(x[a], x[b]).reduce(0.0) { $0 + abs($1.0 - $1.1) } }
        let expected = (0..<3).map { max(0, l1($0, 3 + $0) - l1($0, 6 + $0) + 1) }.reduce(0, +) / 3
        XCTAssertEqual(Double(plain.value), expected, accuracy: 1e-5)
        // The default (row-by-row) distance matrix feeds the miner.
        let mined = try TripletMarginLoss(distance: Manhattan(), margin: 1, miner: HardestNegativeMiner()).evaluate(
            batch)
        let minedExpected =
            (0..<3).map { i -> Double in
                let n = (0..<9).filter { $0 % 3 != i }.min { l1(i, $0) < l1(i, $1) }!
                return max(0, l1(i, 3 + i) - l1(i, n) + 1)
            }.reduce(0, +) / 3
        XCTAssertEqual(Double(mined.value), minedExpected, accuracy: 1e-5)
    }
}
