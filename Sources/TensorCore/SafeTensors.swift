import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The contents of a safetensors file: named Float32 tensors plus string metadata.
public struct SafeTensorsFile: Sendable {
    /// The tensors by name.
    public var tensors: [String: Tensor]
    /// The free-form `__metadata__` map. Non-float state (step counters, RNG words, labels)
    /// is stored here as strings.
    public var metadata: [String: String]

    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Whether both files hold the same names, shapes, bit-identical elements and metadata.
    public func isBitIdentical(to other: SafeTensorsFile) -> Bool {
        guard metadata == other.metadata, tensors.count == other.tensors.count else { return false }
        for (name, tensor) in tensors {
            guard let theirs = other.tensors[name], tensor.isBitIdentical(to: theirs) else { return false }
        }
        return true
    }
}

/// A safetensors file that cannot be read or a set of tensors that cannot be written.
///
/// ``source`` names the file (or `"<memory>"`); ``problem`` says what is wrong.
public struct SafeTensorsError: Error, Equatable, CustomStringConvertible {
    /// What is wrong.
    public enum Problem: Equatable, Sendable {
        /// The file does not exist.
        case fileNotFound
        /// The path exists but is not a regular file (e.g. a directory).
        case notARegularFile
        /// Opening or reading the file failed with the given `errno` text.
        case readFailed(errno: Int32, message: String)
        /// Fewer than the 8 bytes of the header-length prefix.
        case fileTooShort(byteCount: Int)
        /// The declared header length exceeds ``SafeTensors/maxHeaderLength``.
        case headerTooLarge(declared: UInt64, limit: Int)
        /// The declared header length runs past the end of the file.
        case headerLengthBeyondFile(declared: UInt64, available: Int)
        /// The header bytes are not valid UTF-8.
        case headerNotUTF8
        /// The header is not valid JSON; `offset` is the byte offset within the header.
        case invalidJSON(offset: Int, reason: String)
        /// The header's top-level JSON value is not an object.
        case headerNotAnObject(found: String)
        /// The same top-level key (tensor name or `__metadata__`) appears twice.
        case duplicateName(String)
        /// `__metadata__` is not an object of strings.
        case invalidMetadata(key: String?, reason: String)
        /// A tensor entry is malformed: not an object, missing/duplicate/unknown field,
        /// or a field of the wrong JSON type.
        case invalidEntry(tensor: String, reason: String)
        /// A dtype other than `F32` (the only one this library stores).
        case unsupportedDtype(tensor: String, dtype: String)
        /// A shape dimension that is not a non-negative integer.
        case invalidShape(tensor: String, reason: String)
        /// The shape's element count (or byte count) overflows `Int`.
        case elementCountOverflow(tensor: String, shape: String)
        /// `data_offsets` is not `[begin, end]` with `0 ≤ begin ≤ end ≤ buffer length`.
        case invalidOffsets(tensor: String, reason: String)
        /// `end - begin` differs from element count × 4.
        case byteLengthMismatch(tensor: String, expected: Int, actual: Int)
        /// Two tensors share bytes of the buffer.
        case overlappingTensors(first: String, second: String)
        /// Bytes of the buffer that belong to no tensor (a hole, or trailing bytes).
        case uncoveredBytes(begin: Int, end: Int)
        /// A tensor may not be called `__metadata__` (the key is reserved).
        case reservedName(String)
    }

    /// The file path, or `"<memory>"` / the caller's label for in-memory bytes.
    public let source: String
    /// What is wrong.
    public let problem: Problem

    public init(source: String, problem: Problem) {
        self.source = source
        self.problem = problem
    }

    public var description: String {
        let what: String
        switch problem {
        case .fileNotFound: what = "no such file"
        case .notARegularFile: what = "not a regular file"
        case let .readFailed(code, message): what = "cannot read: \(message) (errno \(code))"
        case let .fileTooShort(n): what = "file is \(n) bytes, shorter than the 8-byte header length"
        case let .headerTooLarge(declared, limit):
            what = "declared header length \(declared) exceeds the limit of \(limit) bytes"
        case let .headerLengthBeyondFile(declared, available):
            what = "declared header length \(declared) exceeds the \(available) bytes after the length prefix"
        case .headerNotUTF8: what = "header is not valid UTF-8"
        case let .invalidJSON(offset, reason): what = "header is not valid JSON at byte \(offset): \(reason)"
        case let .headerNotAnObject(found): what = "header must be a JSON object, found \(found)"
        case let .duplicateName(name): what = "duplicate key '\(name)' in the header"
        case let .invalidMetadata(key, reason):
            what = "invalid __metadata__" + (key.map { " entry '\($0)'" } ?? "") + ": \(reason)"
        case let .invalidEntry(tensor, reason): what = "tensor '\(tensor)': \(reason)"
        case let .unsupportedDtype(tensor, dtype):
            what = "tensor '\(tensor)': unsupported dtype '\(dtype)' (only F32 is supported)"
        case let .invalidShape(tensor, reason): what = "tensor '\(tensor)': invalid shape: \(reason)"
        case let .elementCountOverflow(tensor, shape):
            what = "tensor '\(tensor)': shape \(shape) has more elements than can be addressed"
        case let .invalidOffsets(tensor, reason): what = "tensor '\(tensor)': invalid data_offsets: \(reason)"
        case let .byteLengthMismatch(tensor, expected, actual):
            what = "tensor '\(tensor)': shape needs \(expected) bytes but data_offsets span \(actual)"
        case let .overlappingTensors(first, second): what = "tensors '\(first)' and '\(second)' overlap in the buffer"
        case let .uncoveredBytes(begin, end):
            what = "buffer bytes \(begin)..<\(end) belong to no tensor (the format requires full coverage)"
        case let .reservedName(name): what = "'\(name)' is reserved and cannot name a tensor"
        }
        return "safetensors \(source): \(what)"
    }
}

/// Reads and writes the safetensors format (https://huggingface.co/docs/safetensors).
///
/// Layout: an 8-byte little-endian `UInt64` header length `N`, `N` bytes of UTF-8 JSON
/// mapping each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets
/// relative to the byte buffer) plus an optional `"__metadata__"` object of strings, then
/// the byte buffer of little-endian, row-major tensor data.
///
/// Only `F32` tensors are supported. The writer is deterministic: names in sorted (UTF-8
/// byte) order, compact JSON, the header padded with spaces to a multiple of 8 bytes as
/// the reference implementation does, tensors laid out in name order.
///
/// The reader treats every byte as untrusted and reports problems as
/// ``SafeTensorsError``; it never traps. It is as strict as the reference implementation:
/// the tensors must cover the buffer exactly (no holes, no overlaps, no trailing bytes).
/// Additionally, unknown fields in a tensor entry and duplicate keys are rejected rather
/// than ignored, because in a checkpoint they signal corruption. Sizes are validated
/// against the file length before anything is allocated.
public enum SafeTensors {
    /// The largest header accepted, in bytes (the reference implementation's limit).
    public static let maxHeaderLength = 100_000_000

    /// The reserved top-level key for string metadata.
    public static let metadataKey = "__metadata__"

    // MARK: Writing

    /// Encodes tensors and metadata as the bytes of a safetensors file.
    ///
    /// - Throws: ``SafeTensorsError`` with ``SafeTensorsError/Problem/reservedName(_:)`` if a
    ///   tensor is named `__metadata__`, or ``SafeTensorsError/Problem/headerTooLarge(declared:limit:)``
    ///   if names and metadata exceed ``maxHeaderLength`` bytes of JSON.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> [UInt8] {
        if tensors[metadataKey] != nil {
            throw SafeTensorsError(source: "<memory>", problem: .reservedName(metadataKey))
        }
        let names = tensors.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }

        var header: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func separator() {
            if !first { header.append(UInt8(ascii: ",")) }
            first = false
        }
        if !metadata.isEmpty {
            separator()
            SafeTensorsJSON.appendString(metadataKey, to: &header)
            header.append(contentsOf: Array(":{".utf8))
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (i, key) in keys.enumerated() {
                if i > 0 { header.append(UInt8(ascii: ",")) }
                SafeTensorsJSON.appendString(key, to: &header)
                header.append(UInt8(ascii: ":"))
                SafeTensorsJSON.appendString(metadata[key] ?? "", to: &header)
            }
            header.append(UInt8(ascii: "}"))
        }
        var offset = 0
        for name in names {
            guard let tensor = tensors[name] else { continue }
            let byteCount = tensor.count * MemoryLayout<Float>.size
            separator()
            SafeTensorsJSON.appendString(name, to: &header)
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            header.append(
                contentsOf: Array(
                    ":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + byteCount)]}".utf8)
            )
            offset += byteCount
        }
        header.append(UInt8(ascii: "}"))
        // Pad with spaces so the buffer starts 8-byte aligned (the reference writer does too).
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        // Never write a file our own reader (or the reference one) would refuse.
        guard header.count <= maxHeaderLength else {
            throw SafeTensorsError(
                source: "<memory>", problem: .headerTooLarge(declared: UInt64(header.count), limit: maxHeaderLength))
        }

        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        var length = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for name in names {
            guard let tensor = tensors[name] else { continue }
            tensor.withUnsafeBufferPointer { values in
                #if _endian(little)
                    out.append(contentsOf: UnsafeRawBufferPointer(values))
                #else
                    for v in values {
                        var bits = v.bitPattern.littleEndian
                        withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
                    }
                #endif
            }
        }
        return out
    }

    /// Encodes and writes a safetensors file atomically (see ``AtomicFile``): a reader, or a
    /// crash mid-write, sees either the previous file or the complete new one.
    ///
    /// - Throws: ``SafeTensorsError`` for unencodable input, ``AtomicFileError`` for I/O.
    public static func write(
        _ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String,
        createDirectories: Bool = false
    ) throws {
        let bytes: [UInt8]
        do {
            bytes = try encode(tensors, metadata: metadata)
        } catch let error as SafeTensorsError {
            throw SafeTensorsError(source: path, problem: error.problem)
        }
        try AtomicFile.write(bytes, to: path, createDirectories: createDirectories)
    }

    // MARK: Reading

    /// Reads and validates the safetensors file at `path`.
    ///
    /// - Throws: ``SafeTensorsError`` naming `path` (missing file, directory, I/O error, or
    ///   any format problem listed in ``SafeTensorsError/Problem``).
    public static func read(path: String) throws -> SafeTensorsFile {
        try decode(readAll(path), source: path)
    }

    /// Decodes and validates the bytes of a safetensors file.
    ///
    /// - Parameter source: names the bytes in errors (a file path, or `"<memory>"`).
    /// - Throws: ``SafeTensorsError``.
    public static func decode(_ bytes: [UInt8], source: String = "<memory>") throws -> SafeTensorsFile {
        func fail(_ problem: SafeTensorsError.Problem) -> SafeTensorsError {
            SafeTensorsError(source: source, problem: problem)
        }

        // 1. Length prefix.
        guard bytes.count >= 8 else { throw fail(.fileTooShort(byteCount: bytes.count)) }
        var declared: UInt64 = 0
        for i in 0..<8 { declared |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard declared <= UInt64(maxHeaderLength) else {
            throw fail(.headerTooLarge(declared: declared, limit: maxHeaderLength))
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw fail(.headerLengthBeyondFile(declared: declared, available: bytes.count - 8))
        }
        let bufferStart = 8 + headerLength
        let bufferLength = bytes.count - bufferStart

        // 2. Header JSON.
        let headerBytes = Array(bytes[8..<bufferStart])
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw fail(.headerNotUTF8) }
        let root: SafeTensorsJSON.Value
        do {
            root = try SafeTensorsJSON.parse(headerBytes)
        } catch {
            throw fail(.invalidJSON(offset: error.offset, reason: error.reason))
        }
        guard case let .object(members) = root else { throw fail(.headerNotAnObject(found: root.kindDescription)) }

        // 3. Entries: validate every field and size before allocating anything.
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        var seen = Set<String>()
        for (name, value) in members {
            guard seen.insert(name).inserted else { throw fail(.duplicateName(name)) }
            if name == metadataKey {
                metadata = try parseMetadata(value, fail: fail)
            } else {
                entries.append(try parseEntry(name: name, value, bufferLength: bufferLength, fail: fail))
            }
        }

        // 4. Coverage: sorted by offset, each tensor must start where the previous ended and
        //    the last must end at the end of the buffer.
        let ordered = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        var previous: String?
        for entry in ordered {
            if entry.begin < cursor {
                throw fail(.overlappingTensors(first: previous ?? "", second: entry.name))
            }
            if entry.begin > cursor { throw fail(.uncoveredBytes(begin: cursor, end: entry.begin)) }
            cursor = entry.end
            if entry.end > entry.begin { previous = entry.name }
        }
        if cursor != bufferLength { throw fail(.uncoveredBytes(begin: cursor, end: bufferLength)) }

        // 5. Copy the data out.
        var tensors: [String: Tensor] = [:]
        tensors.reserveCapacity(entries.count)
        bytes.withUnsafeBytes { raw in
            for entry in entries {
                var tensor = Tensor.uninitialized(shape: entry.shape)
                tensor.withUnsafeMutableBufferPointer { dst in
                    let src = UnsafeRawBufferPointer(
                        rebasing: raw[(bufferStart + entry.begin)..<(bufferStart + entry.end)])
                    #if _endian(little)
                        UnsafeMutableRawBufferPointer(dst).copyMemory(from: src)
                    #else
                        for i in 0..<dst.count {
                            dst[i] = Float(
                                bitPattern: UInt32(
                                    littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                        }
                    #endif
                }
                tensors[entry.name] = tensor
            }
        }
        return SafeTensorsFile(tensors: tensors, metadata: metadata)
    }

    // MARK: Header validation

    private static func parseMetadata(
        _ value: SafeTensorsJSON.Value, fail: (SafeTensorsError.Problem) -> SafeTensorsError
    ) throws -> [String: String] {
        switch value {
        case .null:
            return [:]  // The reference reader accepts `null` as "no metadata".
        case let .object(members):
            var metadata: [String: String] = [:]
            for (key, value) in members {
                guard case let .string(text) = value else {
                    throw fail(
                        .invalidMetadata(key: key, reason: "value must be a string, found \(value.kindDescription)"))
                }
                guard metadata.updateValue(text, forKey: key) == nil else {
                    throw fail(.invalidMetadata(key: key, reason: "duplicate key"))
                }
            }
            return metadata
        default:
            throw fail(
                .invalidMetadata(key: nil, reason: "must be an object of strings, found \(value.kindDescription)"))
        }
    }

    /// A JSON number that is an exact non-negative integer fitting `Int`, or a reason why not.
    private static func nonNegativeInteger(_ value: SafeTensorsJSON.Value) -> Result<Int, ReasonError> {
        guard case let .number(text) = value else {
            return .failure(ReasonError("\(value.kindDescription) is not an integer"))
        }
        guard text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") || $0 == UInt8(ascii: "-") })
        else {
            return .failure(ReasonError("\(text) is not an integer"))
        }
        if text.hasPrefix("-") { return .failure(ReasonError("\(text) is negative")) }
        guard let n = Int(text) else { return .failure(ReasonError("\(text) is too large")) }
        return .success(n)
    }

    /// A validated tensor entry: its shape and byte range within the buffer.
    private struct Entry {
        let name: String
        let shape: [Int]
        let begin: Int
        let end: Int
    }

    private struct ReasonError: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private static func parseEntry(
        name: String, _ value: SafeTensorsJSON.Value, bufferLength: Int,
        fail: (SafeTensorsError.Problem) -> SafeTensorsError
    ) throws -> Entry {
        guard case let .object(fields) = value else {
            throw fail(.invalidEntry(tensor: name, reason: "expected an object, found \(value.kindDescription)"))
        }
        var dtypeValue: SafeTensorsJSON.Value?
        var shapeValue: SafeTensorsJSON.Value?
        var offsetsValue: SafeTensorsJSON.Value?
        for (key, field) in fields {
            let alreadySet: Bool
            switch key {
            case "dtype": alreadySet = dtypeValue != nil; dtypeValue = field
            case "shape": alreadySet = shapeValue != nil; shapeValue = field
            case "data_offsets": alreadySet = offsetsValue != nil; offsetsValue = field
            default: throw fail(.invalidEntry(tensor: name, reason: "unknown field '\(key)'"))
            }
            if alreadySet { throw fail(.invalidEntry(tensor: name, reason: "duplicate field '\(key)'")) }
        }

        // dtype
        guard let dtypeValue else { throw fail(.invalidEntry(tensor: name, reason: "missing field 'dtype'")) }
        guard case let .string(dtype) = dtypeValue else {
            throw fail(
                .invalidEntry(tensor: name, reason: "'dtype' must be a string, found \(dtypeValue.kindDescription)"))
        }
        guard dtype == "F32" else { throw fail(.unsupportedDtype(tensor: name, dtype: dtype)) }

        // shape
        guard let shapeValue else { throw fail(.invalidEntry(tensor: name, reason: "missing field 'shape'")) }
        guard case let .array(dims) = shapeValue else {
            throw fail(
                .invalidEntry(tensor: name, reason: "'shape' must be an array, found \(shapeValue.kindDescription)"))
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (axis, dim) in dims.enumerated() {
            switch nonNegativeInteger(dim) {
            case let .success(n): shape.append(n)
            case let .failure(e): throw fail(.invalidShape(tensor: name, reason: "dimension \(axis): \(e.reason)"))
            }
        }
        var elements = 1
        var overflow = false
        for d in shape where !overflow {
            (elements, overflow) = elements.multipliedReportingOverflow(by: d)
        }
        var expectedBytes = 0
        if !overflow { (expectedBytes, overflow) = elements.multipliedReportingOverflow(by: MemoryLayout<Float>.size) }
        // Like the reference reader, an overflowing running product is rejected even when a
        // later zero dimension would bring the count back to 0.
        if overflow { throw fail(.elementCountOverflow(tensor: name, shape: "\(shape)")) }

        // data_offsets
        guard let offsetsValue else { throw fail(.invalidEntry(tensor: name, reason: "missing field 'data_offsets'")) }
        guard case let .array(offsets) = offsetsValue else {
            throw fail(
                .invalidEntry(
                    tensor: name, reason: "'data_offsets' must be an array, found \(offsetsValue.kindDescription)"))
        }
        guard offsets.count == 2 else {
            throw fail(.invalidOffsets(tensor: name, reason: "expected [begin, end], found \(offsets.count) elements"))
        }
        var bounds: [Int] = []
        for (label, offset) in zip(["begin", "end"], offsets) {
            switch nonNegativeInteger(offset) {
            case let .success(n): bounds.append(n)
            case let .failure(e): throw fail(.invalidOffsets(tensor: name, reason: "\(label): \(e.reason)"))
            }
        }
        let (begin, end) = (bounds[0], bounds[1])
        guard begin <= end else { throw fail(.invalidOffsets(tensor: name, reason: "begin \(begin) > end \(end)")) }
        guard end <= bufferLength else {
            throw fail(.invalidOffsets(tensor: name, reason: "end \(end) is beyond the \(bufferLength)-byte buffer"))
        }
        guard end - begin == expectedBytes else {
            throw fail(.byteLengthMismatch(tensor: name, expected: expectedBytes, actual: end - begin))
        }
        return Entry(name: name, shape: shape, begin: begin, end: end)
    }

    // MARK: File input

    /// Reads a whole regular file with POSIX calls so each failure has its errno text.
    static func readAll(_ path: String) throws -> [UInt8] {
        func fail(_ problem: SafeTensorsError.Problem) -> SafeTensorsError {
            SafeTensorsError(source: path, problem: problem)
        }
        func errnoFailure(_ code: Int32) -> SafeTensorsError {
            if code == ENOENT || code == ENOTDIR { return fail(.fileNotFound) }
            let message = strerror(code).map { String(cString: $0) } ?? "unknown error"
            return fail(.readFailed(errno: code, message: message))
        }
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else {
            if errno == EISDIR { throw fail(.notARegularFile) }
            throw errnoFailure(errno)
        }
        defer { _ = close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw errnoFailure(errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw fail(.notARegularFile) }

        // A (sparse or real) file larger than the machine's memory would make the allocation
        // trap; refuse it with a typed error instead.
        let size = max(Int(info.st_size), 0)
        guard UInt64(size) <= ProcessInfo.processInfo.physicalMemory else {
            throw fail(.readFailed(errno: ENOMEM, message: "the file's \(size) bytes exceed this machine's memory"))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size)
        // The chunk never exceeds the file (+1 byte to see the end): small files stay cheap.
        var chunk = [UInt8](repeating: 0, count: min(1 << 20, size + 1))
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw errnoFailure(errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }
}

/// `read(2)`; a free function because `SafeTensors.read(path:)` shadows the C name inside the enum.
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}
