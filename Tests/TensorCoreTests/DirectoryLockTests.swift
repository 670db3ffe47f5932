import Foundation
import TensorCore
import XCTest

final class DirectoryLockTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "DirectoryLockTests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var lockFile: String { directory + "/" + DirectoryLock.fileName }

    func testASecondLockIsRefusedNamingTheOwner() throws {
        let first = try DirectoryLock(directory: directory)
        XCTAssertNil(first.staleOwner)
        XCTAssertEqual(try String(contentsOfFile: lockFile, encoding: .utf8), "\(getpid())\n")
        XCTAssertThrowsError(try DirectoryLock(directory: directory)) { error in
            XCTAssertEqual(
                error as? DirectoryLockError, .inUse(directory: directory, lockFile: lockFile, pid: getpid()))
            XCTAssertTrue("\(error)".contains("in use by PID \(getpid())"), "\(error)")
        }
        first.release()
        XCTAssertEqual(try String(contentsOfFile: lockFile, encoding: .utf8), "", "a released lock records no owner")
        let second = try DirectoryLock(directory: directory)
        XCTAssertNil(second.staleOwner, "a cleanly released lock is not stale")
    }

    func testAStaleLockOfADeadPIDIsTakenOver() throws {
        // A PID that belongs to no process (kill(pid, 0) fails with ESRCH).
        let dead = try XCTUnwrap(
            (4_000_000...4_100_000).lazy.map { Int32($0) }.first { kill($0, 0) == -1 && errno == ESRCH })
        try "\(dead)\n".write(toFile: lockFile, atomically: false, encoding: .utf8)
        let lock = try DirectoryLock(directory: directory)
        XCTAssertEqual(lock.staleOwner, dead)
        XCTAssertEqual(try String(contentsOfFile: lockFile, encoding: .utf8), "\(getpid())\n")
    }

    func testALockHeldByAnotherProcessThenKilledIsTakenOver() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/flock") else {
            throw XCTSkip("needs util-linux flock(1) to hold a lock in a child process")
        }
        // The child locks the file like DirectoryLock does (flock on the file, PID inside).
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sh")
        child.arguments = [
            "-c", "exec 9<>\"$0\"; /usr/bin/flock -x 9; printf '%s\\n' $$ >\"$0\"; echo locked; exec sleep 60",
            lockFile,
        ]
        let output = Pipe()
        child.standardOutput = output
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }
        XCTAssertEqual(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self), "locked\n")

        XCTAssertThrowsError(try DirectoryLock(directory: directory)) { error in
            XCTAssertEqual(
                error as? DirectoryLockError,
                .inUse(directory: directory, lockFile: lockFile, pid: child.processIdentifier))
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        let lock = try DirectoryLock(directory: directory)
        XCTAssertEqual(lock.staleOwner, child.processIdentifier, "the killed child's lock is stale and taken over")
    }

    func testAMissingFolderIsATypedError() {
        XCTAssertThrowsError(try DirectoryLock(directory: directory + "/missing")) { error in
            guard case let .systemCall(op, file, code, _)? = error as? DirectoryLockError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(op, "open")
            XCTAssertEqual(file, directory + "/missing/" + DirectoryLock.fileName)
            XCTAssertEqual(code, ENOENT)
        }
    }
}
