import Foundation
import LayerwiseImages

/// Writes PNGs of any colour type and bit depth (stored deflate), independently of the
/// decoder under test, and makes temporary folders.
enum ImageFixtures {
    /// A PNG of `samples` (row-major, `channels` samples per pixel, 1 or 2 bytes each,
    /// big-endian for 16-bit) with PNG colour type `colorType` (0 gray, 2 RGB, 4 gray+alpha, 6 RGBA).
    static func png(width: Int, height: Int, colorType: UInt8, bitDepth: UInt8, samples: [UInt8]) -> [UInt8] {
        let rowBytes = samples.count / height
        var raw: [UInt8] = []
        for y in 0..<height { raw += [0] + samples[(y * rowBytes)..<((y + 1) * rowBytes)] }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65_535, raw.count - offset)
            zlib += [
                offset + n == raw.count ? 1 : 0, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF),
                UInt8((~n >> 8) & 0xFF),
            ]
            zlib += raw[offset..<(offset + n)]
            offset += n
        } while offset < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for x in raw { a = (a + UInt32(x)) % 65_521; b = (b + a) % 65_521 }
        zlib += be((b << 16) | a)
        let header = be(UInt32(width)) + be(UInt32(height)) + [bitDepth, colorType, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", zlib)
            + chunk("IEND", [])
    }

    /// An 8-bit RGB PNG.
    static func png(_ image: RGBImage) -> [UInt8] {
        png(width: image.width, height: image.height, colorType: 2, bitDepth: 8, samples: image.pixels)
    }

    /// An image whose pixel (x, y) is `color(x, y)`.
    static func image(width: Int, height: Int, _ color: (Int, Int) -> (UInt8, UInt8, UInt8)) -> RGBImage {
        var px: [UInt8] = []
        for y in 0..<height { for x in 0..<width { let c = color(x, y); px += [c.0, c.1, c.2] } }
        return RGBImage(width: width, height: height, pixels: px)
    }

    static func be(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        var c: UInt32 = 0xFFFF_FFFF
        for byte in body {
            c ^= UInt32(byte)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return be(UInt32(data.count)) + body + be(c ^ 0xFFFF_FFFF)
    }

    /// A fresh temporary folder.
    static func folder(_ name: String = #function) throws -> String {
        let path = NSTemporaryDirectory() + "layerwise-images-\(name.filter(\.isLetter))-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ bytes: [UInt8], _ path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}
