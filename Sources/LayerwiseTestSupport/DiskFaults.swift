import Foundation
import Synchronization
import TensorCore

/// System calls for ``AtomicFile`` that fail on purpose: install with
/// `AtomicFile.$systemCalls.withValue(FaultyFileSystemCalls(…)) { … }` to prove that a
/// failing disk gives a typed error and leaves the previous file intact.
public final class FaultyFileSystemCalls: FileSystemCalls {
    /// The call that fails.
    public enum Operation: String, Sendable, CaseIterable {
        case open, write, fsync, close, rename
    }

    /// The failing call, or nil to fail nothing (``shortWrites`` only).
    public let operation: Operation?
    /// The `errno` the failing call sets.
    public let errorCode: Int32
    /// How many calls of ``operation`` succeed before every later one fails.
    public let succeedingCalls: Int
    /// Whether each `write` writes at most 7 bytes (a legal short write).
    public let shortWrites: Bool
    private let calls = Atomic<Int>(0)
    private let real = POSIXFileSystemCalls()

    public init(
        failing operation: Operation?, errno errorCode: Int32 = EIO, after succeedingCalls: Int = 0,
        shortWrites: Bool = false
    ) {
        self.operation = operation
        self.errorCode = errorCode
        self.succeedingCalls = succeedingCalls
        self.shortWrites = shortWrites
    }

    /// How many calls of ``operation`` were made (failed or not).
    public var callCount: Int { calls.load(ordering: .relaxed) }

    private func fails(_ op: Operation) -> Bool {
        guard op == operation else { return false }
        let n = calls.wrappingAdd(1, ordering: .relaxed).oldValue
        guard n >= succeedingCalls else { return false }
        errno = errorCode
        return true
    }

    public func open(_ path: String, flags: Int32, mode: mode_t) -> Int32 {
        fails(.open) ? -1 : real.open(path, flags: flags, mode: mode)
    }

    public func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        fails(.write) ? -1 : real.write(fd, buffer, shortWrites ? min(count, 7) : count)
    }

    public func fsync(_ fd: Int32) -> Int32 { fails(.fsync) ? -1 : real.fsync(fd) }

    public func close(_ fd: Int32) -> Int32 {
        // A failing close still closes: POSIX leaves the descriptor unusable either way.
        if fails(.close) {
            _ = real.close(fd)
            errno = errorCode
            return -1
        }
        return real.close(fd)
    }

    public func rename(_ from: String, _ to: String) -> Int32 { fails(.rename) ? -1 : real.rename(from, to) }
}

/// A small tmpfs mounted for a test (needs root and permission to mount; ``mount(kilobytes:)``
/// returns nil otherwise, so the test can skip).
public final class TemporaryMount {
    /// The mount point.
    public let path: String
    private var mounted = true
    private let removesMountPoint: Bool

    private init(path: String, removesMountPoint: Bool = true) {
        self.path = path
        self.removesMountPoint = removesMountPoint
    }

    /// Makes the existing folder `path` read-only by mounting a read-only bind mount of it
    /// over itself (files already open for writing keep working; new writes fail with
    /// `EROFS`). ``unmount()`` makes it writable again and keeps the folder.
    public static func readOnlyBind(_ path: String) -> TemporaryMount? {
        guard getuid() == 0, run("/bin/mount", ["--bind", path, path]) else { return nil }
        let mount = TemporaryMount(path: path, removesMountPoint: false)
        return run("/bin/mount", ["-o", "remount,bind,ro", path]) ? mount : nil
    }

    /// Mounts a tmpfs of `kilobytes` on a new folder under the temporary directory.
    public static func mount(kilobytes: Int) -> TemporaryMount? {
        guard getuid() == 0 else { return nil }
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent(
            "layerwise-tmpfs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard (try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)) != nil,
            run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", path])
        else {
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
        return TemporaryMount(path: path)
    }

    /// Remounts it read-only (`mount -o remount,ro`). Returns whether that worked.
    @discardableResult
    public func remount(readOnly: Bool) -> Bool {
        Self.run("/bin/mount", ["-o", "remount,\(readOnly ? "ro" : "rw")", path])
    }

    /// Unmounts and removes the mount point (also on deinit).
    public func unmount() {
        guard mounted else { return }
        mounted = false
        _ = Self.run("/bin/umount", [path])
        if removesMountPoint { try? FileManager.default.removeItem(atPath: path) }
    }

    deinit { unmount() }

    static func run(_ tool: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}

/// The names in `directory` (hidden ones included), sorted; empty when it cannot be listed.
public func directoryEntries(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}
