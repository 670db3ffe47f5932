import Foundation
import LayerwiseTestSupport
import TensorCore
import XCTest

/// Disk faults while replacing a file: every failure is a typed ``AtomicFileError`` naming
/// the target, the previous file stays complete and no temporary file is left behind.
final class DiskFaultTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "DiskFaultTests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func contents(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { Array($0) } }

    /// Writes `new` over a file holding `old` and checks the failure left `old` alone.
    private func assertFailedReplacement(
        in dir: String, old: [UInt8], new: [UInt8], errno expected: Int32, operation: String,
        file: StaticString = #filePath, line: UInt = #line, _ write: (String) throws -> Void
    ) {
        let path = dir + "/result.safetensors"
        XCTAssertEqual(contents(path), old, "the previous file before the fault", file: file, line: line)
        XCTAssertThrowsError(try write(path), file: file, line: line) { error in
            guard case let .systemCall(op, errorPath, code, message)? = error as? AtomicFileError else {
                return XCTFail("expected AtomicFileError.systemCall, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(errorPath, path, file: file, line: line)
            XCTAssertEqual(code, expected, "\(error)", file: file, line: line)
            XCTAssertTrue(op.hasPrefix(operation), "\(op) should be \(operation)", file: file, line: line)
            XCTAssertEqual(message, String(cString: strerror(expected)), file: file, line: line)
            XCTAssertTrue("\(error)".contains(path), file: file, line: line)
        }
        XCTAssertEqual(contents(path), old, "the previous file is intact", file: file, line: line)
        XCTAssertEqual(
            directoryEntries(dir).filter { $0.contains(".tmp-") }, [], "no temporary file", file: file, line: line)
    }

    func testEveryInjectedIOErrorKeepsThePreviousFile() throws {
        let old: [UInt8] = Array(repeating: 1, count: 100), new: [UInt8] = Array(repeating: 2, count: 5000)
        try AtomicFile.write(old, to: directory + "/result.safetensors")
        for op in FaultyFileSystemCalls.Operation.allCases {
            let faulty = FaultyFileSystemCalls(failing: op, errno: EIO)
            assertFailedReplacement(in: directory, old: old, new: new, errno: EIO, operation: op.rawValue) { path in
                try AtomicFile.$systemCalls.withValue(faulty) { try AtomicFile.write(new, to: path) }
            }
            XCTAssertEqual(faulty.callCount, 1, "\(op) was called once and failed")
        }
        // A write failing after three short writes (data partly on disk) too.
        let late = FaultyFileSystemCalls(failing: .write, errno: ENOSPC, after: 3, shortWrites: true)
        assertFailedReplacement(in: directory, old: old, new: new, errno: ENOSPC, operation: "write") { path in
            try AtomicFile.$systemCalls.withValue(late) { try AtomicFile.write(new, to: path) }
        }
        // The fault is scoped: outside withValue the real calls write normally.
        try AtomicFile.write(new, to: directory + "/result.safetensors")
        XCTAssertEqual(contents(directory + "/result.safetensors"), new)
    }

    func testShortWritesStillWriteEveryByte() throws {
        let bytes = (0..<1000).map { UInt8($0 % 251) }
        let short = FaultyFileSystemCalls(failing: nil, shortWrites: true)
        try AtomicFile.$systemCalls.withValue(short) { try AtomicFile.write(bytes, to: directory + "/short.bin") }
        XCTAssertEqual(contents(directory + "/short.bin"), bytes)
    }

    func testFullDiskOnATinyTmpfs() throws {
        guard let mount = TemporaryMount.mount(kilobytes: 64) else {
            throw XCTSkip("needs root and permission to mount a tmpfs")
        }
        defer { mount.unmount() }
        let old = Array(repeating: UInt8(7), count: 16 * 1024)
        try AtomicFile.write(old, to: mount.path + "/result.safetensors")
        let new = Array(repeating: UInt8(9), count: 128 * 1024)  // twice the whole disk
        assertFailedReplacement(in: mount.path, old: old, new: new, errno: ENOSPC, operation: "write") { path in
            try AtomicFile.write(new, to: path)
        }
        // The failed write's blocks were freed: a file that fits still goes in.
        try AtomicFile.write(Array(new.prefix(32 * 1024)), to: mount.path + "/result.safetensors")
        XCTAssertEqual(contents(mount.path + "/result.safetensors")?.count, 32 * 1024)
    }

    func testReadOnlyFolder() throws {
        guard let mount = TemporaryMount.mount(kilobytes: 256) else {
            throw XCTSkip("needs root and permission to mount a tmpfs")
        }
        defer { mount.unmount() }
        let old: [UInt8] = [1, 2, 3]
        try AtomicFile.write(old, to: mount.path + "/result.safetensors")
        XCTAssertTrue(mount.remount(readOnly: true))
        assertFailedReplacement(in: mount.path, old: old, new: [4, 5], errno: EROFS, operation: "open") { path in
            try AtomicFile.write([4, 5], to: path)
        }
        XCTAssertTrue(mount.remount(readOnly: false))
    }

    func testRemovedFolderIsNamedAndNotRecreated() throws {
        let folder = directory + "/gone"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.removeItem(atPath: folder)
        XCTAssertThrowsError(try AtomicFile.write([1], to: folder + "/result.safetensors")) { error in
            XCTAssertEqual(
                error as? AtomicFileError, .directoryMissing(directory: folder, path: folder + "/result.safetensors"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder))
    }
}
