import Datasets
import Foundation
import TensorCore
import XCTest

/// Degenerate numbers in the input: each is a typed error or a documented fallback, never NaN.
final class NumericalInputTests: XCTestCase {
    /// The little-endian bytes of `values` as `<f4`.
    func float32Bytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    func testFloatNPYWithNaNOrInfinityIsRefused() throws {
        let dir = try makeTemporaryDirectory(self)
        for (name, value) in [("nan", Float.nan), ("inf", Float.infinity), ("ninf", -Float.infinity)] {
            let values: [Float] = [0.5, value, 0.25, 1]
            let bytes = NPY.encode(descr: "<f4", shape: [1, 2, 2], payload: float32Bytes(values))
            let path = dir + "/\(name).npy"
            try writeBytes(bytes, to: path)
            // Images are 8-bit: a float array (finite or not) is a typed header error, so no
            // NaN can enter through a pixel file.
            for error in [
                expectDatasetError { try NPY.loadImages(path: path) },
                expectDatasetError { try NPY.decodeImages(bytes, source: path) },
            ] {
                guard case let .badHeader(file, reason)? = error else { return XCTFail("\(String(describing: error))") }
                XCTAssertEqual(file, path)
                XCTAssertTrue(reason.contains("uint8") && reason.contains("<f4"), reason)
            }
            guard case .badHeader? = expectDatasetError({ try NPY.loadLabels(path: path) }) else {
                return XCTFail("float labels must be refused")
            }
        }
    }

    func testAnImageOfOneValue() throws {
        // Channel statistics: zero variance gets std 1, so the image maps to zeros.
        let flat = try InMemoryImageDataset(
            pixels: [UInt8](repeating: 200, count: 3 * 8 * 8), shape: ImageShape(channels: 3, height: 8, width: 8))
        let norm = ChannelNormalization.fit(flat)
        XCTAssertEqual(norm.std, [1, 1, 1])
        var batch = Tensor(shape: [1, 3, 8, 8], repeating: Float(200) / 255)
        try norm.apply(to: &batch)
        XCTAssertTrue(batch.scalars.allSatisfy { abs($0) < 1e-6 })

        // Contrast normalisation of a constant patch: zeros with the default ε and with ε = 0
        // (where variance + ε = 0 would otherwise give 0 · ∞ = NaN), and with a negative ε.
        for epsilon: Float in [PatchContrastNormalization.defaultEpsilon, 0, -1] {
            var patches = Tensor(shape: [3, 27], repeating: 0.7)
            PatchContrastNormalization.apply(to: &patches, epsilon: epsilon)
            XCTAssertEqual(patches.scalars, [Float](repeating: 0, count: 81), "epsilon \(epsilon)")
        }
    }

    func testWhiteningFitOnFewerWindowsThanDimensions() throws {
        // 5 windows of dimension 108 (6x6x3): the covariance has rank ≤ 4. The fallback is
        // ε: every eigenvalue gets +ε, so directions the windows do not span get the finite
        // gain 1/√ε, and the spanned ones are whitened.
        var g = SeededGenerator(seed: 4)
        let windows = Tensor.uniform([5, 108], low: 0, high: 1, using: &g)
        let zca = try ZCAWhitening.fit(patches: windows, epsilon: 0.1)
        XCTAssertTrue(zca.matrix.isFinite && zca.mean.isFinite)
        var whitened = windows
        try zca.apply(to: &whitened)
        XCTAssertTrue(whitened.isFinite)
        var unseen = Tensor.uniform([3, 108], low: -1, high: 2, using: &g)
        try zca.apply(to: &unseen)
        XCTAssertTrue(unseen.isFinite)
        // Largest gain = 1/√ε exactly where there is no variance: the matrix's norm is bounded.
        let maxEntry: Float = zca.matrix.scalars.map { abs($0) }.max() ?? 0
        let bound: Float = 1 / Float(0.1).squareRoot() + 1e-3
        XCTAssertLessThanOrEqual(maxEntry, bound)

        // Two identical windows: zero covariance, W = I/√ε, still finite.
        let same = try Tensor(shape: [2, 4], values: [1, 2, 3, 4, 1, 2, 3, 4])
        let flat = try ZCAWhitening.fit(patches: same, epsilon: 0.25)
        for i in 0..<4 {
            for j in 0..<4 {
                XCTAssertEqual(flat.matrix[flat: i * 4 + j], i == j ? 2 : 0, accuracy: 1e-5)
            }
        }
        // One window, ε ≤ 0, NaN data: typed errors.
        XCTAssertNotNil(expectDatasetError { try ZCAWhitening.fit(patches: Tensor(shape: [1, 4], repeating: 1)) })
        XCTAssertNotNil(expectDatasetError { try ZCAWhitening.fit(patches: windows, epsilon: 0) })
        var poisoned = windows
        poisoned[flat: 7] = .nan
        XCTAssertNotNil(expectDatasetError { try ZCAWhitening.fit(patches: poisoned) })
    }
}
