/// What went wrong while loading, building or transforming a dataset.
///
/// Every case names the file or option involved and, for file errors, the byte offset,
/// so a bad download can be located without a hex editor.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    /// No file or directory exists at `path`.
    case missingFile(path: String)
    /// `path` exists but is a directory (or other non-regular file) where a file was expected.
    case notAFile(path: String)
    /// `path` exists but is not a directory where one was expected.
    case notADirectory(path: String)
    /// The file has zero bytes.
    case emptyFile(path: String)
    /// The file size is not a multiple of the record length; the partial record starts at `offset`.
    case truncated(file: String, size: Int, recordLength: Int, offset: Int)
    /// A label byte lies outside `0..<limit`.
    case labelOutOfRange(file: String, record: Int, offset: Int, value: Int, limit: Int)
    /// A file header (e.g. `.npy`) or metadata file could not be parsed.
    case badHeader(file: String, reason: String)
    /// Sizes that must agree do not.
    case shapeMismatch(what: String, expected: String, got: String)
    /// An option or argument has a value that cannot work.
    case invalidOption(name: String, value: String, reason: String)
    /// Reading the file failed at the operating-system level.
    case readFailed(path: String, reason: String)
    /// Writing the file failed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .missingFile(path):
            return "no such file: \(path)"
        case let .notAFile(path):
            return "\(path) is not a regular file (is it a directory?)"
        case let .notADirectory(path):
            return "\(path) is not a directory"
        case let .emptyFile(path):
            return "\(path) is empty (0 bytes)"
        case let .truncated(file, size, recordLength, offset):
            return "\(file): size \(size) bytes is not a multiple of the record length \(recordLength); "
                + "a partial record of \(size - offset) bytes starts at byte offset \(offset) (truncated download?)"
        case let .labelOutOfRange(file, record, offset, value, limit):
            return "\(file): record \(record) (byte offset \(offset)) has label \(value), expected 0..<\(limit)"
        case let .badHeader(file, reason):
            return "\(file): bad header: \(reason)"
        case let .shapeMismatch(what, expected, got):
            return "\(what): expected \(expected), got \(got)"
        case let .invalidOption(name, value, reason):
            return "invalid \(name) = \(value): \(reason)"
        case let .readFailed(path, reason):
            return "could not read \(path): \(reason)"
        case let .writeFailed(path, reason):
            return "could not write \(path): \(reason)"
        }
    }
}
