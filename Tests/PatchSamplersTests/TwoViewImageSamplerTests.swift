import Augmentations
import Datasets
import PatchSamplers
import TensorCore
import XCTest

final class TwoViewImageSamplerTests: XCTestCase {
    let images = CodedImages(count: 10, imageShape: ImageShape(channels: 2, height: 6, width: 6))

    func testTwoViewsOfDistinctImagesWithTheirSources() throws {
        // A horizontal flip with probability ½: a view is the image or its mirror.
        var sampler = try TwoViewImageSampler(dataset: images, views: HorizontalFlip(probability: 0.5))
        var g = SeededGenerator(seed: 5)
        let batch = try sampler.sample(batchSize: 4, patchSize: 3, using: &g)
        XCTAssertEqual(batch.patches.shape, [8, 2, 6, 6])
        XCTAssertEqual(batch.layout, TripletLayout(batchSize: 4, negativesPerAnchor: 0))
        XCTAssertEqual(Set(batch.sourceImages[..<4]).count, 4)
        XCTAssertEqual(Array(batch.sourceImages[..<4]), Array(batch.sourceImages[4...]))
        var mirrored = 0
        for row in 0..<8 {
            let image = batch.sourceImages[row]
            let first = Int(batch.patches[flat: row * 72])
            XCTAssertEqual(first / 4096, image)
            if first % 32 == 5 { mirrored += 1 } else { XCTAssertEqual(first % 32, 0) }
        }
        XCTAssertGreaterThan(mirrored, 0)
        XCTAssertLessThan(mirrored, 8)
        // The same seed gives the same batch.
        var again = SeededGenerator(seed: 5)
        XCTAssertEqual(
            try sampler.sample(batchSize: 4, patchSize: 3, using: &again).patches.scalars, batch.patches.scalars)
    }

    func testDenseBatchesAreStillDistinct() throws {
        var sampler = try TwoViewImageSampler(dataset: images, views: Compose([]))
        var g = SeededGenerator(seed: 1)
        let batch = try sampler.sample(batchSize: 10, patchSize: 1, using: &g)
        XCTAssertEqual(Set(batch.sourceImages), Set(0..<10))
    }

    func testBadOptionsAreTypedErrors() throws {
        var sampler = try TwoViewImageSampler(dataset: images, views: Compose([]))
        var g = SeededGenerator(seed: 1)
        XCTAssertThrowsError(try sampler.sample(batchSize: 1, patchSize: 1, using: &g)) { error in
            guard case SamplerError.invalidOption("batchSize", "1", _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try sampler.sample(batchSize: 11, patchSize: 1, using: &g)) {
            XCTAssertEqual($0 as? SamplerError, .tooFewImages(count: 10, required: 11))
        }
        let one = CodedImages(count: 1, imageShape: images.imageShape)
        XCTAssertThrowsError(try TwoViewImageSampler(dataset: one, views: Compose([]))) {
            XCTAssertEqual($0 as? SamplerError, .tooFewImages(count: 1, required: 2))
        }
        let wrong = try ChannelNormalization(mean: [0, 0, 0], std: [1, 1, 1])
        XCTAssertThrowsError(try TwoViewImageSampler(dataset: images, views: Compose([]), normalization: wrong))
        // Views of two sizes cannot share one batch.
        var ragged = try TwoViewImageSampler(dataset: images, views: RandomSize())
        XCTAssertThrowsError(try ragged.sample(batchSize: 5, patchSize: 1, using: &g)) { error in
            guard case SamplerError.invalidOption("views", _, _) = error else { return XCTFail("\(error)") }
        }
    }
}

/// Crops to 4x4 or 5x5 at random: an augmentation whose views do not share a shape.
private struct RandomSize: Augmentation {
    func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        let side = 4 + generator.nextInt(below: 2)
        return (try? Resize(height: side, width: side))?.apply(to: image, using: &generator) ?? image
    }
}
