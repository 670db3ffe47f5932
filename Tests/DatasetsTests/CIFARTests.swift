import XCTest

@testable import Datasets

final class CIFARTests: XCTestCase {
    func testLoadsValidCIFAR10FileWithLabelsAndPlanarPixels() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir + "/data_batch_1.bin"
        try writeBytes(cifar10Records(labels: [3, 0, 9]), to: path)
        let data = try CIFAR.loadCIFAR10(files: [path])
        XCTAssertEqual(data.count, 3)
        XCTAssertEqual(data.imageShape, ImageShape(channels: 3, height: 32, width: 32))
        XCTAssertEqual(data.labels, [3, 0, 9])
        XCTAssertEqual(data.classCount, 10)
        // Record 1, green plane (byte 1024 of the pixels), position (0, 5) → byte 1024 + 5.
        let img = data.image(at: 1)
        XCTAssertEqual(img[1, 0, 5], Float((1 * 7 + 1024 + 5) & 0xFF) / 255)
        XCTAssertEqual(img[2, 31, 31], Float((1 * 7 + 3071) & 0xFF) / 255)
    }

    func testDirectoryLoadReadsExistingBatchesAndMeta() throws {
        let dir = try makeTemporaryDirectory(self)
        try writeBytes(cifar10Records(labels: [1, 2]), to: dir + "/data_batch_1.bin")
        try writeBytes(cifar10Records(labels: [5]), to: dir + "/data_batch_3.bin")
        try writeBytes(cifar10Records(labels: [7, 8]), to: dir + "/test_batch.bin")
        let names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        try writeBytes(Array((names.joined(separator: "\n") + "\n\n").utf8), to: dir + "/batches.meta.txt")
        let train = try CIFAR.loadCIFAR10(directory: dir, split: .train)
        XCTAssertEqual(train.labels, [1, 2, 5])
        XCTAssertEqual(train.classNames, names)
        let test = try CIFAR.loadCIFAR10(directory: dir, split: .test)
        XCTAssertEqual(test.labels, [7, 8])
    }

    func testDirectoryWithoutBatchesIsAnError() throws {
        let dir = try makeTemporaryDirectory(self)
        guard case .missingFile = expectDatasetError({ try CIFAR.loadCIFAR10(directory: dir, split: .train) }) else {
            return XCTFail("expected missingFile")
        }
        guard case .missingFile = expectDatasetError({ try CIFAR.loadCIFAR10(directory: dir + "/nope", split: .test) })
        else {
            return XCTFail("expected missingFile")
        }
    }

    func testBadMetaFileIsReported() throws {
        let dir = try makeTemporaryDirectory(self)
        try writeBytes(cifar10Records(labels: [1]), to: dir + "/test_batch.bin")
        try writeBytes(Array("cat\ndog\n".utf8), to: dir + "/batches.meta.txt")
        guard case .badHeader(let file, _) = expectDatasetError({ try CIFAR.loadCIFAR10(directory: dir, split: .test) })
        else {
            return XCTFail("expected badHeader")
        }
        XCTAssertTrue(file.hasSuffix("batches.meta.txt"))
    }

    func testTruncatedFileNamesSizeAndOffset() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir + "/data_batch_1.bin"
        try writeBytes(Array(cifar10Records(labels: [1, 2]).dropLast(100)), to: path)
        let error = expectDatasetError { try CIFAR.loadCIFAR10(files: [path]) }
        XCTAssertEqual(error, .truncated(file: path, size: 2 * 3073 - 100, recordLength: 3073, offset: 3073))
        XCTAssertTrue(error!.description.contains("3073"))
        XCTAssertTrue(error!.description.contains(path))
    }

    func testLabelOutOfRangeNamesRecordAndOffset() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir + "/b.bin"
        try writeBytes(cifar10Records(labels: [1, 2, 10]), to: path)
        let error = expectDatasetError { try CIFAR.loadCIFAR10(files: [path]) }
        XCTAssertEqual(error, .labelOutOfRange(file: path, record: 2, offset: 2 * 3073, value: 10, limit: 10))
    }

    func testDirectoryInsteadOfFileMissingFileAndEmptyFile() throws {
        let dir = try makeTemporaryDirectory(self)
        XCTAssertEqual(expectDatasetError { try CIFAR.loadCIFAR10(files: [dir]) }, .notAFile(path: dir))
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR10(files: [dir + "/x.bin"]) }, .missingFile(path: dir + "/x.bin"))
        try writeBytes([], to: dir + "/empty.bin")
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR10(files: [dir + "/empty.bin"]) },
            .emptyFile(path: dir + "/empty.bin"))
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR100(file: dir + "/empty.bin") },
            .emptyFile(path: dir + "/empty.bin"))
        expectDatasetError { try CIFAR.loadCIFAR10(files: []) }
    }

    func testCIFAR100FineAndCoarseLabels() throws {
        let dir = try makeTemporaryDirectory(self)
        try writeBytes(cifar100Records([(4, 30), (19, 99), (0, 0)]), to: dir + "/train.bin")
        let fine = try CIFAR.loadCIFAR100(file: dir + "/train.bin")
        XCTAssertEqual(fine.labels, [30, 99, 0])
        XCTAssertEqual(fine.classCount, 100)
        let coarse = try CIFAR.loadCIFAR100(file: dir + "/train.bin", labels: .coarse)
        XCTAssertEqual(coarse.labels, [4, 19, 0])
        XCTAssertEqual(coarse.classCount, 20)
        XCTAssertEqual(coarse.image(at: 2)[0, 0, 1], Float(2 * 13 + 1 * 3) / 255)
        // With name files in a directory.
        try writeBytes(
            Array((0..<100).map { "fine\($0)" }.joined(separator: "\n").utf8), to: dir + "/fine_label_names.txt")
        try writeBytes(
            Array((0..<20).map { "coarse\($0)" }.joined(separator: "\n").utf8), to: dir + "/coarse_label_names.txt")
        let named = try CIFAR.loadCIFAR100(directory: dir, split: .train, labels: .coarse)
        XCTAssertEqual(named.classNames?[19], "coarse19")
        XCTAssertEqual(try CIFAR.loadCIFAR100(directory: dir, split: .train).classNames?[99], "fine99")
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR100(directory: dir, split: .test) },
            .missingFile(path: dir + "/test.bin"))
    }

    func testCIFAR100OutOfRangeLabelsAndTruncation() throws {
        let dir = try makeTemporaryDirectory(self)
        try writeBytes(cifar100Records([(1, 2), (20, 5)]), to: dir + "/a.bin")
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR100(file: dir + "/a.bin") },
            .labelOutOfRange(file: dir + "/a.bin", record: 1, offset: 3074, value: 20, limit: 20))
        try writeBytes(cifar100Records([(1, 100)]), to: dir + "/b.bin")
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR100(file: dir + "/b.bin") },
            .labelOutOfRange(file: dir + "/b.bin", record: 0, offset: 1, value: 100, limit: 100))
        // A CIFAR-10 file read as CIFAR-100 has the wrong record length.
        try writeBytes(cifar10Records(labels: [1, 1]), to: dir + "/c10.bin")
        guard
            case .truncated(_, let size, 3074, let offset) = expectDatasetError({
                try CIFAR.loadCIFAR100(file: dir + "/c10.bin")
            })
        else {
            return XCTFail("expected truncated")
        }
        XCTAssertEqual(size, 6146)
        XCTAssertEqual(offset, 3074)
    }

    /// Reads the real data in `shared/data` beside the repository when present (skipped
    /// elsewhere): checks counts and label ranges.
    func testRealCIFAR10WhenAvailable() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let path = repository.deletingLastPathComponent().path + "/shared/data/cifar-10-batches-bin/data_batch_1.bin"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("shared CIFAR-10 not present") }
        let data = try CIFAR.loadCIFAR10(files: [path])
        XCTAssertEqual(data.count, 10_000)
        XCTAssertEqual(Set(data.labels!), Set(0..<10))
    }
}
