#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The system calls ``AtomicFile`` makes to write a file, as a seam: tests replace them to
/// inject disk faults (`EIO`, `ENOSPC`, …) that are hard to provoke for real.
///
/// Every method follows the POSIX convention of the call it stands for: on failure it
/// returns -1 and sets `errno`. Install another implementation for a scope with
/// `AtomicFile.$systemCalls.withValue(faulty) { … }`; the default is ``POSIXFileSystemCalls``.
public protocol FileSystemCalls: Sendable {
    /// `open(2)` of a new temporary file (flags include `O_CREAT | O_EXCL`).
    func open(_ path: String, flags: Int32, mode: mode_t) -> Int32
    /// `write(2)`: the number of bytes written, or -1.
    func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int
    /// `fsync(2)` of the temporary file or of its directory.
    func fsync(_ fd: Int32) -> Int32
    /// `close(2)`.
    func close(_ fd: Int32) -> Int32
    /// `rename(2)` of the temporary file over the target.
    func rename(_ from: String, _ to: String) -> Int32
}

/// The real system calls.
public struct POSIXFileSystemCalls: FileSystemCalls {
    public init() {}
    public func open(_ path: String, flags: Int32, mode: mode_t) -> Int32 { posixOpen(path, flags, mode) }
    public func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { posixWrite(fd, buffer, count) }
    public func fsync(_ fd: Int32) -> Int32 { posixFsync(fd) }
    public func close(_ fd: Int32) -> Int32 { posixClose(fd) }
    public func rename(_ from: String, _ to: String) -> Int32 { posixRename(from, to) }
}

// Free functions so the method names above do not shadow the C functions.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
private func posixFsync(_ fd: Int32) -> Int32 { fsync(fd) }
private func posixClose(_ fd: Int32) -> Int32 { close(fd) }
private func posixRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }
