import Augmentations
import Datasets
import TensorCore
import XCTest

@testable import PatchSamplers

final class NeighborPatchSamplerTests: XCTestCase {
    let data = CodedImages(count: 6, imageShape: ImageShape(channels: 2, height: 16, width: 20))

    func testPositivesAreNeighboursAndNegativesComeFromOtherImages() throws {
        for maxOffset in [1, 3] {
            var sampler = try NeighborPatchSampler(dataset: data, maxOffset: maxOffset, negativesPerAnchor: 3)
            var g = SeededGenerator(seed: UInt64(maxOffset))
            let b = 40, p = 5
            let t = try sampler.sample(batchSize: b, patchSize: p, using: &g)
            XCTAssertEqual(t.patches.shape, [b * 5, 2, p, p])
            XCTAssertEqual(t.layout, TripletLayout(batchSize: b, negativesPerAnchor: 3))
            XCTAssertEqual(t.sourceImages.count, b * 5)
            var seenOffsets = Set<[Int]>()
            for i in 0..<b {
                guard let a = data.locate(t.patches, row: t.layout.anchorRow(i)),
                    let pos = data.locate(t.patches, row: t.layout.positiveRow(i))
                else { return }
                XCTAssertEqual(a.image, pos.image)
                XCTAssertEqual(t.sourceImages[t.layout.anchorRow(i)], a.image)
                XCTAssertEqual(t.sourceImages[t.layout.positiveRow(i)], a.image)
                let dy = pos.y - a.y, dx = pos.x - a.x
                XCTAssertLessThanOrEqual(abs(dy), maxOffset)
                XCTAssertLessThanOrEqual(abs(dx), maxOffset)
                XCTAssertFalse(dy == 0 && dx == 0, "positive must not coincide with the anchor")
                seenOffsets.insert([dy, dx])
                for j in 0..<3 {
                    guard let n = data.locate(t.patches, row: t.layout.negativeRow(i, j)) else { return }
                    XCTAssertNotEqual(n.image, a.image)
                    XCTAssertEqual(t.sourceImages[t.layout.negativeRow(i, j)], n.image)
                }
            }
            if maxOffset == 1 { XCTAssertGreaterThan(seenOffsets.count, 4, "offsets should vary") }
        }
    }

    func testSameSeedSameBatchDifferentSeedDifferentBatch() throws {
        var s1 = try NeighborPatchSampler(dataset: data, maxOffset: 2)
        var s2 = try NeighborPatchSampler(dataset: data, maxOffset: 2)
        var g1 = SeededGenerator(seed: 9), g2 = SeededGenerator(seed: 9), g3 = SeededGenerator(seed: 10)
        let a = try s1.sample(batchSize: 16, patchSize: 4, using: &g1)
        let b = try s2.sample(batchSize: 16, patchSize: 4, using: &g2)
        let c = try s1.sample(batchSize: 16, patchSize: 4, using: &g3)
        XCTAssertTrue(a.patches.isBitIdentical(to: b.patches))
        XCTAssertEqual(a.sourceImages, b.sourceImages)
        XCTAssertFalse(a.patches.isBitIdentical(to: c.patches))
    }

    func testSameImageNegativesDoNotOverlapTheAnchor() throws {
        var sampler = try NeighborPatchSampler(
            dataset: data, maxOffset: 1, negativesPerAnchor: 2, sameImageNegatives: true)
        var g = SeededGenerator(seed: 4)
        let p = 5
        let t = try sampler.sample(batchSize: 50, patchSize: p, using: &g)
        for i in 0..<50 {
            guard let a = data.locate(t.patches, row: i) else { return }
            for j in 0..<2 {
                guard let n = data.locate(t.patches, row: t.layout.negativeRow(i, j)) else { return }
                XCTAssertEqual(n.image, a.image)
                XCTAssertTrue(abs(n.y - a.y) >= p || abs(n.x - a.x) >= p, "negative overlaps anchor")
            }
        }
        // Works with a single image too.
        let one = CodedImages(count: 1, imageShape: ImageShape(channels: 1, height: 12, width: 12))
        var single = try NeighborPatchSampler(dataset: one, sameImageNegatives: true)
        XCTAssertEqual(
            try single.sample(batchSize: 3, patchSize: 4, using: &g).sourceImages, [0, 0, 0, 0, 0, 0, 0, 0, 0])
        // Too large a patch for a guaranteed non-overlapping location (12 < 3·5 − 1).
        expectSamplerError { try single.sample(batchSize: 1, patchSize: 5, using: &g) }
    }

    func testFarLocationIsUniformOverValidPositions() {
        var g = SeededGenerator(seed: 11)
        var seen = Set<[Int]>()
        for _ in 0..<4000 {
            let (y, x) = NeighborPatchSampler.farLocation(
                anchorY: 3, anchorX: 4, height: 12, width: 14, size: 4, using: &g)
            XCTAssertTrue(y >= 0 && y <= 8 && x >= 0 && x <= 10)
            XCTAssertTrue(abs(y - 3) >= 4 || abs(x - 4) >= 4)
            seen.insert([y, x])
        }
        // All valid positions: 9·11 minus the 7 (y ∈ 0...6) × 7 (x ∈ 1...7) overlapping ones.
        XCTAssertEqual(seen.count, 9 * 11 - 7 * 7)
    }

    func testPositiveAugmentationAndNormalization() throws {
        var sampler = try NeighborPatchSampler(dataset: data, positiveAugmentation: AddConstant(value: 0.5))
        var g = SeededGenerator(seed: 1)
        let t = try sampler.sample(batchSize: 4, patchSize: 3, using: &g)
        for i in 0..<4 {
            XCTAssertEqual(t.patches[flat: t.layout.positiveRow(i) * 18].truncatingRemainder(dividingBy: 1), 0.5)
        }
        let norm = try ChannelNormalization(mean: [1, 2], std: [2, 4])
        var normed = try NeighborPatchSampler(dataset: data, normalization: norm)
        var g1 = SeededGenerator(seed: 1), g2 = SeededGenerator(seed: 1)
        var plain = try NeighborPatchSampler(dataset: data)
        let raw = try plain.sample(batchSize: 2, patchSize: 3, using: &g1)
        let n = try normed.sample(batchSize: 2, patchSize: 3, using: &g2)
        XCTAssertEqual(n.patches[flat: 0], (raw.patches[flat: 0] - 1) / 2)
        XCTAssertEqual(n.patches[flat: 9], (raw.patches[flat: 9] - 2) / 4)
    }

    func testErrors() throws {
        var g = SeededGenerator(seed: 0)
        expectSamplerError(.invalidOption(name: "maxOffset", value: "-1", reason: "must be ≥ 0")) {
            try NeighborPatchSampler(dataset: data, maxOffset: -1)
        }
        expectSamplerError(.invalidNegativesPerAnchor(0)) {
            try NeighborPatchSampler(dataset: data, negativesPerAnchor: 0)
        }
        expectSamplerError(.tooFewImages(count: 1, required: 2)) {
            try NeighborPatchSampler(dataset: CodedImages(count: 1, imageShape: data.imageShape))
        }
        expectSamplerError(.normalizationChannels(expected: 2, got: 1)) {
            try NeighborPatchSampler(dataset: data, normalization: try ChannelNormalization(mean: [0], std: [1]))
        }
        var sampler = try NeighborPatchSampler(dataset: data, maxOffset: 2)
        expectSamplerError(.invalidBatchSize(0)) { try sampler.sample(batchSize: 0, patchSize: 3, using: &g) }
        expectSamplerError(.invalidPatchSize(0)) { try sampler.sample(batchSize: 1, patchSize: 0, using: &g) }
        expectSamplerError { try sampler.sample(batchSize: 1, patchSize: 15, using: &g) }  // 15 + 2 > 16
        XCTAssertNoThrow(try sampler.sample(batchSize: 1, patchSize: 14, using: &g))
        var shrinking = try NeighborPatchSampler(dataset: data, positiveAugmentation: DropLastRowColumn())
        expectSamplerError(.augmentationShape(expected: [2, 3, 3], got: [2, 2, 2])) {
            try shrinking.sample(batchSize: 1, patchSize: 3, using: &g)
        }
    }
}
