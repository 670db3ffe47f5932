import TensorCore
import XCTest

@testable import Augmentations

/// A random image with values in [0, 1].
func randomImage(channels: Int = 3, height: Int = 8, width: Int = 8, seed: UInt64 = 1) -> Image {
    var g = SeededGenerator(seed: seed)
    return try! Image(Tensor.uniform([channels, height, width], low: 0, high: 1, using: &g))
}

func assertClose(_ a: Image, _ b: Image, accuracy: Float = 1e-6, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.tensor.shape, b.tensor.shape, file: file, line: line)
    guard a.tensor.shape == b.tensor.shape else { return }
    var worst: Float = 0
    for i in 0..<a.tensor.count { worst = max(worst, abs(a.tensor[flat: i] - b.tensor[flat: i])) }
    XCTAssertLessThanOrEqual(worst, accuracy, file: file, line: line)
}

final class GeometricTests: XCTestCase {
    func testQuarterTurnIsTransposeAndFlip() throws {
        let img = randomImage(channels: 2, height: 7, width: 7)
        var g = SeededGenerator(seed: 0)
        let r = try Rotation(degrees: 90).apply(to: img, using: &g)
        // Counter-clockwise: out[y][x] = in[x][N − 1 − y] (numpy.rot90).
        for c in 0..<2 { for y in 0..<7 { for x in 0..<7 { XCTAssertEqual(r[c, y, x], img[c, x, 6 - y]) } } }
        let back = try Rotation(degrees: -90).apply(to: r, using: &g)
        assertClose(back, img, accuracy: 0)
        let half = try Rotation(degrees: 180).apply(to: img, using: &g)
        for y in 0..<7 { for x in 0..<7 { XCTAssertEqual(half[0, y, x], img[0, 6 - y, 6 - x]) } }
        assertClose(try Rotation(degrees: 0).apply(to: img, using: &g), img, accuracy: 0)
    }

    func testRotationFillModes() throws {
        let img = Image(channels: 1, height: 6, width: 6, repeating: 0.5)
        var g = SeededGenerator(seed: 0)
        let constant = try Rotation(degrees: 45, fill: .constant(1)).apply(to: img, using: &g)
        XCTAssertEqual(constant[0, 0, 0], 1, "corner lies outside the rotated image")
        XCTAssertEqual(constant[0, 3, 3], 0.5, accuracy: 1e-6)
        let edge = try Rotation(degrees: 45, fill: .edge).apply(to: img, using: &g)
        for i in 0..<36 { XCTAssertEqual(edge.tensor[flat: i], 0.5, accuracy: 1e-6) }
        let random = try RandomRotation(maxDegrees: 30)
        let out = random.apply(to: randomImage(), using: &g)
        XCTAssertEqual(out.tensor.shape, [3, 8, 8])
        XCTAssertTrue(out.tensor.isFinite)
        XCTAssertThrowsError(try RandomRotation(maxDegrees: -1))
        XCTAssertThrowsError(try Rotation(degrees: .nan))
    }

    func testFlipTwiceIsIdentityAndFlipMirrors() throws {
        let img = randomImage(height: 3, width: 5)
        var g = SeededGenerator(seed: 2)
        let flip = try HorizontalFlip(probability: 1)
        let once = flip.apply(to: img, using: &g)
        XCTAssertEqual(once[1, 2, 0], img[1, 2, 4])
        assertClose(flip.apply(to: once, using: &g), img, accuracy: 0)
        assertClose(try HorizontalFlip(probability: 0).apply(to: img, using: &g), img, accuracy: 0)
        XCTAssertThrowsError(try HorizontalFlip(probability: 1.5))
    }

    func testResize() throws {
        var g = SeededGenerator(seed: 0)
        let constant = Image(channels: 3, height: 5, width: 7, repeating: 0.3)
        for (h, w) in [(10, 14), (2, 3), (5, 7), (1, 1), (9, 4)] {
            let r = try Resize(height: h, width: w).apply(to: constant, using: &g)
            XCTAssertEqual(r.tensor.shape, [3, h, w])
            for i in 0..<r.tensor.count { XCTAssertEqual(r.tensor[flat: i], 0.3, accuracy: 1e-6) }
        }
        // Known answer, align-corners = false: upsampling [0, 1] ×2 gives [0, 0.25, 0.75, 1]
        // (torch.nn.functional.interpolate([[0, 1]], size=4, mode="linear")).
        let ramp = try Image(Tensor(shape: [1, 1, 2], values: [0, 1]))
        let up = try Resize(height: 1, width: 4).apply(to: ramp, using: &g)
        XCTAssertEqual(up.tensor.scalars, [0, 0.25, 0.75, 1])
        // Downsampling by 2 averages pixel pairs.
        let down = try Resize(height: 1, width: 2).apply(
            to: try Image(Tensor(shape: [1, 1, 4], values: [0, 1, 2, 3])), using: &g)
        XCTAssertEqual(down.tensor.scalars, [0.5, 2.5])
        XCTAssertThrowsError(try Resize(height: 0, width: 3))
    }

    func testRandomCropShapesPaddingAndContent() throws {
        var g = SeededGenerator(seed: 4)
        let img = randomImage(height: 8, width: 8)
        let crop = try RandomCrop(size: 8, padding: 2)
        var sawShift = false
        for _ in 0..<20 {
            let out = crop.apply(to: img, using: &g)
            XCTAssertEqual(out.tensor.shape, [3, 8, 8])
            // The output is the image shifted by (dy, dx) ∈ [−2, 2]² with zeros elsewhere: find it.
            var found = false
            for dy in -2...2 {
                for dx in -2...2 {
                    var ok = true
                    for y in 0..<8 where ok {
                        for x in 0..<8 {
                            let sy = y + dy, sx = x + dx
                            let expected: Float = (sy >= 0 && sy < 8 && sx >= 0 && sx < 8) ? img[0, sy, sx] : 0
                            if out[0, y, x] != expected { ok = false; break }
                        }
                    }
                    if ok { found = true; if dy != 0 || dx != 0 { sawShift = true } }
                }
            }
            XCTAssertTrue(found)
        }
        XCTAssertTrue(sawShift)
        // Smaller crop, and an image smaller than the crop is padded as needed.
        XCTAssertEqual(try RandomCrop(size: 5).apply(to: img, using: &g).tensor.shape, [3, 5, 5])
        XCTAssertEqual(try RandomCrop(size: 12).apply(to: img, using: &g).tensor.shape, [3, 12, 12])
        XCTAssertThrowsError(try RandomCrop(size: 0))
        XCTAssertThrowsError(try RandomCrop(size: 3, padding: -1))
    }

    func testRandomResizedCrop() throws {
        var g = SeededGenerator(seed: 5)
        let rrc = try RandomResizedCrop(size: 6)
        for _ in 0..<50 {
            let (y, x, h, w) = rrc.cropBox(height: 16, width: 12, using: &g)
            XCTAssertTrue(y >= 0 && x >= 0 && h >= 1 && w >= 1 && y + h <= 16 && x + w <= 12)
        }
        let out = rrc.apply(to: randomImage(height: 16, width: 12), using: &g)
        XCTAssertEqual(out.tensor.shape, [3, 6, 6])
        XCTAssertTrue(out.tensor.isFinite)
        // scale = 1, ratio = 1 on a square image: the whole image, so resizing to the same size is identity.
        let whole = try RandomResizedCrop(size: 8, scale: 1...1, ratio: 1...1)
        let img = randomImage()
        assertClose(whole.apply(to: img, using: &g), img, accuracy: 1e-6)
        // Impossible ratio → centred fallback within the image.
        let wide = try RandomResizedCrop(size: 4, scale: 1...1, ratio: 3...4)
        let (y, x, h, w) = wide.cropBox(height: 8, width: 8, using: &g)
        XCTAssertEqual([y, x, h, w], [2, 0, 3, 8])  // torchvision: h = round(8 / 3), top = (8 − 3) // 2
        XCTAssertThrowsError(try RandomResizedCrop(size: 4, scale: 0...1))
        XCTAssertThrowsError(try RandomResizedCrop(size: 4, scale: 0.5...2))
        XCTAssertThrowsError(try RandomResizedCrop(size: 4, ratio: 0...1))
    }
}

final class PhotometricTests: XCTestCase {
    func testZeroStrengthJitterIsIdentity() throws {
        var g = SeededGenerator(seed: 1)
        let img = randomImage()
        assertClose(try ColorJitter().apply(to: img, using: &g), img, accuracy: 0)
    }

    func testJitterKeepsRangeShapeAndBrightnessScales() throws {
        var g = SeededGenerator(seed: 2)
        let img = randomImage(height: 6, width: 6)
        let jitter = try ColorJitter(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1)
        for _ in 0..<10 {
            let out = jitter.apply(to: img, using: &g)
            XCTAssertEqual(out.tensor.shape, [3, 6, 6])
            for i in 0..<out.tensor.count { XCTAssertTrue(out.tensor[flat: i] >= 0 && out.tensor[flat: i] <= 1) }
        }
        // Brightness only: every pixel is scaled by the same factor (dark image avoids clamping).
        let dark = try Image(Tensor(shape: [1, 1, 3], values: [0.1, 0.2, 0.3]))
        let b = try ColorJitter(brightness: 0.5).apply(to: dark, using: &g)
        let f = b[0, 0, 0] / 0.1
        XCTAssertTrue(f >= 0.5 && f <= 1.5)
        XCTAssertEqual(b[0, 0, 2], 0.3 * f, accuracy: 1e-6)
        // Grayscale images skip saturation and hue: they are unchanged.
        let grey = randomImage(channels: 1)
        assertClose(try ColorJitter(saturation: 0.9, hue: 0.5).apply(to: grey, using: &g), grey, accuracy: 0)
        XCTAssertThrowsError(try ColorJitter(hue: 0.6))
        XCTAssertThrowsError(try ColorJitter(brightness: -0.1))
    }

    func testHSVRoundTripAndFullHueTurn() {
        var g = SeededGenerator(seed: 3)
        for _ in 0..<200 {
            let r = g.nextUniform(), gg = g.nextUniform(), b = g.nextUniform()
            let (h, s, v) = rgbToHSV(r, gg, b)
            let (r2, g2, b2) = hsvToRGB(h, s, v)
            XCTAssertEqual(r, r2, accuracy: 1e-5)
            XCTAssertEqual(gg, g2, accuracy: 1e-5)
            XCTAssertEqual(b, b2, accuracy: 1e-5)
        }
        // Pure red shifted by 1/3 turn is pure green.
        let (h, s, v) = rgbToHSV(1, 0, 0)
        let shifted = hsvToRGB(h + 1.0 / 3, s, v)
        XCTAssertEqual(shifted.0, 0, accuracy: 1e-6)
        XCTAssertEqual(shifted.1, 1, accuracy: 1e-6)
    }

    func testGrayscaleAndNoise() throws {
        var g = SeededGenerator(seed: 4)
        let img = randomImage()
        let grey = try RandomGrayscale(probability: 1).apply(to: img, using: &g)
        XCTAssertEqual(grey[0, 1, 2], grey[2, 1, 2])
        XCTAssertEqual(
            grey[1, 1, 2], 0.299 * img[0, 1, 2] + 0.587 * img[1, 1, 2] + 0.114 * img[2, 1, 2], accuracy: 1e-6)
        assertClose(try RandomGrayscale(probability: 0).apply(to: img, using: &g), img, accuracy: 0)
        let big = Image(channels: 1, height: 100, width: 100, repeating: 0.5)
        let noisy = try GaussianNoise(standardDeviation: 0.1).apply(to: big, using: &g)
        let values = noisy.tensor.scalars.map { Double($0) - 0.5 }
        let mean = values.reduce(0, +) / 10_000
        let sd = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 10_000).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.005)
        XCTAssertEqual(sd, 0.1, accuracy: 0.005)
        XCTAssertThrowsError(try GaussianNoise(standardDeviation: -1))
        XCTAssertThrowsError(try RandomGrayscale(probability: 2))
    }

    func testComposeSameSeedSameOutputAndFiniteShapes() throws {
        let pipeline = Compose([
            try RandomResizedCrop(size: 7, scale: 0.5...1), try HorizontalFlip(),
            try RandomRotation(maxDegrees: 20, fill: .edge),
            try ColorJitter(brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.05),
            try RandomGrayscale(probability: 0.2),
            try GaussianNoise(standardDeviation: 0.01), try RandomCrop(size: 6, padding: 1),
        ])
        let img = randomImage(height: 10, width: 9)
        var g1 = SeededGenerator(seed: 77), g2 = SeededGenerator(seed: 77), g3 = SeededGenerator(seed: 78)
        let a = pipeline.apply(to: img, using: &g1)
        let b = pipeline.apply(to: img, using: &g2)
        let c = pipeline.apply(to: img, using: &g3)
        XCTAssertEqual(a.tensor.shape, [3, 6, 6])
        XCTAssertTrue(a.tensor.isFinite)
        XCTAssertTrue(a.tensor.isBitIdentical(to: b.tensor))
        XCTAssertFalse(a.tensor.isBitIdentical(to: c.tensor))
        XCTAssertEqual(
            AugmentationError.invalidOption(name: "x", value: "1", reason: "r").description, "invalid x = 1: r")
    }
}
