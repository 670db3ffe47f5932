/// What went wrong while reading a folder of images or one image file.
///
/// Every case names the file or folder involved.
public enum ImageFolderError: Error, Equatable, CustomStringConvertible {
    /// Nothing exists at `path`.
    case missingPath(path: String)
    /// `path` is not a directory where a folder was expected.
    case notADirectory(path: String)
    /// The folder (or, with class folders, every class folder) holds no image file.
    case noImages(path: String)
    /// A class folder holds no image file (labels would skip a class).
    case emptyClass(path: String)
    /// Image files sit both at the top level and in subfolders, so the layout is ambiguous.
    case mixedLayout(path: String, topLevelFile: String)
    /// The file could not be read from disk.
    case unreadable(file: String, reason: String)
    /// The file is damaged or truncated.
    case corrupt(file: String, reason: String)
    /// The file is valid but of a kind not decoded here (e.g. GIF, CMYK JPEG).
    case unsupported(file: String, reason: String)
    /// An option has a value that cannot work.
    case invalidOption(name: String, value: String, reason: String)
    /// Clips disagree where they must agree (frame counts).
    case inconsistentClips(path: String, reason: String)

    public var description: String {
        switch self {
        case let .missingPath(path): return "no such file or folder: \(path)"
        case let .notADirectory(path): return "\(path) is not a folder"
        case let .noImages(path): return "\(path) holds no PNG or JPEG image"
        case let .emptyClass(path): return "class folder \(path) holds no PNG or JPEG image"
        case let .mixedLayout(path, file):
            return "\(path) holds image files (e.g. \(file)) beside class folders; use one layout: "
                + "root/<class>/<file> or a flat folder"
        case let .unreadable(file, reason): return "could not read \(file): \(reason)"
        case let .corrupt(file, reason): return "\(file) is corrupt or truncated: \(reason)"
        case let .unsupported(file, reason): return "\(file) is not supported: \(reason)"
        case let .invalidOption(name, value, reason): return "invalid \(name) = \(value): \(reason)"
        case let .inconsistentClips(path, reason): return "\(path): \(reason)"
        }
    }
}
