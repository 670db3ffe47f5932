import Foundation
import TensorCore
import XCTest

final class AtomicFileTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "AtomicFileTests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func contents(_ path: String) throws -> [UInt8] {
        try Array(Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Leftover temporary files for `name` in `dir`.
    private func temporaries(in dir: String, for name: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir)
            .filter { $0.hasPrefix(AtomicFile.temporaryPrefix(forFileNamed: name)) }
    }

    private func inode(_ path: String) throws -> UInt64 {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try XCTUnwrap(attributes[.systemFileNumber] as? UInt64)
    }

    func testCreatesAndReplacesTheTargetLeavingNoTemporaries() throws {
        let path = directory + "/state.bin"
        try AtomicFile.write([1, 2, 3], to: path)
        XCTAssertEqual(try contents(path), [1, 2, 3])
        XCTAssertEqual(try temporaries(in: directory, for: "state.bin"), [])

        // A reader holding the old file keeps seeing the old bytes in full; the new bytes
        // arrive as a different inode (a rename, not an in-place truncate-and-write).
        let oldInode = try inode(path)
        let reader = try XCTUnwrap(FileHandle(forReadingAtPath: path))
        defer { try? reader.close() }
        try AtomicFile.write(Data([9, 8, 7, 6, 5]), to: path)
        XCTAssertEqual(try contents(path), [9, 8, 7, 6, 5])
        XCTAssertNotEqual(try inode(path), oldInode)
        XCTAssertEqual(Array(try reader.readToEnd() ?? Data()), [1, 2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["state.bin"])
    }

    func testEmptyAndLargeWrites() throws {
        let path = directory + "/blob"
        try AtomicFile.write([UInt8](), to: path)
        XCTAssertEqual(try contents(path), [])
        var rng = SeededGenerator(seed: 5)
        let big = (0..<((1 << 18) + 13)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try AtomicFile.write(big, to: path)
        XCTAssertEqual(try contents(path), big)
    }

    func testRelativePathInTheCurrentDirectory() throws {
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(directory))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try AtomicFile.write([42], to: "relative.bin")
        XCTAssertEqual(try contents(directory + "/relative.bin"), [42])
        XCTAssertEqual(try temporaries(in: directory, for: "relative.bin"), [])
        try AtomicFile.write([7], to: "sub/dir/nested.bin", createDirectories: true)
        XCTAssertEqual(try contents(directory + "/sub/dir/nested.bin"), [7])
    }

    func testFailureRemovesTheTemporaryAndNamesThePath() throws {
        // The target is a non-empty directory: the temporary is written, then rename fails.
        let path = directory + "/occupied"
        try FileManager.default.createDirectory(atPath: path + "/child", withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write([1, 2, 3], to: path)) { error in
            guard case let .systemCall(operation, errorPath, code, message) = error as? AtomicFileError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(operation.hasPrefix("rename"), operation)
            XCTAssertEqual(errorPath, path)
            XCTAssertNotEqual(code, 0)
            XCTAssertFalse(message.isEmpty)
            XCTAssertTrue(String(describing: error).contains(path))
        }
        XCTAssertEqual(try temporaries(in: directory, for: "occupied"), [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path), ["child"])
    }

    func testMissingDirectoryIsAnErrorUnlessAskedToCreateIt() throws {
        let path = directory + "/a/b/file.bin"
        XCTAssertThrowsError(try AtomicFile.write([1], to: path)) { error in
            XCTAssertEqual(error as? AtomicFileError, .directoryMissing(directory: directory + "/a/b", path: path))
            XCTAssertTrue(String(describing: error).contains(directory + "/a/b"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/a"), "nothing created silently")

        try AtomicFile.write([1], to: path, createDirectories: true)
        XCTAssertEqual(try contents(path), [1])
    }

    func testParentThatIsAFileAndDirectoryPathsAreRejected() throws {
        let file = directory + "/plain"
        try AtomicFile.write([0], to: file)
        XCTAssertThrowsError(try AtomicFile.write([1], to: file + "/inner")) { error in
            XCTAssertEqual(error as? AtomicFileError, .notADirectory(directory: file, path: file + "/inner"))
        }
        XCTAssertThrowsError(try AtomicFile.write([1], to: file + "/deeper/inner", createDirectories: true)) { error in
            XCTAssertEqual(
                error as? AtomicFileError, .notADirectory(directory: file + "/deeper", path: file + "/deeper/inner"))
        }
        for bad in ["", directory + "/", directory + "/.", directory + "/.."] {
            XCTAssertThrowsError(try AtomicFile.write([1], to: bad), bad) { error in
                guard case .invalidPath(path: bad, _) = error as? AtomicFileError else {
                    return XCTFail("\(bad): \(error)")
                }
            }
        }
        XCTAssertEqual(try contents(file), [0])
    }
}
