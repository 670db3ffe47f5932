import Foundation
import TensorCore
import XCTest
@testable import Datasets

final class ZCAWhiteningTests: XCTestCase {
    func testJacobiReconstructsSymmetricMatrix() throws {
        var g = SeededGenerator(seed: 5)
        let n = 12
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in i..<n { let v = Double(g.nextNormal()); a[i * n + j] = v; a[j * n + i] = v } }
        let (values, vectors) = try SymmetricEigen.decompose(a, n: n)
        assertDecomposes(a, n: n, values: values, vectors: vectors)
        XCTAssertThrowsError(try SymmetricEigen.decompose([1, 2, 3], n: 2))
    }

    /// Above `jacobiLimit` the Householder + QL path runs: same contract, and the same
    /// eigenvalues as Jacobi rotations on the same matrix.
    func testLargeMatricesUseTridiagonalQLWithTheSameResults() throws {
        var g = SeededGenerator(seed: 9)
        let n = SymmetricEigen.jacobiLimit + 22
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in i..<n { let v = Double(g.nextNormal()); a[i * n + j] = v; a[j * n + i] = v } }
        // An exactly zero row and column exercises the degenerate (scale = 0) branch.
        for j in 0..<n { a[5 * n + j] = 0; a[j * n + 5] = 0 }
        let (values, vectors) = try SymmetricEigen.decompose(a, n: n)
        assertDecomposes(a, n: n, values: values, vectors: vectors)
        // Jacobi rotations (forced on the same matrix) agree on the spectrum.
        let jacobi = try jacobiValues(a, n: n)
        for (x, y) in zip(values, jacobi) { XCTAssertEqual(x, y, accuracy: 1e-9) }
        XCTAssertTrue(values.contains { abs($0) < 1e-9 }, "the zero row gives a zero eigenvalue")
    }

    /// Values descend, V is orthonormal and V diag(λ) Vᵀ rebuilds `a`.
    func assertDecomposes(_ a: [Double], n: Int, values: [Double], vectors: [Double], line: UInt = #line) {
        XCTAssertEqual(values, values.sorted(by: >), line: line)
        for i in 0..<n {
            for j in 0..<n {
                var r = 0.0, orth = 0.0
                for k in 0..<n {
                    r += vectors[i * n + k] * values[k] * vectors[j * n + k]
                    orth += vectors[k * n + i] * vectors[k * n + j]
                }
                XCTAssertEqual(r, a[i * n + j], accuracy: 1e-9, "reconstruction [\(i), \(j)]", line: line)
                XCTAssertEqual(orth, i == j ? 1 : 0, accuracy: 1e-9, "orthonormality [\(i), \(j)]", line: line)
            }
        }
    }

    /// Eigenvalues by Jacobi rotations regardless of size: the sum of squares of the
    /// off-diagonal is driven to zero; the diagonal is the spectrum.
    func jacobiValues(_ matrix: [Double], n: Int) throws -> [Double] {
        var a = matrix
        for _ in 0..<30 {
            for p in 0..<(n - 1) {
                for q in (p + 1)..<n where abs(a[p * n + q]) > 1e-300 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                }
            }
        }
        return (0..<n).map { a[$0 * n + $0] }.sorted(by: >)
    }

    /// The paper-sized case: 6×6×3 = 108-dimensional patches from the embedded real sample.
    func testFitsRealSizedPatchesAndWhitensThem() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/ReproducePaper/Resources/cifar10_sample").path
        let data = try CIFAR.loadCIFAR10(directory: dir, split: .test)
        var g = SeededGenerator(seed: 1)
        var patches = try PatchExtraction.extractRandomPatches(from: data, count: 2000, size: 6, using: &g)
        PatchContrastNormalization.apply(to: &patches)
        let zca = try ZCAWhitening.fit(patches: patches, epsilon: 0.01)
        XCTAssertTrue(zca.matrix.isFinite)
        var whitened = patches
        try zca.apply(to: &whitened)
        // Covariance of whitened data is U·diag(λ/(λ+ε))·Uᵀ: its eigenvalues lie in [0, 1),
        // and directions with λ ≫ ε come out at ≈ 1. Check the symmetric matrix's trace bounds.
        let d = 108
        let cov = covariance(whitened, n: 2000, d: d)
        let (values, _) = try SymmetricEigen.decompose(cov, n: d)
        XCTAssertLessThan(values[0], 1.001)
        XCTAssertGreaterThan(values[0], 0.9)
        XCTAssertGreaterThan(values.filter { $0 > 0.5 }.count, 20, "the leading directions are whitened to ≈ 1")
    }

    func testWhitenedCorrelatedDataHasIdentityCovariance() throws {
        var g = SeededGenerator(seed: 7)
        let n = 4000, d = 6
        // x = z · A + offset with a fixed mixing matrix A: strongly correlated features.
        let mix = Tensor.normal([d, d], using: &g)
        let z = Tensor.normal([n, d], using: &g)
        var x = try BLAS.matmul(z, mix)
        x.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] += Float(i % d) } }
        let zca = try ZCAWhitening.fit(patches: x, epsilon: 1e-5)
        XCTAssertEqual(zca.mean.shape, [d])
        XCTAssertEqual(zca.matrix.shape, [d, d])
        var before = covariance(x, n: n, d: d)
        XCTAssertGreaterThan(offDiagonalMax(before, d: d), 0.3, "test data must be correlated")
        try zca.apply(to: &x)
        before = covariance(x, n: n, d: d)
        for i in 0..<d {
            for j in 0..<d { XCTAssertEqual(before[i * d + j], i == j ? 1 : 0, accuracy: 2e-3, "cov[\(i)][\(j)]") }
        }
        // Restoring from mean/matrix gives the same transform.
        let restored = try ZCAWhitening(mean: zca.mean, matrix: zca.matrix)
        XCTAssertEqual(restored.dimension, d)
        var wrong = Tensor.zeros([3, d + 1])
        XCTAssertThrowsError(try zca.apply(to: &wrong))
        XCTAssertThrowsError(try ZCAWhitening.fit(patches: Tensor.zeros([1, d])))
        XCTAssertThrowsError(try ZCAWhitening.fit(patches: x, epsilon: 0))
    }

    func testPatchExtractionFromDataset() throws {
        let shape = ImageShape(channels: 2, height: 5, width: 5)
        let d = try InMemoryImageDataset(pixels: (0..<(3 * 50)).map { UInt8($0) }, shape: shape)
        var g = SeededGenerator(seed: 2)
        let patches = try PatchExtraction.extractRandomPatches(from: d, count: 20, size: 3, using: &g)
        XCTAssertEqual(patches.shape, [20, 18])
        // Every patch is a real 3×3 window: within a row the values step by 1/255, rows by 5/255,
        // channel planes by 25/255.
        for r in 0..<20 {
            let first = patches[flat: r * 18]
            XCTAssertEqual(patches[flat: r * 18 + 1] - first, 1.0 / 255, accuracy: 1e-6)
            XCTAssertEqual(patches[flat: r * 18 + 3] - first, 5.0 / 255, accuracy: 1e-6)
            XCTAssertEqual(patches[flat: r * 18 + 9] - first, 25.0 / 255, accuracy: 1e-6)
        }
        expectDatasetError { try PatchExtraction.extractRandomPatches(from: d, count: 1, size: 6, using: &g) }
        expectDatasetError { try PatchExtraction.extractRandomPatches(from: d, count: 0, size: 2, using: &g) }
    }

    /// Population covariance in Double (independent of the SGEMM path used by the fit).
    func covariance(_ x: Tensor, n: Int, d: Int) -> [Double] {
        x.withUnsafeBufferPointer { b in
            var mean = [Double](repeating: 0, count: d)
            for r in 0..<n { for j in 0..<d { mean[j] += Double(b[r * d + j]) / Double(n) } }
            var cov = [Double](repeating: 0, count: d * d)
            var centred = [Double](repeating: 0, count: d)
            cov.withUnsafeMutableBufferPointer { c in
                for r in 0..<n {
                    for j in 0..<d { centred[j] = Double(b[r * d + j]) - mean[j] }
                    centred.withUnsafeBufferPointer { a in
                        for i in 0..<d { let ai = a[i] / Double(n); for j in i..<d { c[i * d + j] += ai * a[j] } }
                    }
                }
                for i in 0..<d { for j in 0..<i { c[i * d + j] = c[j * d + i] } }
            }
            return cov
        }
    }

    func offDiagonalMax(_ cov: [Double], d: Int) -> Double {
        var m = 0.0
        for i in 0..<d { for j in 0..<d where i != j { m = max(m, abs(cov[i * d + j]) / (cov[i * d + i] * cov[j * d + j]).squareRoot()) } }
        return m
    }
}

final class ZCAMomentsTests: XCTestCase {
    /// Data-parallel whitening sums per-rank second moments: two halves' moments about the
    /// global mean give the whitening of all rows (up to summation order).
    func testWhiteningFromMomentsSplitOverRowsMatchesTheWholeFit() throws {
        var g = SeededGenerator(seed: 8)
        let n = 3000, d = 5
        var x = try BLAS.matmul(Tensor.normal([n, d], using: &g), Tensor.normal([d, d], using: &g))
        x.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] += Float(i % d) } }
        let whole = try ZCAWhitening.fit(patches: x, epsilon: 1e-3)
        let mean = whole.mean.scalars
        let split = 1234
        let top = try Tensor(shape: [split, d], values: Array(x.scalars[0..<(split * d)]))
        let bottom = try Tensor(shape: [n - split, d], values: Array(x.scalars[(split * d)...]))
        let a = ZCAWhitening.centredSecondMoment(of: top, mean: mean, count: n)
        let b = ZCAWhitening.centredSecondMoment(of: bottom, mean: mean, count: n)
        let sum = try Tensor(shape: [d, d], values: zip(a.scalars, b.scalars).map { $0 + $1 })
        let fromMoments = try ZCAWhitening.fit(mean: whole.mean, covariance: sum, epsilon: 1e-3)
        let difference = zip(fromMoments.matrix.scalars, whole.matrix.scalars).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(difference, 1e-4)
        XCTAssertGreaterThan(whole.matrix.scalars.map(abs).max()!, 0.1, "a non-trivial whitening")
        XCTAssertThrowsError(
            try ZCAWhitening.fit(mean: whole.mean, covariance: Tensor.zeros([d, d + 1]), epsilon: 1e-3))
        XCTAssertThrowsError(try ZCAWhitening.fit(mean: whole.mean, covariance: sum, epsilon: 0))
    }
}
