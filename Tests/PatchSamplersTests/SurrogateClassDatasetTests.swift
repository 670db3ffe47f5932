import Augmentations
import Datasets
import TensorCore
import XCTest

@testable import PatchSamplers

/// Images with one distinct colour each (per-channel level) plus a faint texture, so a
/// patch's per-channel mean identifies its source image even after distortions that keep
/// the mean (rotation with edge fill, flips, crops, slight noise).
struct ColourImages: ImageDataset {
    var count: Int
    var imageShape: ImageShape { ImageShape(channels: 3, height: 16, width: 16) }
    var classCount: Int? { nil }
    func label(at index: Int) -> Int? { nil }
    /// The colour of image `i`, channel `c`: levels spread over [0.2, 0.8], a different
    /// permutation of the images per channel.
    func level(_ i: Int, _ c: Int) -> Float {
        let j = (i * (2 * c + 1) + c) % count
        return 0.2 + 0.6 * Float(j) / Float(max(1, count - 1))
    }
    func copyPixels(of index: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        for c in 0..<3 {
            for y in 0..<16 {
                for x in 0..<16 {
                    buffer[(c * 16 + y) * 16 + x] =
                        level(index, c) + 0.02 * sin(Float(x) * 1.3 + Float(y) * 0.7 + Float(index))
                }
            }
        }
    }
}

/// Half the images are flat (no gradient), half carry a strong checkerboard.
struct HalfFlatImages: ImageDataset {
    var count: Int
    var imageShape: ImageShape { ImageShape(channels: 1, height: 12, width: 12) }
    var classCount: Int? { nil }
    func label(at index: Int) -> Int? { nil }
    func isTextured(_ i: Int) -> Bool { i % 2 == 1 }
    func copyPixels(of index: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        for y in 0..<12 {
            for x in 0..<12 {
                buffer[y * 12 + x] = isTextured(index) ? Float((x + y) % 2) : 0.5
            }
        }
    }
}

/// Changes the channel count (drops all but the first channel).
struct FirstChannelOnly: Augmentation {
    func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        var out = Image(channels: 1, height: image.height, width: image.width)
        for y in 0..<image.height { for x in 0..<image.width { out[0, y, x] = image[0, y, x] } }
        return out
    }
}

final class SurrogateClassDatasetTests: XCTestCase {
    let coded = CodedImages(count: 8, imageShape: ImageShape(channels: 2, height: 12, width: 12))

    func distortion() throws -> any Augmentation {
        Compose([
            try RandomRotation(maxDegrees: 25, fill: .edge), try HorizontalFlip(),
            try GaussianNoise(standardDeviation: 0.01),
        ])
    }

    func testYieldsThePromisedClassesAndCopies() throws {
        var g = SeededGenerator(seed: 1)
        var d = try SurrogateClassDataset(
            dataset: coded, classCount: 5, seedPatchSize: 8, augmentation: IdentityAugmentation(), using: &g)
        XCTAssertEqual(d.classCount, 5)
        XCTAssertEqual(d.seeds.count, 5)
        XCTAssertEqual(d.channels, 2)
        // 8 images ≥ 5 classes: every seed from a different image.
        XCTAssertEqual(Set(d.seeds.map(\.image)).count, 5)
        for s in d.seeds { XCTAssertTrue(s.y >= 0 && s.x >= 0 && s.y + 8 <= 12 && s.x + 8 <= 12) }

        let batch = try d.sample(classes: [4, 0, 2], copiesPerClass: 3, patchSize: 6, using: &g)
        XCTAssertEqual(batch.patches.shape, [9, 2, 6, 6])
        XCTAssertEqual(batch.labels, [4, 4, 4, 0, 0, 0, 2, 2, 2])

        let drawn = try d.sample(count: 4, copiesPerClass: 2, patchSize: 5, using: &g)
        XCTAssertEqual(drawn.patches.shape, [8, 2, 5, 5])
        let classes = stride(from: 0, to: 8, by: 2).map { drawn.labels[$0] }
        XCTAssertEqual(Set(classes).count, 4, "classes of one draw are distinct")
        for j in 0..<4 { XCTAssertEqual(drawn.labels[2 * j + 1], classes[j]) }
        XCTAssertTrue(classes.allSatisfy { (0..<5).contains($0) })
        // All N classes at once.
        XCTAssertEqual(Set(try d.sample(count: 5, copiesPerClass: 1, patchSize: 5, using: &g).labels), Set(0..<5))
    }

    func testMoreClassesThanImagesUsesEveryImageBeforeReusingOne() throws {
        var g = SeededGenerator(seed: 2)
        let d = try SurrogateClassDataset(
            dataset: CodedImages(count: 4, imageShape: coded.imageShape), classCount: 10, seedPatchSize: 6,
            selection: .random, augmentation: IdentityAugmentation(), using: &g)
        let images = d.seeds.map(\.image)
        XCTAssertEqual(Set(images[0..<4]), Set(0..<4))
        XCTAssertEqual(Set(images[4..<8]), Set(0..<4))
        XCTAssertEqual(Set(images[8..<10]).count, 2)
    }

    func testIdentityCopiesAreTheSeedsCentreAndSeedRegionsAreIntactWindows() throws {
        var g = SeededGenerator(seed: 3)
        let d = try SurrogateClassDataset(
            dataset: coded, classCount: 6, seedPatchSize: 8, augmentation: IdentityAugmentation(), using: &g)
        for cls in 0..<6 {
            let region = try d.seedRegion(of: cls)
            XCTAssertEqual(region.shape, [2, 8, 8])
            let seed = d.seeds[cls]
            guard let where_ = coded.locate(region.unsafeReshaped([1, 2, 8, 8]), row: 0) else { return }
            XCTAssertEqual(where_.image, seed.image)
            XCTAssertEqual(where_.y, seed.y)
            XCTAssertEqual(where_.x, seed.x)
        }
        let batch = try d.sample(classes: [0, 1, 2, 3, 4, 5], copiesPerClass: 2, patchSize: 4, using: &g)
        for row in 0..<12 {
            guard let w = coded.locate(batch.patches, row: row) else { return }
            let seed = d.seeds[batch.labels[row]]
            // Centre crop: offset (8 − 4) / 2 = 2 inside the seed region.
            XCTAssertEqual(w.image, seed.image)
            XCTAssertEqual(w.y, seed.y + 2)
            XCTAssertEqual(w.x, seed.x + 2)
        }
        // Patch = region: the copy is the region itself.
        let whole = try d.sample(classes: [3], copiesPerClass: 1, patchSize: 8, using: &g)
        XCTAssertTrue(whole.patches.unsafeReshaped([2, 8, 8]).isBitIdentical(to: try d.seedRegion(of: 3)))
    }

    func testResizeFitShowsTheWholeRegion() throws {
        var g = SeededGenerator(seed: 4)
        let d = try SurrogateClassDataset(
            dataset: coded, classCount: 3, seedPatchSize: 8, augmentation: IdentityAugmentation(), fit: .resize,
            using: &g)
        let batch = try d.sample(classes: [1], copiesPerClass: 1, patchSize: 4, using: &g)
        let s = d.seeds[1]
        // Pixel codes are linear in y and x, so the bilinear 2× downsample samples the code
        // at the half-pixel centre of each 2×2 block.
        for c in 0..<2 {
            for oy in 0..<4 {
                for ox in 0..<4 {
                    let expected =
                        Float(s.image * 4096 + c * 1024) + 32 * (Float(s.y) + 2 * Float(oy) + 0.5) + Float(s.x) + 2
                        * Float(ox) + 0.5
                    XCTAssertEqual(batch.patches[flat: (c * 4 + oy) * 4 + ox], expected, accuracy: 0.01)
                }
            }
        }
    }

    func testCopiesOfOneSeedDifferButMatchTheirSeedsImage() throws {
        let data = ColourImages(count: 6)
        var g = SeededGenerator(seed: 5)
        var d = try SurrogateClassDataset(
            dataset: data, classCount: 6, seedPatchSize: 10, augmentation: try distortion(), using: &g)
        let k = 4, p = 6
        let batch = try d.sample(count: 6, copiesPerClass: k, patchSize: p, using: &g)
        let per = 3 * p * p
        func mean(_ row: Int, _ c: Int) -> Float {
            var s: Float = 0
            for i in 0..<(p * p) { s += batch.patches[flat: row * per + c * p * p + i] }
            return s / Float(p * p)
        }
        for row in 0..<(6 * k) {
            // The image whose colour is nearest to the copy's per-channel mean is its seed's image.
            let distances = (0..<6).map { i in (0..<3).map { c in abs(mean(row, c) - data.level(i, c)) }.reduce(0, +) }
            let nearest = distances.indices.min { distances[$0] < distances[$1] }!
            XCTAssertEqual(nearest, d.seeds[batch.labels[row]].image, "row \(row)")
        }
        for j in 0..<6 {
            for a in 0..<k {
                for b in (a + 1)..<k {
                    let ra = (j * k + a) * per, rb = (j * k + b) * per
                    let identical = (0..<per).allSatisfy {
                        batch.patches[flat: ra + $0] == batch.patches[flat: rb + $0]
                    }
                    XCTAssertFalse(identical, "copies \(a) and \(b) of class \(batch.labels[j * k]) are identical")
                }
            }
        }
    }

    func testSameSeedSameOutputOtherSeedOtherOutput() throws {
        func make(_ seed: UInt64) throws -> (SurrogateClassDataset, Tensor, [Int]) {
            var g = SeededGenerator(seed: seed)
            var d = try SurrogateClassDataset(
                dataset: ColourImages(count: 7), classCount: 5, seedPatchSize: 9, augmentation: try distortion(),
                using: &g)
            let b = try d.sample(count: 3, copiesPerClass: 2, patchSize: 5, using: &g)
            return (d, b.patches, b.labels)
        }
        let (a, pa, la) = try make(9), (b, pb, lb) = try make(9), (c, pc, _) = try make(10)
        XCTAssertEqual(a.seeds, b.seeds)
        XCTAssertEqual(la, lb)
        XCTAssertTrue(pa.isBitIdentical(to: pb))
        XCTAssertNotEqual(a.seeds, c.seeds)
        XCTAssertFalse(pa.isBitIdentical(to: pc))
    }

    func testHighGradientSelectionPrefersTexturedRegions() throws {
        let data = HalfFlatImages(count: 40)
        var g1 = SeededGenerator(seed: 6), g2 = SeededGenerator(seed: 6)
        let high = try SurrogateClassDataset(
            dataset: data, classCount: 10, seedPatchSize: 6, selection: .highGradient(candidatesPerSeed: 8),
            augmentation: IdentityAugmentation(), using: &g1)
        let random = try SurrogateClassDataset(
            dataset: data, classCount: 10, seedPatchSize: 6, selection: .random,
            augmentation: IdentityAugmentation(), using: &g2)
        let texturedHigh = high.seeds.filter { data.isTextured($0.image) }.count
        let texturedRandom = random.seeds.filter { data.isTextured($0.image) }.count
        XCTAssertGreaterThanOrEqual(texturedHigh, 9, "high-gradient seeds: \(high.seeds)")
        XCTAssertLessThan(texturedRandom, texturedHigh)
        // Checkerboard: every one of the 2·r·(r−1) differences is ±1, so energy = 2(r−1)/r.
        for (s, e) in zip(high.seeds, high.seedGradientEnergy) {
            XCTAssertEqual(e, data.isTextured(s.image) ? Float(2 * 5) / 6 : 0, accuracy: 1e-5)
        }
    }

    func testGradientEnergyOfARamp() {
        // Horizontal ramp of slope 0.1 in 2 channels: (r − 1) differences per row of 0.01 each.
        let r = 5, w = 9, h = 7
        var img = [Float](repeating: 0, count: 2 * h * w)
        for c in 0..<2 { for y in 0..<h { for x in 0..<w { img[(c * h + y) * w + x] = 0.1 * Float(x) + Float(c) } } }
        let e = img.withUnsafeBufferPointer {
            SurrogateClassDataset.gradientEnergy($0.baseAddress!, channels: 2, height: h, width: w, y: 1, x: 2, size: r)
        }
        XCTAssertEqual(e, 2 * Float(r * (r - 1)) * 0.01 / Float(r * r), accuracy: 1e-6)
    }

    func testNormalizationAppliesToTheOutput() throws {
        var g = SeededGenerator(seed: 7)
        let norm = try ChannelNormalization(mean: [0.5, 0.25], std: [2, 4])
        let plain = try SurrogateClassDataset(
            dataset: coded, classCount: 3, seedPatchSize: 6, augmentation: IdentityAugmentation(), using: &g)
        var g2 = SeededGenerator(seed: 7)
        let normalised = try SurrogateClassDataset(
            dataset: coded, classCount: 3, seedPatchSize: 6, augmentation: IdentityAugmentation(),
            normalization: norm, using: &g2)
        let a = try plain.sample(classes: [2], copiesPerClass: 1, patchSize: 4, using: &g).patches
        let b = try normalised.sample(classes: [2], copiesPerClass: 1, patchSize: 4, using: &g2).patches
        for c in 0..<2 {
            for i in 0..<16 {
                XCTAssertEqual(b[flat: c * 16 + i], (a[flat: c * 16 + i] - norm.mean[c]) / norm.std[c], accuracy: 1e-2)
            }
        }
    }

    func testErrorsAreTypedAndNamed() throws {
        var g = SeededGenerator(seed: 8)
        let id = IdentityAugmentation()
        expectSamplerError(
            .invalidOption(name: "classCount", value: "1", reason: "surrogate classification needs at least 2 classes")
        ) {
            try SurrogateClassDataset(dataset: coded, classCount: 1, seedPatchSize: 6, augmentation: id, using: &g)
        }
        expectSamplerError {
            try SurrogateClassDataset(dataset: coded, classCount: 4, seedPatchSize: 0, augmentation: id, using: &g)
        }
        expectSamplerError(
            .patchLargerThanImage(
                patchSize: 13, needed: 13, imageHeight: 12, imageWidth: 12, reason: "the seed region (seedPatchSize)"
            )
        ) {
            try SurrogateClassDataset(dataset: coded, classCount: 4, seedPatchSize: 13, augmentation: id, using: &g)
        }
        expectSamplerError {
            try SurrogateClassDataset(
                dataset: coded, classCount: 4, seedPatchSize: 6, selection: .highGradient(candidatesPerSeed: 0),
                augmentation: id, using: &g)
        }
        expectSamplerError(.tooFewImages(count: 1, required: 2)) {
            try SurrogateClassDataset(
                dataset: CodedImages(count: 1, imageShape: coded.imageShape), classCount: 4, seedPatchSize: 6,
                augmentation: id, using: &g)
        }
        expectSamplerError(.normalizationChannels(expected: 2, got: 1)) {
            try SurrogateClassDataset(
                dataset: coded, classCount: 4, seedPatchSize: 6, augmentation: id,
                normalization: try ChannelNormalization(mean: [0], std: [1]), using: &g)
        }

        var d = try SurrogateClassDataset(dataset: coded, classCount: 4, seedPatchSize: 6, augmentation: id, using: &g)
        expectSamplerError(.invalidOption(name: "copiesPerClass", value: "0", reason: "must be ≥ 1")) {
            try d.sample(count: 2, copiesPerClass: 0, patchSize: 4, using: &g)
        }
        expectSamplerError(.invalidPatchSize(0)) { try d.sample(count: 2, copiesPerClass: 1, patchSize: 0, using: &g) }
        expectSamplerError { try d.sample(count: 2, copiesPerClass: 1, patchSize: 7, using: &g) }
        expectSamplerError { try d.sample(count: 0, copiesPerClass: 1, patchSize: 4, using: &g) }
        expectSamplerError { try d.sample(count: 5, copiesPerClass: 1, patchSize: 4, using: &g) }
        expectSamplerError { try d.sample(classes: [], copiesPerClass: 1, patchSize: 4, using: &g) }
        expectSamplerError(.invalidOption(name: "classes[1]", value: "4", reason: "must lie in 0..<4")) {
            try d.sample(classes: [0, 4], copiesPerClass: 1, patchSize: 4, using: &g)
        }
        expectSamplerError { try d.seedRegion(of: -1) }
        let wrongChannels = try SurrogateClassDataset(
            dataset: coded, classCount: 4, seedPatchSize: 6, augmentation: FirstChannelOnly(), using: &g)
        expectSamplerError(.augmentationShape(expected: [2, 6, 6], got: [1, 6, 6])) {
            try wrongChannels.sample(classes: [0], copiesPerClass: 1, patchSize: 4, using: &g)
        }
        // The message names the option and the limit.
        do {
            _ = try d.sample(count: 2, copiesPerClass: 1, patchSize: 7, using: &g)
        } catch let e as SamplerError {
            XCTAssertTrue(
                e.description.contains("patchSize") && e.description.contains("seedPatchSize = 6"), e.description)
        }
    }
}
