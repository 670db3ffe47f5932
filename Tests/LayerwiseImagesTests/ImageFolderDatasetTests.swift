import Foundation
import XCTest

@testable import LayerwiseImages

final class ImageFolderDatasetTests: XCTestCase {
    typealias F = ImageFixtures

    func pixel(_ d: ImageFolderDataset, _ i: Int, x: Int, y: Int) -> [UInt8] {
        let b = Array(d.images.bytes(of: i)), s = d.imageShape.height * d.imageShape.width
        return (0..<3).map { b[$0 * s + y * d.imageShape.width + x] }
    }

    func testClassFoldersGetSortedLabelsAndMixedSizesBecome32x32() throws {
        let root = try F.folder()
        try F.write(F.png(F.image(width: 40, height: 50) { _, _ in (200, 10, 10) }), "\(root)/zebra/b.png")
        try F.write(F.png(F.image(width: 8, height: 8) { _, _ in (10, 200, 10) }), "\(root)/ant/x.png")
        let jpeg = try ImageCodec.encodeJPEG(F.image(width: 64, height: 48) { _, _ in (10, 10, 200) }, quality: 95)
        try F.write(jpeg, "\(root)/zebra/a.JPG")
        try F.write([1, 2, 3], "\(root)/zebra/notes.txt")  // ignored
        let d = try ImageFolderDataset(root: root)
        XCTAssertEqual(d.classNames, ["ant", "zebra"])
        XCTAssertEqual(d.files, ["ant/x.png", "zebra/a.JPG", "zebra/b.png"])
        XCTAssertEqual((0..<3).map { d.label(at: $0) }, [0, 1, 1])
        XCTAssertEqual(d.imageShape, .init(channels: 3, height: 32, width: 32))
        XCTAssertEqual(d.classCount, 2)
        XCTAssertEqual(pixel(d, 0, x: 31, y: 31), [10, 200, 10])
        XCTAssertEqual(pixel(d, 2, x: 0, y: 17), [200, 10, 10])
        for (got, want) in zip(pixel(d, 1, x: 5, y: 9), [10, 10, 200] as [Int]) {
            XCTAssertLessThanOrEqual(abs(Int(got) - want), 3)
        }
    }

    func testFlatFolderIsUnlabelled() throws {
        let root = try F.folder()
        for i in 0..<3 {
            try F.write(F.png(F.image(width: 5, height: 5) { _, _ in (UInt8(i), 0, 0) }), "\(root)/\(i).png")
        }
        let d = try ImageFolderDataset(root: root, options: .init(size: 4))
        XCTAssertNil(d.classNames)
        XCTAssertNil(d.classCount)
        XCTAssertNil(d.label(at: 0))
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(pixel(d, 2, x: 1, y: 1), [2, 0, 0])
    }

    /// Resize of the shorter side, then the centre square (torchvision Resize + CenterCrop).
    func testCenterCropKeepsTheMiddleOfTheLongerSide() throws {
        let root = try F.folder()
        // 64x32: columns 0..<24 red, 24..<40 green, 40..<64 blue; centre 32 columns are 16..<48.
        let img = F.image(width: 64, height: 32) { x, _ in x < 24 ? (255, 0, 0) : x < 40 ? (0, 255, 0) : (0, 0, 255) }
        try F.write(F.png(img), "\(root)/a.png")
        let d = try ImageFolderDataset(root: root)
        XCTAssertEqual(pixel(d, 0, x: 0, y: 3), [255, 0, 0])
        XCTAssertEqual(pixel(d, 0, x: 16, y: 3), [0, 255, 0])
        XCTAssertEqual(pixel(d, 0, x: 31, y: 3), [0, 0, 255])
    }

    /// A 2x downscale averages pixel pairs, as an antialiased (not a point-sampled) resize must.
    func testDownscaleAverages() throws {
        let root = try F.folder()
        try F.write(
            F.png(F.image(width: 8, height: 8) { x, _ in x % 2 == 0 ? (0, 0, 0) : (200, 200, 200) }), "\(root)/a.png")
        let d = try ImageFolderDataset(root: root, options: .init(size: 4))
        XCTAssertEqual(pixel(d, 0, x: 1, y: 1), [100, 100, 100])
    }

    func testRandomCropIsSeededAndVaries() throws {
        let root = try F.folder()
        for i in 0..<8 {
            try F.write(
                F.png(F.image(width: 96, height: 32) { x, _ in (UInt8(x * 2), UInt8(i), 0) }), "\(root)/\(i).png")
        }
        let a = try ImageFolderDataset(root: root, options: .init(crop: .random(seed: 1)))
        let b = try ImageFolderDataset(root: root, options: .init(crop: .random(seed: 1)))
        let c = try ImageFolderDataset(root: root, options: .init(crop: .random(seed: 2)))
        XCTAssertEqual(a.images.pixels, b.images.pixels)
        XCTAssertNotEqual(a.images.pixels, c.images.pixels)
        let offsets = Set((0..<8).map { pixel(a, $0, x: 0, y: 0)[0] })
        XCTAssertGreaterThan(offsets.count, 1, "crops of different images start at different offsets")
    }

    func testGrayscaleRGBAAnd16BitPNGsBecomeRGB8() throws {
        let root = try F.folder()
        try F.write(
            F.png(width: 2, height: 2, colorType: 0, bitDepth: 8, samples: [90, 90, 90, 90]), "\(root)/gray.png")
        try F.write(
            F.png(
                width: 2, height: 2, colorType: 6, bitDepth: 8,
                samples: [UInt8](repeating: 0, count: 16).enumerated().map { [1, 2, 3, 7][$0.offset % 4] }),
            "\(root)/rgba.png")
        let sixteen: [UInt8] = (0..<4).flatMap { _ in [0xAB, 0xCD, 0x12, 0x34, 0x00, 0xFF] }
        try F.write(F.png(width: 2, height: 2, colorType: 2, bitDepth: 16, samples: sixteen), "\(root)/rgb16.png")
        try F.write(
            F.png(width: 2, height: 2, colorType: 4, bitDepth: 16, samples: [UInt8](repeating: 0x40, count: 16)),
            "\(root)/grayalpha16.png")
        let d = try ImageFolderDataset(root: root, options: .init(size: 2))
        XCTAssertEqual(d.files, ["gray.png", "grayalpha16.png", "rgb16.png", "rgba.png"])
        XCTAssertEqual(pixel(d, 0, x: 1, y: 1), [90, 90, 90])
        XCTAssertEqual(pixel(d, 1, x: 0, y: 0), [0x40, 0x40, 0x40])
        XCTAssertEqual(pixel(d, 2, x: 0, y: 1), [0xAB, 0x12, 0x00])
        XCTAssertEqual(pixel(d, 3, x: 1, y: 0), [1, 2, 3])
    }

    func testBadFilesAreTypedErrorsOrSkippedAndCounted() throws {
        let root = try F.folder()
        let good = F.png(F.image(width: 16, height: 16) { x, y in (UInt8(x * 9), UInt8(y * 9), 7) })
        try F.write(good, "\(root)/good.png")
        try F.write(Array(good.prefix(good.count - 40)), "\(root)/truncated.png")
        let jpeg = try ImageCodec.encodeJPEG(F.image(width: 64, height: 64) { x, y in (UInt8(x * 3), UInt8(y), 9) })
        try F.write(Array(jpeg.prefix(jpeg.count / 2)), "\(root)/truncated.jpg")
        try F.write([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0], "\(root)/anim.gif")
        try F.write([], "\(root)/zero.png")
        var corrupt = good
        corrupt[40] ^= 0xFF  // inside IDAT: the CRC check fails
        try F.write(corrupt, "\(root)/flipped.png")
        XCTAssertThrowsError(try ImageFolderDataset(root: root)) { error in
            XCTAssertEqual(
                error as? ImageFolderError,
                .unsupported(
                    file: "\(root)/anim.gif", reason: "neither a PNG nor a JPEG signature"))
        }
        let d = try ImageFolderDataset(root: root, options: .init(skipUnreadable: true))
        XCTAssertEqual(d.files, ["good.png"])
        XCTAssertEqual(d.report.loaded, 1)
        XCTAssertEqual(
            d.report.skipped.map { ($0.file as NSString).lastPathComponent },
            ["anim.gif", "flipped.png", "truncated.jpg", "truncated.png", "zero.png"])
        for (file, reason) in d.report.skipped {
            XCTAssertTrue(reason.contains(file), reason)
        }
        let jpegReason = d.report.skipped[2].reason
        XCTAssertTrue(jpegReason.contains("corrupt"), jpegReason)
        for name in ["truncated.png", "truncated.jpg", "flipped.png", "zero.png"] {
            XCTAssertThrowsError(try ImageCodec.decodeFile("\(root)/\(name)")) { error in
                guard case .corrupt(let file, _) = error as? ImageFolderError else { return XCTFail("\(error)") }
                XCTAssertEqual(file, "\(root)/\(name)")
            }
        }
    }

    func testEmptyMissingAndMixedFoldersAreTypedErrors() throws {
        let root = try F.folder()
        XCTAssertThrowsError(try ImageFolderDataset(root: root)) {
            XCTAssertEqual($0 as? ImageFolderError, .noImages(path: root))
        }
        XCTAssertThrowsError(try ImageFolderDataset(root: root + "/nope")) {
            XCTAssertEqual($0 as? ImageFolderError, .missingPath(path: root + "/nope"))
        }
        try F.write([1], "\(root)/readme.txt")
        XCTAssertThrowsError(try ImageFolderDataset(root: root + "/readme.txt")) {
            XCTAssertEqual($0 as? ImageFolderError, .notADirectory(path: root + "/readme.txt"))
        }
        try FileManager.default.createDirectory(atPath: root + "/cats", withIntermediateDirectories: true)
        XCTAssertThrowsError(try ImageFolderDataset(root: root)) {
            XCTAssertEqual($0 as? ImageFolderError, .emptyClass(path: root + "/cats"))
        }
        try F.write(F.png(F.image(width: 2, height: 2) { _, _ in (1, 1, 1) }), "\(root)/cats/a.png")
        try F.write(F.png(F.image(width: 2, height: 2) { _, _ in (1, 1, 1) }), "\(root)/top.png")
        XCTAssertThrowsError(try ImageFolderDataset(root: root)) {
            XCTAssertEqual($0 as? ImageFolderError, .mixedLayout(path: root, topLevelFile: "top.png"))
        }
        XCTAssertThrowsError(try ImageFolderDataset(root: root + "/cats", options: .init(size: 0))) {
            guard case .invalidOption(name: "size", _, _) = $0 as? ImageFolderError else { return XCTFail("\($0)") }
        }
    }

    /// Parallel decoding gives exactly what decoding the files one by one gives.
    func testParallelDecodingMatchesSerialDecoding() throws {
        let root = try F.folder()
        var rng = SystemRandomNumberGenerator()
        for i in 0..<24 {
            let (w, h) = (Int.random(in: 20...70, using: &rng), Int.random(in: 20...70, using: &rng))
            let img = F.image(width: w, height: h) { x, y in (UInt8((x * 7 + i) % 256), UInt8((y * 5) % 256), UInt8(i))
            }
            if i % 2 == 0 {
                try F.write(F.png(img), "\(root)/\(i).png")
            } else {
                try F.write(try ImageCodec.encodeJPEG(img), "\(root)/\(i).jpg")
            }
        }
        let d = try ImageFolderDataset(root: root, options: .init(size: 16))
        var serial = [UInt8](repeating: 0, count: 3 * 16 * 16)
        for (i, file) in d.files.enumerated() {
            let image = try ImageCodec.decodeFile("\(root)/\(file)")
            serial.withUnsafeMutableBufferPointer {
                ImageFitting.fit(image, size: 16, crop: .center, index: i, into: $0.baseAddress!)
            }
            XCTAssertEqual(Array(d.images.bytes(of: i)), serial, file)
        }
    }

    func testJPEGRoundTripIsClose() throws {
        let img = F.image(width: 24, height: 16) { x, y in (UInt8(x * 10), UInt8(y * 15), 128) }
        let jpeg = try ImageCodec.encodeJPEG(img, quality: 100)
        let back = try jpeg.withUnsafeBytes { try ImageCodec.decode($0, file: "mem.jpg") }
        XCTAssertEqual(back.width, 24)
        XCTAssertEqual(back.height, 16)
        let worst = zip(back.pixels, img.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 8)
        XCTAssertThrowsError(try ImageCodec.encodeJPEG(img, quality: 0))
    }
}
