import Foundation
import TensorCore
import XCTest

@testable import Datasets

final class NormalizationTests: XCTestCase {
    func testFitAndApplyGiveZeroMeanUnitStd() throws {
        var g = SeededGenerator(seed: 1)
        let shape = ImageShape(channels: 3, height: 4, width: 4)
        let pixels = (0..<(20 * shape.elementCount)).map { i -> UInt8 in
            let c = (i / 16) % 3  // channel-dependent distributions
            return UInt8(Swift.min(255, c * 60 + g.nextInt(below: 40 + 50 * c)))
        }
        let d = try InMemoryImageDataset(pixels: pixels, shape: shape)
        let norm = ChannelNormalization.fit(d)
        XCTAssertEqual(norm.channels, 3)
        var batch = try makeBatch(from: d, indices: Array(0..<20), using: &g).images
        try norm.apply(to: &batch)
        for c in 0..<3 {
            var values = [Double]()
            for n in 0..<20 { for p in 0..<16 { values.append(Double(batch[flat: (n * 3 + c) * 16 + p])) } }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            XCTAssertEqual(mean, 0, accuracy: 1e-5)
            XCTAssertEqual(variance, 1, accuracy: 1e-4)
        }
        // Codable round trip.
        let data = try JSONEncoder().encode(norm)
        XCTAssertEqual(try JSONDecoder().decode(ChannelNormalization.self, from: data), norm)
    }

    func testConstantChannelGetsUnitStdAndErrors() throws {
        let d = try InMemoryImageDataset(
            pixels: [UInt8](repeating: 51, count: 8), shape: ImageShape(channels: 1, height: 2, width: 2))
        let norm = ChannelNormalization.fit(d, maxImages: 1)
        XCTAssertEqual(norm.std, [1])
        XCTAssertEqual(norm.mean[0], 0.2, accuracy: 1e-6)
        var wrong = Tensor.zeros([1, 3, 2, 2])
        expectDatasetError { try norm.apply(to: &wrong) }
        expectDatasetError { try ChannelNormalization(mean: [0, 0], std: [1]) }
        expectDatasetError { try ChannelNormalization(mean: [0], std: [0]) }
    }

    func testPatchContrastNormalization() {
        var g = SeededGenerator(seed: 3)
        var patches = Tensor.uniform([10, 27], low: 0, high: 1, using: &g)
        PatchContrastNormalization.apply(to: &patches, epsilon: 0)
        for r in 0..<10 {
            let row = (0..<27).map { Double(patches[flat: r * 27 + $0]) }
            let mean = row.reduce(0, +) / 27
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 27
            XCTAssertEqual(mean, 0, accuracy: 1e-5)
            XCTAssertEqual(variance, 1, accuracy: 1e-3)
        }
        // A flat patch stays finite thanks to epsilon.
        var flat = Tensor(shape: [1, 4], repeating: 0.5)
        PatchContrastNormalization.apply(to: &flat)
        XCTAssertEqual(flat.scalars, [0, 0, 0, 0])
    }
}
