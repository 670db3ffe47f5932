/// A small deflate compressor (RFC 1951, one block of fixed Huffman codes) with greedy LZ77
/// matching, wrapped as a zlib stream (RFC 1950) for PNG's IDAT.
///
/// Figures are mostly flat colour and repeated rows (upscaled filter grids), which LZ77 with
/// the fixed codes already shrinks by one to two orders of magnitude; no dynamic Huffman
/// tables are needed for that.
enum Deflate {
    static let lengthBase = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ]
    static let distanceExtra = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ]

    /// Bits written least-significant first, as deflate packs them.
    struct BitWriter {
        var bytes: [UInt8] = []
        var buffer: UInt64 = 0
        var count = 0

        mutating func write(_ value: Int, bits: Int) {
            buffer |= UInt64(value) << UInt64(count)
            count += bits
            while count >= 8 {
                bytes.append(UInt8(truncatingIfNeeded: buffer))
                buffer >>= 8
                count -= 8
            }
        }

        /// A Huffman code, which deflate stores most-significant bit first.
        mutating func code(_ value: Int, bits: Int) {
            var reversed = 0
            for i in 0..<bits where value & (1 << i) != 0 { reversed |= 1 << (bits - 1 - i) }
            write(reversed, bits: bits)
        }

        mutating func finish() -> [UInt8] {
            if count > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
            return bytes
        }
    }

    /// The fixed literal/length code of symbol `s` (0…287).
    static func literal(_ s: Int, _ w: inout BitWriter) {
        switch s {
        case 0...143: w.code(0x30 + s, bits: 8)
        case 144...255: w.code(0x190 + s - 144, bits: 9)
        case 256...279: w.code(s - 256, bits: 7)
        default: w.code(0xC0 + s - 280, bits: 8)
        }
    }

    static func match(length: Int, distance: Int, _ w: inout BitWriter) {
        let l = lengthBase.lastIndex { $0 <= length }!
        literal(257 + l, &w)
        w.write(length - lengthBase[l], bits: lengthExtra[l])
        let d = distanceBase.lastIndex { $0 <= distance }!
        w.code(d, bits: 5)
        w.write(distance - distanceBase[d], bits: distanceExtra[d])
    }

    /// `data` as a zlib stream: header, one final fixed-Huffman deflate block, Adler-32.
    static func zlib(_ data: [UInt8]) -> [UInt8] {
        var w = BitWriter()
        w.write(1, bits: 1)  // BFINAL
        w.write(1, bits: 2)  // BTYPE = 01, fixed Huffman codes
        let window = 32_768, maxLength = 258, chain = 32
        var head = [Int](repeating: -1, count: 1 << 15)
        var previous = [Int](repeating: -1, count: data.count)
        func hash(_ i: Int) -> Int {
            (Int(data[i]) << 10 ^ Int(data[i + 1]) << 5 ^ Int(data[i + 2])) & 0x7FFF
        }
        func insert(_ i: Int) {
            guard i + 2 < data.count else { return }
            let h = hash(i)
            previous[i] = head[h]
            head[h] = i
        }
        var i = 0
        while i < data.count {
            var bestLength = 0, bestDistance = 0
            if i + 2 < data.count {
                var candidate = head[hash(i)], tries = 0
                while candidate >= 0, i - candidate <= window, tries < chain {
                    var n = 0
                    while n < maxLength, i + n < data.count, data[candidate + n] == data[i + n] { n += 1 }
                    if n > bestLength { (bestLength, bestDistance) = (n, i - candidate) }
                    if n == maxLength { break }
                    candidate = previous[candidate]
                    tries += 1
                }
            }
            if bestLength >= 3 {
                match(length: bestLength, distance: bestDistance, &w)
                for j in i..<(i + bestLength) { insert(j) }
                i += bestLength
            } else {
                literal(Int(data[i]), &w)
                insert(i)
                i += 1
            }
        }
        literal(256, &w)  // end of block
        return [0x78, 0x01] + w.finish() + PNGEncoder.bigEndian(PNGEncoder.adler32(data))
    }
}
