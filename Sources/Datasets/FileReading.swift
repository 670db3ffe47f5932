import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small, checked file access shared by the loaders.
enum FileReading {
    /// The size of the regular file at `path` (symbolic links are followed).
    ///
    /// Uses `stat(2)` directly: `FileManager.attributesOfItem` does not follow a final
    /// symbolic link, so a symlinked data file was reported as "not a regular file".
    /// - Throws: ``DatasetError/missingFile(path:)`` or ``DatasetError/notAFile(path:)``.
    static func regularFileSize(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw DatasetError.missingFile(path: path) }
            throw DatasetError.readFailed(path: path, reason: String(cString: strerror(code)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw DatasetError.notAFile(path: path) }
        return Int(info.st_size)
    }

    /// Throws unless `path` is an existing directory.
    static func requireDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DatasetError.missingFile(path: path)
        }
        guard isDirectory.boolValue else { throw DatasetError.notADirectory(path: path) }
    }

    /// Whether a regular file (not a directory) exists at `path`.
    static func isRegularFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    /// Reads `count` bytes starting at `offset` (the caller has checked the file size).
    static func readBytes(_ path: String, offset: Int = 0, count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        // A (sparse or real) file larger than the machine's memory would make the
        // allocation below trap; refuse it with a typed error instead.
        let memory = ProcessInfo.processInfo.physicalMemory
        guard UInt64(count) <= memory else {
            throw DatasetError.readFailed(
                path: path,
                reason:
                    "reading \(count) bytes needs more memory than this machine has "
                    + "(\(memory) bytes of physical memory)"
            )
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DatasetError.readFailed(path: path, reason: "cannot open for reading")
        }
        defer { try? handle.close() }
        do {
            if offset > 0 { try handle.seek(toOffset: UInt64(offset)) }
            // Read in chunks straight into the destination array: no second full-size copy.
            var bytes = [UInt8](repeating: 0, count: count)
            var filled = 0
            while filled < count {
                let chunk = try handle.read(upToCount: Swift.min(count - filled, 1 << 24)) ?? Data()
                if chunk.isEmpty { break }
                bytes.withUnsafeMutableBufferPointer { dst in
                    chunk.copyBytes(to: dst.baseAddress! + filled, count: chunk.count)
                }
                filled += chunk.count
            }
            guard filled == count else {
                throw DatasetError.readFailed(
                    path: path, reason: "expected \(count) bytes from offset \(offset), read \(filled)")
            }
            return bytes
        } catch let error as DatasetError {
            throw error
        } catch {
            throw DatasetError.readFailed(path: path, reason: "\(error)")
        }
    }

    /// Reads a whole regular file (checked: exists, is a file).
    static func readWholeFile(_ path: String) throws -> [UInt8] {
        let size = try regularFileSize(path)
        return try readBytes(path, count: size)
    }

    /// Non-empty, trimmed lines of a small text file (label-name lists).
    static func readNameLines(_ path: String) throws -> [String] {
        let bytes = try readWholeFile(path)
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw DatasetError.badHeader(file: path, reason: "not UTF-8 text")
        }
        return text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }
}
