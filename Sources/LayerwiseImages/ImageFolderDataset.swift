import Datasets
import Dispatch
import Foundation
import TensorCore

/// Options of ``ImageFolderDataset``.
public struct ImageFolderOptions: Sendable, Equatable {
    /// Side of the square images the dataset holds (default 32, the default recipe's input).
    public var size: Int
    /// How each image becomes `size`×`size`.
    public var crop: CropMode
    /// Skip corrupt, truncated or unsupported files (counted in ``ImageFolderDataset/report``)
    /// instead of throwing the first such error.
    public var skipUnreadable: Bool

    public init(size: Int = 32, crop: CropMode = .center, skipUnreadable: Bool = false) {
        self.size = size
        self.crop = crop
        self.skipUnreadable = skipUnreadable
    }
}

/// What loading a folder found.
public struct ImageFolderReport: Sendable, Equatable {
    /// Images decoded and kept.
    public var loaded: Int
    /// Files skipped (only with ``ImageFolderOptions/skipUnreadable``), with the reason.
    public var skipped: [(file: String, reason: String)]

    public static func == (a: Self, b: Self) -> Bool {
        a.loaded == b.loaded && a.skipped.map(\.file) == b.skipped.map(\.file)
            && a.skipped.map(\.reason) == b.skipped.map(\.reason)
    }
}

/// A folder of PNG and JPEG images as an ``ImageDataset`` of RGB `size`×`size` images.
///
/// Layouts, as torchvision's `ImageFolder`:
/// - `root/<class>/<file>`: one subfolder per class; labels are the indices of the sorted
///   folder names (``classNames``), files are taken in sorted order;
/// - a flat `root/<file>` folder: unlabelled images.
///
/// Files ending in `.png`, `.jpg` or `.jpeg` (any case) are read; hidden files and other
/// extensions are ignored, except other image formats (GIF, BMP, WebP, TIFF, …), which are
/// reported as unsupported. Grayscale, palette, RGBA and 16-bit PNGs become RGB8. Files
/// are decoded in parallel on all cores; the result does not depend on the core count.
public struct ImageFolderDataset: ImageDataset {
    /// The decoded, fitted images (C·H·W bytes).
    public let images: InMemoryImageDataset
    /// Class names (sorted folder names) when the folder has class subfolders.
    public let classNames: [String]?
    /// The kept files, relative to the root, in dataset order.
    public let files: [String]
    /// How many files were loaded and which were skipped.
    public let report: ImageFolderReport

    public var count: Int { images.count }
    public var imageShape: ImageShape { images.imageShape }
    public var classCount: Int? { images.classCount }
    public func label(at index: Int) -> Int? { images.label(at: index) }
    public func copyPixels(of index: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        images.copyPixels(of: index, into: buffer)
    }

    /// Loads every image under `root`.
    ///
    /// - Throws: ``ImageFolderError`` naming the folder or file: a missing or empty folder,
    ///   a class folder with no image, a mixed layout, an invalid size, or (unless
    ///   `skipUnreadable`) the first corrupt, truncated or unsupported file in sorted order.
    public init(root: String, options: ImageFolderOptions = ImageFolderOptions()) throws {
        guard options.size > 0, options.size <= 4096 else {
            throw ImageFolderError.invalidOption(name: "size", value: "\(options.size)", reason: "must lie in 1...4096")
        }
        let listing = try ImageFolderListing(root: root)
        let decoded = try Self.decode(
            listing.files.map { (root as NSString).appendingPathComponent($0) },
            options: options)
        let kept = decoded.keptIndices
        let labels = listing.labels.map { all in kept.map { all[$0] } }
        guard !kept.isEmpty else { throw ImageFolderError.noImages(path: root) }
        images = try InMemoryImageDataset(
            pixels: decoded.pixels, shape: ImageShape(channels: 3, height: options.size, width: options.size),
            labels: labels, classNames: listing.classNames)
        classNames = listing.classNames
        files = kept.map { listing.files[$0] }
        report = ImageFolderReport(loaded: kept.count, skipped: decoded.skipped)
    }

    /// Decodes and fits every file in parallel; returns the kept images' bytes in order.
    /// A random crop of file i draws from the generator of `cropIndices[i]` (default i).
    static func decode(
        _ paths: [String], options: ImageFolderOptions, cropIndices: [Int]? = nil
    ) throws
        -> (pixels: [UInt8], keptIndices: [Int], skipped: [(file: String, reason: String)])
    {
        let per = 3 * options.size * options.size
        var pixels = [UInt8](repeating: 0, count: paths.count * per)
        var failures = [ImageFolderError?](repeating: nil, count: paths.count)
        pixels.withUnsafeMutableBufferPointer { px in
            failures.withUnsafeMutableBufferPointer { fail in
                let (px, fail) = (UnsafeSendable(px), UnsafeSendable(fail))
                DispatchQueue.concurrentPerform(iterations: paths.count) { i in
                    do {
                        let image = try ImageCodec.decodeFile(paths[i])
                        ImageFitting.fit(
                            image, size: options.size, crop: options.crop, index: cropIndices?[i] ?? i,
                            into: px.value.baseAddress! + i * per)
                    } catch let error as ImageFolderError {
                        fail.value[i] = error
                    } catch {
                        fail.value[i] = .unreadable(file: paths[i], reason: "\(error)")
                    }
                }
            }
        }
        var kept: [Int] = []
        var skipped: [(file: String, reason: String)] = []
        for (i, failure) in failures.enumerated() {
            guard let failure else {
                kept.append(i)
                continue
            }
            if !options.skipUnreadable { throw failure }
            skipped.append((paths[i], failure.description))
        }
        if kept.count < paths.count {
            var compact = [UInt8]()
            compact.reserveCapacity(kept.count * per)
            for i in kept { compact += pixels[(i * per)..<((i + 1) * per)] }
            pixels = compact
        }
        return (pixels, kept, skipped)
    }
}

/// A pointer handed to the parallel decoders; each iteration writes only its own slot.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// The image files of a folder and their labels, in sorted order.
struct ImageFolderListing {
    var files: [String] = []
    var labels: [Int]?
    var classNames: [String]?

    init(root: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else {
            throw ImageFolderError.missingPath(path: root)
        }
        guard isDirectory.boolValue else { throw ImageFolderError.notADirectory(path: root) }
        let (top, folders) = try Self.entries(of: root)
        if folders.isEmpty {
            files = top
        } else {
            if let file = top.first { throw ImageFolderError.mixedLayout(path: root, topLevelFile: file) }
            var labels: [Int] = []
            for (label, folder) in folders.enumerated() {
                let path = (root as NSString).appendingPathComponent(folder)
                let inner = try Self.entries(of: path).files
                guard !inner.isEmpty else { throw ImageFolderError.emptyClass(path: path) }
                files += inner.map { "\(folder)/\($0)" }
                labels += [Int](repeating: label, count: inner.count)
            }
            self.labels = labels
            classNames = folders
        }
        guard !files.isEmpty else { throw ImageFolderError.noImages(path: root) }
    }

    /// The image files (including unsupported image formats) and subfolders of `path`, sorted.
    static func entries(of path: String) throws -> (files: [String], folders: [String]) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw ImageFolderError.unreadable(file: path, reason: "cannot list the folder")
        }
        var files: [String] = [], folders: [String] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            let full = (path as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                folders.append(name)
            } else {
                let ext = (name as NSString).pathExtension.lowercased()
                if ImageCodec.imageExtensions.contains(ext) || ImageCodec.unsupportedImageExtensions.contains(ext) {
                    files.append(name)
                }
            }
        }
        return (files, folders)
    }
}
