import Augmentations
import Datasets
import TensorCore
import XCTest

@testable import PatchSamplers

final class AugmentedPatchSamplerTests: XCTestCase {
    let data = CodedImages(count: 5, imageShape: ImageShape(channels: 1, height: 12, width: 12))

    func testIdentityAugmentationGivesAnchorAsPositive() throws {
        var sampler = try AugmentedPatchSampler(
            dataset: data, augmentation: IdentityAugmentation(), negativesPerAnchor: 2)
        var g = SeededGenerator(seed: 3)
        let t = try sampler.sample(batchSize: 20, patchSize: 6, using: &g)
        XCTAssertEqual(t.patches.shape, [80, 1, 6, 6])
        XCTAssertEqual(sampler.effectiveMargin(patchSize: 6), 1)
        let per = 36
        for i in 0..<20 {
            guard let a = data.locate(t.patches, row: i), let p = data.locate(t.patches, row: 20 + i) else { return }
            XCTAssertEqual(a.image, p.image)
            XCTAssertEqual(a.y, p.y)
            XCTAssertEqual(a.x, p.x)
            // The anchor is the centre of a context region, so it is at least m = 1 from the border.
            XCTAssertTrue(a.y >= 1 && a.x >= 1 && a.y + 6 <= 11 && a.x + 6 <= 11)
            for j in 0..<2 {
                guard let n = data.locate(t.patches, row: t.layout.negativeRow(i, j)) else { return }
                XCTAssertNotEqual(n.image, a.image)
            }
            _ = per
        }
    }

    func testAugmentationAppliesToPositiveAndShrinkingOutputIsResized() throws {
        var g = SeededGenerator(seed: 5)
        var shifted = try AugmentedPatchSampler(dataset: data, augmentation: AddConstant(value: 0.25))
        let t = try shifted.sample(batchSize: 3, patchSize: 4, using: &g)
        for i in 0..<3 {
            for k in 0..<16 { XCTAssertEqual(t.patches[flat: (3 + i) * 16 + k], t.patches[flat: i * 16 + k] + 0.25) }
        }
        // Margin 0 and an augmentation that returns a smaller image: the positive is resized to p.
        var shrinking = try AugmentedPatchSampler(dataset: data, augmentation: DropLastRowColumn(), contextMargin: 0)
        let s = try shrinking.sample(batchSize: 2, patchSize: 4, using: &g)
        XCTAssertEqual(s.patches.shape, [6, 1, 4, 4])
        XCTAssertTrue(s.patches.isFinite)
        // Bilinear resize of the 3×3 top-left block of the anchor: corners stay corners' neighbours.
        XCTAssertEqual(s.patches[flat: 2 * 16], s.patches[flat: 0])
    }

    func testDeterminismAndErrors() throws {
        var a = try AugmentedPatchSampler(dataset: data, augmentation: IdentityAugmentation())
        var b = try AugmentedPatchSampler(dataset: data, augmentation: IdentityAugmentation())
        var g1 = SeededGenerator(seed: 1), g2 = SeededGenerator(seed: 1)
        XCTAssertTrue(
            try a.sample(batchSize: 8, patchSize: 5, using: &g1).patches
                .isBitIdentical(to: try b.sample(batchSize: 8, patchSize: 5, using: &g2).patches))
        expectSamplerError(.invalidNegativesPerAnchor(0)) {
            try AugmentedPatchSampler(dataset: data, augmentation: IdentityAugmentation(), negativesPerAnchor: 0)
        }
        expectSamplerError {
            try AugmentedPatchSampler(dataset: data, augmentation: IdentityAugmentation(), contextMargin: -1)
        }
        expectSamplerError(.tooFewImages(count: 1, required: 2)) {
            try AugmentedPatchSampler(
                dataset: CodedImages(count: 1, imageShape: data.imageShape), augmentation: IdentityAugmentation())
        }
        expectSamplerError { try a.sample(batchSize: 1, patchSize: 13, using: &g1) }
        expectSamplerError(.invalidBatchSize(-1)) { try a.sample(batchSize: -1, patchSize: 3, using: &g1) }
    }
}

/// Clips of a pattern moving right by one pixel per frame:
/// frame f of clip k at (y, x) = k·1000 + y·20 + (x − f) mod W.
struct MovingPattern: SequenceDataset {
    var count: Int
    var framesPerClip: Int
    var frameShape: ImageShape { ImageShape(channels: 1, height: 10, width: 12) }
    func copyPixels(ofClip clip: Int, frame: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        for y in 0..<10 {
            for x in 0..<12 { buffer[y * 12 + x] = Float(clip * 1000 + y * 20 + ((x - frame) % 12 + 12) % 12) }
        }
    }
}

final class FramePairSamplerTests: XCTestCase {
    func testPositiveIsSameLocationInLastFrameNegativesFromOtherClips() throws {
        let clips = MovingPattern(count: 4, framesPerClip: 3)
        var sampler = try FramePairSampler(clips: clips, negativesPerAnchor: 2)
        var g = SeededGenerator(seed: 8)
        let p = 4
        let t = try sampler.sample(batchSize: 30, patchSize: p, using: &g)
        XCTAssertEqual(t.patches.shape, [120, 1, p, p])
        for i in 0..<30 {
            let a = t.patches[flat: i * 16], pos = t.patches[flat: (30 + i) * 16]
            let clip = Int(a) / 1000
            XCTAssertEqual(Int(pos) / 1000, clip)
            XCTAssertEqual(t.sourceImages[i], clip)
            XCTAssertEqual(t.sourceImages[30 + i], clip)
            // Same row; the content moved right by 2 frames → column code shifted by −2 (mod 12).
            let ay = (Int(a) % 1000) / 20, ax = Int(a) % 20
            XCTAssertEqual((Int(pos) % 1000) / 20, ay)
            XCTAssertEqual(Int(pos) % 20, ((ax - 2) % 12 + 12) % 12)
            for j in 0..<2 {
                let row = t.layout.negativeRow(i, j)
                let n = Int(t.patches[flat: row * 16]) / 1000
                XCTAssertNotEqual(n, clip)
                XCTAssertEqual(t.sourceImages[row], n)
            }
        }
        var again = try FramePairSampler(clips: clips, negativesPerAnchor: 2)
        var g2 = SeededGenerator(seed: 8)
        XCTAssertTrue(try again.sample(batchSize: 30, patchSize: p, using: &g2).patches.isBitIdentical(to: t.patches))
    }

    func testFramePairErrors() throws {
        expectSamplerError(.tooFewFrames(framesPerClip: 1)) {
            try FramePairSampler(clips: MovingPattern(count: 3, framesPerClip: 1))
        }
        expectSamplerError(.tooFewImages(count: 1, required: 2)) {
            try FramePairSampler(clips: MovingPattern(count: 1, framesPerClip: 2))
        }
        expectSamplerError(.invalidNegativesPerAnchor(0)) {
            try FramePairSampler(clips: MovingPattern(count: 2, framesPerClip: 2), negativesPerAnchor: 0)
        }
        var s = try FramePairSampler(clips: MovingPattern(count: 2, framesPerClip: 2))
        var g = SeededGenerator(seed: 0)
        expectSamplerError { try s.sample(batchSize: 2, patchSize: 11, using: &g) }
        XCTAssertNoThrow(try s.sample(batchSize: 2, patchSize: 10, using: &g))
        // Works on the in-memory sequence dataset too.
        let mem = try InMemorySequenceDataset(
            pixels: [UInt8](repeating: 7, count: 2 * 2 * 9), clipCount: 2, framesPerClip: 2,
            frameShape: ImageShape(channels: 1, height: 3, width: 3))
        var m = try FramePairSampler(clips: mem)
        XCTAssertEqual(try m.sample(batchSize: 1, patchSize: 2, using: &g).patches[flat: 0], 7.0 / 255)
    }
}
