import Augmentations
import TensorCore
import XCTest

@testable import Datasets

/// Adds a constant to every pixel and crops one column: a deterministic test augmentation.
struct ShiftAndCrop: Augmentation {
    func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        var out = Image(channels: image.channels, height: image.height, width: image.width - 1)
        for c in 0..<image.channels {
            for y in 0..<image.height { for x in 0..<(image.width - 1) { out[c, y, x] = image[c, y, x] + 1 } }
        }
        return out
    }
}

final class BatchingTests: XCTestCase {
    func testFastPathCopiesPixelsAndLabels() throws {
        let shape = ImageShape(channels: 1, height: 2, width: 2)
        let d = try InMemoryImageDataset(pixels: (0..<12).map { UInt8($0 * 10) }, shape: shape, labels: [2, 0, 1])
        var g = SeededGenerator(seed: 1)
        let (images, labels) = try makeBatch(from: d, indices: [2, 0], using: &g)
        XCTAssertEqual(images.shape, [2, 1, 2, 2])
        XCTAssertEqual(images.scalars, [80, 90, 100, 110, 0, 10, 20, 30].map { Float($0) / 255 })
        XCTAssertEqual(labels, [1, 2])
        let norm = try ChannelNormalization(mean: [0.5], std: [0.5])
        let normed = try makeBatch(from: d, indices: [0], normalization: norm, using: &g).images
        XCTAssertEqual(normed[flat: 0], -1, accuracy: 1e-6)
        let (aug, _) = try makeBatch(from: d, indices: [1, 2], augmentation: ShiftAndCrop(), using: &g)
        XCTAssertEqual(aug.shape, [2, 1, 2, 1])
        XCTAssertEqual(aug[flat: 0], 1 + 40.0 / 255, accuracy: 1e-6)
        expectDatasetError { try makeBatch(from: d, indices: [3], using: &g) }
        expectDatasetError { try makeBatch(from: d, indices: [Int](), using: &g) }
        let unlabelled = try InMemoryImageDataset(pixels: [1, 2, 3, 4], shape: shape)
        XCTAssertEqual(try makeBatch(from: unlabelled, indices: 0..<1, using: &g).labels, [])
    }
}
