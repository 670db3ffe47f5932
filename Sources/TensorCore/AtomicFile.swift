import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why an atomic write failed. Every case names the path it concerns.
public enum AtomicFileError: Error, Equatable, CustomStringConvertible {
    /// The path is empty or names a directory (ends with "/", or is "." or "..").
    case invalidPath(path: String, reason: String)
    /// The directory that should hold the file does not exist (and
    /// `createDirectories` was false).
    case directoryMissing(directory: String, path: String)
    /// Something on the way to the directory is not a directory.
    case notADirectory(directory: String, path: String)
    /// A system call failed: which one, on which path, and the `errno` text.
    case systemCall(operation: String, path: String, errno: Int32, message: String)

    public var description: String {
        switch self {
        case let .invalidPath(path, reason):
            return "cannot write '\(path)': \(reason)"
        case let .directoryMissing(directory, path):
            return "cannot write '\(path)': directory '\(directory)' does not exist"
        case let .notADirectory(directory, path):
            return "cannot write '\(path)': '\(directory)' is not a directory"
        case let .systemCall(operation, path, code, message):
            return "cannot write '\(path)': \(operation) failed: \(message) (errno \(code))"
        }
    }
}

/// Crash-safe file replacement: readers see either the old file or the complete new one,
/// never a torn write.
///
/// The bytes go to a uniquely named temporary file in the target's directory (same file
/// system, so the final `rename(2)` is atomic), which is flushed with `fsync` before being
/// renamed over the target; the directory is then `fsync`ed so the rename itself survives
/// a power loss. On any failure the temporary file is removed and a typed
/// ``AtomicFileError`` is thrown. The new file gets mode `0644` filtered by the umask.
/// If the target is a symbolic link, the link itself is replaced (as `rename(2)` does).
public enum AtomicFile {
    /// The system calls used to write, for the current task or thread (see
    /// ``FileSystemCalls``): the real ones unless a test installs others with
    /// `AtomicFile.$systemCalls.withValue(…) { … }`.
    @TaskLocal public static var systemCalls: any FileSystemCalls = POSIXFileSystemCalls()

    /// Atomically replaces (or creates) the file at `path` with `bytes`.
    ///
    /// - Parameters:
    ///   - createDirectories: create missing parent directories first; when false (the
    ///     default) a missing directory is an error rather than being created silently.
    /// - Throws: ``AtomicFileError``.
    public static func write(_ bytes: [UInt8], to path: String, createDirectories: Bool = false) throws {
        try bytes.withUnsafeBytes { try write(buffer: $0, to: path, createDirectories: createDirectories) }
    }

    /// Atomically replaces (or creates) the file at `path` with `data`.
    ///
    /// - Throws: ``AtomicFileError``.
    public static func write(_ data: Data, to path: String, createDirectories: Bool = false) throws {
        try data.withUnsafeBytes { try write(buffer: $0, to: path, createDirectories: createDirectories) }
    }

    /// The prefix of every temporary file for `path`'s file name: `.<name>.tmp-`.
    /// Exposed so tests (and cleanup tools) can recognise leftovers.
    public static func temporaryPrefix(forFileNamed name: String) -> String { ".\(name).tmp-" }

    // MARK: Implementation

    private static func errnoText(_ code: Int32) -> String {
        guard let c = strerror(code) else { return "unknown error" }
        return String(cString: c)
    }

    private static func systemError(_ operation: String, _ path: String, _ code: Int32 = errno) -> AtomicFileError {
        .systemCall(operation: operation, path: path, errno: code, message: errnoText(code))
    }

    /// Splits `path` into (directory, file name); the directory is "." for a bare name.
    static func split(_ path: String) throws -> (directory: String, name: String) {
        guard !path.isEmpty else { throw AtomicFileError.invalidPath(path: path, reason: "the path is empty") }
        guard !path.hasSuffix("/") else {
            throw AtomicFileError.invalidPath(path: path, reason: "the path ends with '/', which names a directory")
        }
        let directory: String
        let name: String
        if let slash = path.lastIndex(of: "/") {
            let dir = String(path[..<slash])
            directory = dir.isEmpty ? "/" : dir
            name = String(path[path.index(after: slash)...])
        } else {
            directory = "."
            name = path
        }
        guard name != ".", name != ".." else {
            throw AtomicFileError.invalidPath(path: path, reason: "'\(name)' names a directory")
        }
        return (directory, name)
    }

    /// Checks that `directory` exists and is a directory, creating it when asked to.
    private static func ensureDirectory(_ directory: String, for path: String, create: Bool) throws {
        var info = stat()
        if stat(directory, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw AtomicFileError.notADirectory(directory: directory, path: path)
            }
            return
        }
        let code = errno
        switch code {
        case ENOENT:
            guard create else { throw AtomicFileError.directoryMissing(directory: directory, path: path) }
            try makeDirectories(directory, for: path)
        case ENOTDIR:
            throw AtomicFileError.notADirectory(directory: directory, path: path)
        default:
            throw systemError("stat('\(directory)')", path, code)
        }
    }

    /// `mkdir -p`: creates each missing component of `directory` (mode 0755 & ~umask).
    private static func makeDirectories(_ directory: String, for path: String) throws {
        var prefix = directory.hasPrefix("/") ? "/" : ""
        for component in directory.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            if mkdir(prefix, 0o755) == 0 { continue }
            let code = errno
            var info = stat()
            if code == EEXIST, stat(prefix, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw AtomicFileError.notADirectory(directory: prefix, path: path)
                }
                continue
            }
            if code == ENOTDIR { throw AtomicFileError.notADirectory(directory: prefix, path: path) }
            throw systemError("mkdir('\(prefix)')", path, code)
        }
    }

    private static func write(buffer: UnsafeRawBufferPointer, to path: String, createDirectories: Bool) throws {
        let (directory, name) = try split(path)
        try ensureDirectory(directory, for: path, create: createDirectories)

        // Unique temporary name in the same directory; O_EXCL makes a collision an EEXIST we
        // retry instead of a file we clobber. The random suffix only ensures uniqueness, it
        // never influences results, so it needs no seeded generator.
        let prefix = (directory == "/" ? "/" : directory + "/") + temporaryPrefix(forFileNamed: name)
        let sys = systemCalls
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0..<32 {
            temporary = prefix + "\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
            fd = sys.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw systemError("open('\(temporary)')", path) }

        var renamed = false
        var isOpen = true
        defer {
            if isOpen { _ = sys.close(fd) }
            if !renamed { _ = unlink(temporary) }
        }

        var offset = 0
        while offset < buffer.count {
            let n = sys.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw systemError("write('\(temporary)')", path)
            }
            // A write that makes no progress would loop forever; report it as a full disk.
            if n == 0 { throw systemError("write('\(temporary)')", path, ENOSPC) }
            offset += n
        }
        guard sys.fsync(fd) == 0 else { throw systemError("fsync('\(temporary)')", path) }
        isOpen = false
        guard sys.close(fd) == 0 else { throw systemError("close('\(temporary)')", path) }

        guard sys.rename(temporary, path) == 0 else {
            throw systemError("rename('\(temporary)' -> '\(path)')", path)
        }
        renamed = true

        // Persist the directory entry. Some file systems cannot fsync a directory (EINVAL);
        // the rename is still atomic there, so that alone is not an error.
        let dirFD = Glibc_open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw systemError("open directory '\(directory)'", path) }
        defer { _ = close(dirFD) }
        if sys.fsync(dirFD) != 0, errno != EINVAL, errno != ENOTSUP {
            throw systemError("fsync directory '\(directory)'", path)
        }
    }
}

// Thin wrappers so the local names `write`/`open` above do not shadow the C functions.
@inline(__always)
private func Glibc_open(_ path: String, _ flags: Int32) -> Int32 {
    open(path, flags)
}
