import Augmentations
import Datasets
import TensorCore
import XCTest

@testable import PatchSamplers

final class SharedFlipAndViewAugmentationTests: XCTestCase {
    let data = CodedImages(count: 6, imageShape: ImageShape(channels: 2, height: 16, width: 20))

    /// Un-mirrors a patch row in place so that `CodedImages.locate` can read it.
    func unflipped(_ patches: Tensor, row: Int) -> Tensor {
        var t = patches
        let c = patches.shape[1], p = patches.shape[2]
        t.withUnsafeMutableBufferPointer {
            PatchCopy.flipHorizontally($0.baseAddress! + row * c * p * p, channels: c, size: p)
        }
        return t
    }

    func isMirrored(_ patches: Tensor, row: Int) -> Bool {
        // Codes grow left to right, so a mirrored row decreases along x.
        let p = patches.shape[2], base = row * patches.shape[1] * p * p
        return patches[flat: base] > patches[flat: base + 1]
    }

    func testAnchorAndPositiveShareOneFlipAndBothFlipsOccur() throws {
        var sampler = try NeighborPatchSampler(dataset: data, maxOffset: 2, flipsImages: true)
        var g = SeededGenerator(seed: 4)
        let t = try sampler.sample(batchSize: 200, patchSize: 5, using: &g)
        var mirrored = 0
        for i in 0..<200 {
            let a = t.layout.anchorRow(i), p = t.layout.positiveRow(i)
            XCTAssertEqual(
                isMirrored(t.patches, row: a), isMirrored(t.patches, row: p), "pair \(i) must share its flip")
            if isMirrored(t.patches, row: a) {
                mirrored += 1
                // A mirrored patch is an intact window of its image once mirrored back.
                let fixed = unflipped(unflipped(t.patches, row: a), row: p)
                let la = data.locate(fixed, row: a), lp = data.locate(fixed, row: p)
                XCTAssertEqual(la?.image, lp?.image)
            }
        }
        XCTAssertGreaterThan(mirrored, 60)
        XCTAssertLessThan(mirrored, 140)
    }

    func testViewAugmentationTouchesEveryPatchIndependently() throws {
        // Adds a random constant per patch: anchor, positive and negative each get their own.
        struct AddRandom: Augmentation {
            func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
                let shift = Float(generator.nextInt(below: 1000) + 1) * 100_000
                var t = image.tensor
                t.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] += shift } }
                return try! Image(t)
            }
        }
        var sampler = try NeighborPatchSampler(dataset: data, maxOffset: 1, viewAugmentation: AddRandom())
        var g = SeededGenerator(seed: 5)
        let t = try sampler.sample(batchSize: 20, patchSize: 5, using: &g)
        let per = 2 * 5 * 5
        var distinctShifts = 0
        for i in 0..<20 {
            let rows = [t.layout.anchorRow(i), t.layout.positiveRow(i), t.layout.negativeRow(i, 0)]
            let firsts = rows.map { t.patches[flat: $0 * per] }
            XCTAssertTrue(firsts.allSatisfy { $0 >= 100_000 }, "every view is augmented")
            if Set(firsts.map { Int($0) / 100_000 }).count == 3 { distinctShifts += 1 }
        }
        XCTAssertGreaterThan(distinctShifts, 15, "views are augmented independently")
    }

    func testRandomApplyProbabilityAndValidation() throws {
        XCTAssertThrowsError(try RandomApply(IdentityAugmentation(), probability: 1.5))
        let always = try RandomApply(AddConstant(value: 1), probability: 1)
        let never = try RandomApply(AddConstant(value: 1), probability: 0)
        var g = SeededGenerator(seed: 1)
        let image = Image(channels: 1, height: 2, width: 2, repeating: 0.25)
        XCTAssertEqual(always.apply(to: image, using: &g).tensor.scalars, [1.25, 1.25, 1.25, 1.25])
        XCTAssertEqual(never.apply(to: image, using: &g).tensor.scalars, [0.25, 0.25, 0.25, 0.25])
    }
}
