import Foundation

/// An independent reader of TensorBoard event files for the tests: TFRecord framing with
/// both CRCs checked (a bitwise CRC-32C, not the writer's table), and a generic protobuf
/// field parser.
enum EventFileReader {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// One `Summary.Value`.
    struct Value {
        var tag = ""
        var scalar: Float?
        var image: (width: Int, height: Int, png: [UInt8])?
        var histogram: [Int: [Field]]?
    }

    struct Event {
        var wallTime: Double = 0
        var step = 0
        var fileVersion: String?
        var values: [Value] = []
    }

    enum Field {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes([UInt8])
    }

    static func crc32c(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = ~0
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    static func le<T: FixedWidthInteger>(_ b: ArraySlice<UInt8>) -> T {
        b.reversed().reduce(T(0)) { $0 << 8 | T($1) }
    }

    /// The records of a TFRecord file; throws on a bad length or a CRC mismatch.
    static func records(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            guard i + 12 <= bytes.count else { throw Failure(description: "truncated header at \(i)") }
            let lengthBytes = bytes[i..<(i + 8)]
            let n = Int(le(lengthBytes) as UInt64)
            guard le(bytes[(i + 8)..<(i + 12)]) as UInt32 == masked(crc32c(lengthBytes)) else {
                throw Failure(description: "length CRC mismatch at \(i)")
            }
            guard i + 16 + n <= bytes.count else { throw Failure(description: "truncated record at \(i)") }
            let data = bytes[(i + 12)..<(i + 12 + n)]
            guard le(bytes[(i + 12 + n)..<(i + 16 + n)]) as UInt32 == masked(crc32c(data)) else {
                throw Failure(description: "data CRC mismatch at \(i)")
            }
            out.append(Array(data))
            i += 16 + n
        }
        return out
    }

    /// Protobuf fields by number, in order.
    static func fields(_ b: [UInt8]) throws -> [Int: [Field]] {
        var out: [Int: [Field]] = [:]
        var i = 0
        func varint() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < b.count, shift < 64 else { throw Failure(description: "bad varint") }
                let byte = b[i]
                i += 1
                v |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return v }
                shift += 7
            }
        }
        while i < b.count {
            let key = try varint()
            let field = Int(key >> 3)
            let value: Field
            switch key & 7 {
            case 0: value = .varint(try varint())
            case 1:
                guard i + 8 <= b.count else { throw Failure(description: "short fixed64") }
                value = .fixed64(le(b[i..<(i + 8)]))
                i += 8
            case 5:
                guard i + 4 <= b.count else { throw Failure(description: "short fixed32") }
                value = .fixed32(le(b[i..<(i + 4)]))
                i += 4
            case 2:
                let n = Int(try varint())
                guard i + n <= b.count else { throw Failure(description: "short bytes") }
                value = .bytes(Array(b[i..<(i + n)]))
                i += n
            default: throw Failure(description: "wire type \(key & 7)")
            }
            out[field, default: []].append(value)
        }
        return out
    }

    static func bytes(_ f: [Field]?) -> [UInt8]? { if case let .bytes(b)? = f?.first { return b } else { return nil } }
    static func int(_ f: [Field]?) -> Int { if case let .varint(v)? = f?.first { return Int(v) } else { return 0 } }

    static func events(path: String) throws -> [Event] {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        return try records(data).map { record in
            let f = try fields(record)
            var e = Event()
            if case let .fixed64(w)? = f[1]?.first { e.wallTime = Double(bitPattern: w) }
            e.step = int(f[2])
            e.fileVersion = bytes(f[3]).map { String(decoding: $0, as: UTF8.self) }
            if let summary = bytes(f[5]) {
                for case let .bytes(v) in try fields(summary)[1] ?? [] {
                    let vf = try fields(v)
                    var value = Value(tag: String(decoding: bytes(vf[1]) ?? [], as: UTF8.self))
                    if case let .fixed32(s)? = vf[2]?.first { value.scalar = Float(bitPattern: s) }
                    if let image = bytes(vf[4]) {
                        let imf = try fields(image)
                        value.image = (int(imf[2]), int(imf[1]), bytes(imf[4]) ?? [])
                    }
                    if let h = bytes(vf[5]) { value.histogram = try fields(h) }
                    e.values.append(value)
                }
            }
            return e
        }
    }
}
