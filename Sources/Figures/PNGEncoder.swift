/// A minimal PNG encoder (8-bit RGB), compressed with ``Deflate`` (LZ77 and fixed Huffman
/// codes) or stored, whichever is smaller.
///
/// Enough to write filter grids and sample images without a dependency; the files open
/// in any viewer. An 8x upscaled filter grid shrinks by about two orders of magnitude.
public enum PNGEncoder {
    /// Encodes `rgb` (height · width · 3 bytes, row-major, RGB) as a PNG file.
    public static func encode(rgb: [UInt8], width: Int, height: Int) throws -> [UInt8] {
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw VisualizationError.invalidImage(width: width, height: height, bytes: rgb.count)
        }
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (1 + width * 3))
        for y in 0..<height {
            raw.append(0)  // filter type: none
            raw.append(contentsOf: rgb[(y * width * 3)..<((y + 1) * width * 3)])
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header: [UInt8] = []
        header += bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        header += [8, 2, 0, 0, 0]  // bit depth 8, colour type RGB, deflate, adaptive filter, no interlace
        png += chunk("IHDR", header)
        let compressed = Deflate.zlib(raw)
        png += chunk("IDAT", compressed.count < raw.count ? compressed : zlibStored(raw))
        png += chunk("IEND", [])
        return png
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        return bigEndian(UInt32(data.count)) + typeBytes + data + bigEndian(crc32(typeBytes + data))
    }

    /// zlib stream of stored (uncompressed) deflate blocks of at most 65,535 bytes.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65_535, data.count - offset)
            let final: UInt8 = offset + n == data.count ? 1 : 0
            out.append(final)
            out += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        return out + bigEndian(adler32(data))
    }

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes {
            a = (a + UInt32(x)) % 65_521
            b = (b + a) % 65_521
        }
        return (b << 16) | a
    }
}

/// Errors of the figure writers.
public enum VisualizationError: Error, Equatable, CustomStringConvertible {
    case invalidImage(width: Int, height: Int, bytes: Int)
    case invalidFilters(shape: [Int], reason: String)
    case emptyChart(reason: String)

    public var description: String {
        switch self {
        case let .invalidImage(w, h, n): return "image \(w)x\(h) needs \(w * h * 3) RGB bytes, got \(n)"
        case let .invalidFilters(shape, reason): return "filters of shape \(shape): \(reason)"
        case let .emptyChart(reason): return "chart: \(reason)"
        }
    }
}
