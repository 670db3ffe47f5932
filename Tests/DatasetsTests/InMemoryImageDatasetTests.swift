import XCTest

@testable import Datasets

final class InMemoryImageDatasetTests: XCTestCase {
    let shape = ImageShape(channels: 2, height: 2, width: 2)

    func make(_ n: Int, labels: [Int]? = nil) throws -> InMemoryImageDataset {
        try InMemoryImageDataset(pixels: (0..<(n * 8)).map { UInt8($0) }, shape: shape, labels: labels)
    }

    func testCopyPixelsIsBytesOver255() throws {
        let d = try make(3, labels: [0, 1, 2])
        var buffer = [Float](repeating: -1, count: 9)
        buffer.withUnsafeMutableBufferPointer { d.copyPixels(of: 1, into: $0) }
        XCTAssertEqual(Array(buffer[0..<8]), (8..<16).map { Float($0) / 255 })
        XCTAssertEqual(buffer[8], -1, "must not write past one image")
        XCTAssertEqual(d.classCount, 3)
        XCTAssertEqual(d.label(at: 2), 2)
    }

    func testValidationErrors() {
        expectDatasetError { try InMemoryImageDataset(pixels: [1, 2, 3], shape: self.shape) }
        expectDatasetError {
            try InMemoryImageDataset(pixels: [UInt8](repeating: 0, count: 16), shape: self.shape, labels: [0])
        }
        expectDatasetError {
            try InMemoryImageDataset(pixels: [UInt8](repeating: 0, count: 16), shape: self.shape, labels: [0, -1])
        }
        expectDatasetError {
            try InMemoryImageDataset(
                pixels: [UInt8](repeating: 0, count: 16), shape: self.shape, labels: [0, 5], classCount: 3)
        }
        expectDatasetError { try InMemoryImageDataset(pixels: [], shape: ImageShape(channels: 0, height: 1, width: 1)) }
        expectDatasetError {
            try InMemoryImageDataset(
                pixels: [UInt8](repeating: 0, count: 8), shape: self.shape, labels: [0], classCount: 3,
                classNames: ["a", "b"])
        }
    }

    func testSubsetPrefixSplit() throws {
        let d = try make(5, labels: [0, 1, 2, 3, 4])
        let s = try d.subset([4, 0, 4])
        XCTAssertEqual(s.labels, [4, 0, 4])
        XCTAssertEqual(Array(s.bytes(of: 1)), Array(d.bytes(of: 0)))
        XCTAssertEqual(s.classCount, 5)
        expectDatasetError { try d.subset([5]) }
        XCTAssertEqual(d.prefix(2).labels, [0, 1])
        XCTAssertEqual(d.prefix(99).count, 5)
        let (train, validation) = try d.split(validationCount: 2)
        XCTAssertEqual(train.labels, [0, 1, 2])
        XCTAssertEqual(validation.labels, [3, 4])
        XCTAssertEqual(Array(validation.bytes(of: 0)), Array(d.bytes(of: 3)))
        XCTAssertEqual(
            expectDatasetError { try d.split(validationCount: 6) },
            .invalidOption(
                name: "validationCount", value: "6", reason: "must lie in 0...5 (the dataset holds 5 images)"))
        expectDatasetError { try d.split(validationCount: -1) }
        let joined = try InMemoryImageDataset.concatenate([train, validation])
        XCTAssertEqual(joined.pixels, d.pixels)
    }

    func testImagesOfDifferentClassesConcatenateOnceUnlabelled() throws {
        let shape = ImageShape(channels: 1, height: 1, width: 2)
        let ten = try InMemoryImageDataset(pixels: [1, 2, 3, 4], shape: shape, labels: [0, 9], classCount: 10)
        let hundred = try InMemoryImageDataset(pixels: [5, 6], shape: shape, labels: [99], classCount: 100)
        expectDatasetError { try InMemoryImageDataset.concatenate([ten, hundred]) }
        let joined = try InMemoryImageDataset.concatenate([ten.withoutLabels(), hundred.withoutLabels()])
        XCTAssertEqual(joined.pixels, [1, 2, 3, 4, 5, 6])
        XCTAssertNil(joined.labels)
        XCTAssertNil(joined.classCount)
        XCTAssertEqual(joined.count, 3)
    }

    func testSequenceDataset() throws {
        let fs = ImageShape(channels: 1, height: 1, width: 2)
        let seq = try InMemorySequenceDataset(
            pixels: [0, 255, 51, 102, 1, 2, 3, 4], clipCount: 2, framesPerClip: 2, frameShape: fs)
        var b = [Float](repeating: 0, count: 2)
        b.withUnsafeMutableBufferPointer { seq.copyPixels(ofClip: 0, frame: 1, into: $0) }
        XCTAssertEqual(b, [0.2, 0.4])
        let f = try InMemorySequenceDataset(frames: [0.5, 0.25, 1, 0], clipCount: 2, framesPerClip: 1, frameShape: fs)
        b.withUnsafeMutableBufferPointer { f.copyPixels(ofClip: 1, frame: 0, into: $0) }
        XCTAssertEqual(b, [1, 0])
        expectDatasetError {
            try InMemorySequenceDataset(frames: [0.5], clipCount: 2, framesPerClip: 1, frameShape: fs)
        }
        expectDatasetError {
            try InMemorySequenceDataset(frames: [.nan, 0], clipCount: 1, framesPerClip: 1, frameShape: fs)
        }
        expectDatasetError { try InMemorySequenceDataset(pixels: [], clipCount: 0, framesPerClip: 1, frameShape: fs) }
    }
}
