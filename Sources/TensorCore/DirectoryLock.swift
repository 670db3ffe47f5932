import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a folder could not be locked. Every case names the folder and the lock file.
public enum DirectoryLockError: Error, Equatable, CustomStringConvertible {
    /// Another live process (or another lock in this one) holds the folder.
    case inUse(directory: String, lockFile: String, pid: Int32?)
    /// A system call on the lock file failed.
    case systemCall(operation: String, lockFile: String, errno: Int32, message: String)

    public var description: String {
        switch self {
        case let .inUse(directory, lockFile, pid):
            let owner = pid.map { "PID \($0)" } ?? "another process"
            return "'\(directory)' is in use by \(owner) (lock file '\(lockFile)'): "
                + "wait for that run to finish or stop it, or use another folder"
        case let .systemCall(operation, lockFile, code, message):
            return "cannot lock '\(lockFile)': \(operation) failed: \(message) (errno \(code))"
        }
    }
}

/// An exclusive lock on a folder, so two processes never write checkpoints or results
/// into the same one.
///
/// The lock is `flock(2)` on the file ``fileName`` in the folder, which holds the owner's
/// PID. The kernel drops the lock when its process ends in any way (even `kill -9`), so a
/// lock file left by a dead process is *stale*: the next ``init(directory:)`` takes it
/// over and reports the dead owner in ``staleOwner``. The file itself is never deleted
/// (deleting it would let two processes lock two different files); ``release()`` empties it.
///
/// Locks are per open file, so a second lock on the same folder in the same process fails
/// too. `flock` is advisory and may not work across machines on some network file systems.
public final class DirectoryLock {
    /// The name of the lock file.
    public static let fileName = ".layerwise.lock"

    /// The locked folder.
    public let directory: String
    /// The lock file's path.
    public let lockFile: String
    /// The PID recorded in a lock file whose owner had died without releasing it, if any.
    public let staleOwner: Int32?
    private var fd: Int32

    /// Locks `directory` (which must exist).
    /// - Throws: ``DirectoryLockError/inUse(directory:lockFile:pid:)`` when a live process
    ///   holds it, ``DirectoryLockError/systemCall(operation:lockFile:errno:message:)`` otherwise.
    public init(directory: String) throws {
        self.directory = directory
        let file = (directory.hasSuffix("/") ? directory : directory + "/") + Self.fileName
        lockFile = file
        func failure(_ operation: String, _ code: Int32 = errno) -> DirectoryLockError {
            .systemCall(operation: operation, lockFile: file, errno: code, message: String(cString: strerror(code)))
        }
        var opened: Int32
        repeat { opened = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) } while opened < 0 && errno == EINTR
        guard opened >= 0 else { throw failure("open") }
        var result: Int32
        repeat { result = flock(opened, LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        if result != 0 {
            let code = errno
            let owner = Self.recordedPID(opened)
            _ = close(opened)
            if code == EWOULDBLOCK { throw DirectoryLockError.inUse(directory: directory, lockFile: file, pid: owner) }
            throw failure("flock", code)
        }
        // Held: whatever PID the file records belongs to a process that died holding it.
        let previous = Self.recordedPID(opened)
        staleOwner = previous == getpid() ? nil : previous
        let record = Array("\(getpid())\n".utf8)
        let written = record.withUnsafeBytes { pwrite(opened, $0.baseAddress, $0.count, 0) }
        guard written == record.count, ftruncate(opened, off_t(record.count)) == 0 else {
            let code = errno
            _ = close(opened)
            throw failure("write", code)
        }
        fd = opened
    }

    deinit { release() }

    /// Empties the lock file and releases the lock (also done on deinit and, by the
    /// kernel, when the process ends). Calling it twice is harmless.
    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        _ = close(fd)  // drops the flock
        fd = -1
    }

    /// The PID written in the lock file, if it holds one.
    static func recordedPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let pid = Int32(text), pid > 0 else { return nil }
        return pid
    }
}
