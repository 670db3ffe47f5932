import CImageCodecs
import Foundation

/// An image decoded to 8-bit RGB: `height` rows of `width` RGB triplets.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// `height · width · 3` bytes, row-major, RGB.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// PNG and JPEG decoding (libpng, libjpeg-turbo) and JPEG encoding, with typed errors.
///
/// The libraries' error paths (longjmp) stay inside a small C shim, so a damaged file is
/// an error, never a crash or an exit of the process.
public enum ImageCodec {
    /// The formats recognised by their first bytes.
    public enum Format: String, Sendable {
        case png, jpeg
    }

    /// File extensions (lower case) read as images.
    public static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]
    /// Extensions of image formats that exist but are not decoded here: reported, not ignored.
    public static let unsupportedImageExtensions: Set<String> = ["gif", "bmp", "webp", "tif", "tiff", "heic", "avif"]

    /// The format of `bytes` from its signature, or nil.
    public static func format(of bytes: UnsafeRawBufferPointer) -> Format? {
        if bytes.count >= 8, bytes.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return .png
        }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        return nil
    }

    /// Decodes a PNG or JPEG file's bytes to RGB8; `file` names it in errors.
    public static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> RGBImage {
        guard let format = format(of: bytes) else {
            if bytes.isEmpty { throw ImageFolderError.corrupt(file: file, reason: "the file is empty") }
            throw ImageFolderError.unsupported(file: file, reason: "neither a PNG nor a JPEG signature")
        }
        var image = lw_rgb_image()
        var message = [CChar](repeating: 0, count: 256)
        let base = bytes.bindMemory(to: UInt8.self).baseAddress!
        let status: Int32 = message.withUnsafeMutableBufferPointer { m in
            switch format {
            case .png: return lw_decode_png(base, bytes.count, &image, m.baseAddress, m.count)
            case .jpeg: return lw_decode_jpeg(base, bytes.count, &image, m.baseAddress, m.count)
            }
        }
        defer { lw_free(image.pixels) }
        let reason = "\(format.rawValue.uppercased()): " + text(message)
        switch Int(status) {
        case LW_OK:
            let count = Int(image.width) * Int(image.height) * 3
            return RGBImage(
                width: Int(image.width), height: Int(image.height),
                pixels: Array(UnsafeBufferPointer(start: image.pixels, count: count)))
        case LW_UNSUPPORTED, LW_TOO_LARGE: throw ImageFolderError.unsupported(file: file, reason: reason)
        default: throw ImageFolderError.corrupt(file: file, reason: reason)
        }
    }

    /// Reads and decodes the image file at `path`.
    public static func decodeFile(_ path: String) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageFolderError.unreadable(file: path, reason: "cannot open the file")
        }
        return try data.withUnsafeBytes { try decode($0, file: path) }
    }

    /// Encodes an RGB8 image as a baseline JPEG of `quality` (1...100).
    public static func encodeJPEG(_ image: RGBImage, quality: Int = 90) throws -> [UInt8] {
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            throw ImageFolderError.invalidOption(
                name: "image", value: "\(image.width)x\(image.height), \(image.pixels.count) bytes",
                reason: "needs width · height · 3 bytes")
        }
        guard (1...100).contains(quality) else {
            throw ImageFolderError.invalidOption(name: "quality", value: "\(quality)", reason: "must lie in 1...100")
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { px in
            message.withUnsafeMutableBufferPointer { m in
                lw_encode_jpeg(
                    px.baseAddress, Int32(image.width), Int32(image.height), Int32(quality), &out, &size,
                    m.baseAddress, m.count)
            }
        }
        defer { lw_free(out) }
        guard Int(status) == LW_OK, let out else {
            throw ImageFolderError.invalidOption(
                name: "JPEG encoding", value: "\(image.width)x\(image.height)", reason: text(message))
        }
        return Array(UnsafeBufferPointer(start: out, count: Int(size)))
    }

    /// A NUL-terminated C message as a String.
    static func text(_ message: [CChar]) -> String {
        String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
