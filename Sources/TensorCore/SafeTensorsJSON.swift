/// A small, strict JSON reader and writer for safetensors headers.
///
/// Hand-written instead of `JSONSerialization` because a header is untrusted input and we
/// need guarantees Foundation does not document: no trap on any byte sequence, bounded
/// recursion (deeply nested input cannot overflow the stack), integers kept as their exact
/// lexeme (`NSNumber` would silently round 2^63 + 1 to a double), and duplicate keys kept
/// so the reader can reject them instead of letting the last one win.
enum SafeTensorsJSON {
    /// A parsed JSON value. Objects keep their members in file order, duplicates included.
    indirect enum Value {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        /// The number's exact text, e.g. `"-12"`, `"1.5e3"`.
        case number(String)
        case bool(Bool)
        case null

        /// A short name for error messages ("an object", "a string", ...).
        var kindDescription: String {
            switch self {
            case .object: return "an object"
            case .array: return "an array"
            case .string: return "a string"
            case let .number(text): return "the number \(text)"
            case let .bool(b): return "the boolean \(b)"
            case .null: return "null"
            }
        }
    }

    /// A syntax error: byte offset into the parsed text and what is wrong there.
    struct SyntaxError: Error {
        let offset: Int
        let reason: String
    }

    /// The deepest nesting accepted. A valid header nests three levels deep
    /// (object → entry → shape array); 64 leaves ample room and keeps recursion bounded.
    static let maxDepth = 64

    /// Parses one JSON value spanning `bytes`, allowing surrounding whitespace
    /// (the safetensors writer pads the header with trailing spaces).
    static func parse(_ bytes: [UInt8]) throws(SyntaxError) -> Value {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.index != bytes.count {
            throw SyntaxError(offset: parser.index, reason: "unexpected data after the top-level value")
        }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        func fail(_ reason: String) -> SyntaxError { SyntaxError(offset: index, reason: reason) }

        mutating func parseValue(depth: Int) throws(SyntaxError) -> Value {
            guard index < bytes.count else { throw fail("unexpected end of text, expected a value") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); return .null
            default: throw fail("unexpected byte 0x\(String(bytes[index], radix: 16)), expected a value")
            }
        }

        mutating func expectLiteral(_ literal: StaticString) throws(SyntaxError) {
            let text = literal.utf8Start
            for k in 0..<literal.utf8CodeUnitCount {
                guard index < bytes.count, bytes[index] == text[k] else {
                    throw fail("invalid literal, expected \(literal)")
                }
                index += 1
            }
        }

        mutating func parseObject(depth: Int) throws(SyntaxError) -> Value {
            guard depth <= SafeTensorsJSON.maxDepth else {
                throw fail("nesting deeper than \(SafeTensorsJSON.maxDepth) levels")
            }
            index += 1  // "{"
            var members: [(key: String, value: Value)] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw fail("expected a string key")
                }
                let key = try parseString()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                    throw fail("expected ':' after a key")
                }
                index += 1
                skipWhitespace()
                let value = try parseValue(depth: depth)
                members.append((key, value))
                skipWhitespace()
                guard index < bytes.count else { throw fail("unexpected end of text inside an object") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                throw fail("expected ',' or '}' in an object")
            }
        }

        mutating func parseArray(depth: Int) throws(SyntaxError) -> Value {
            guard depth <= SafeTensorsJSON.maxDepth else {
                throw fail("nesting deeper than \(SafeTensorsJSON.maxDepth) levels")
            }
            index += 1  // "["
            var elements: [Value] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(elements) }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth))
                skipWhitespace()
                guard index < bytes.count else { throw fail("unexpected end of text inside an array") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(elements) }
                throw fail("expected ',' or ']' in an array")
            }
        }

        /// Parses `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` and returns its text.
        mutating func parseNumber() throws(SyntaxError) -> String {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, isDigit(bytes[index]) else { throw fail("expected a digit in a number") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else {
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard index < bytes.count, isDigit(bytes[index]) else { throw fail("expected a digit after '.'") }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard index < bytes.count, isDigit(bytes[index]) else { throw fail("expected a digit in an exponent") }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

        /// Parses a string starting at its opening quote. The text was validated as UTF-8
        /// before parsing, so raw bytes are copied through; escapes are decoded.
        mutating func parseString() throws(SyntaxError) -> String {
            index += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard index < bytes.count else { throw fail("unterminated string") }
                let b = bytes[index]
                switch b {
                case UInt8(ascii: "\""):
                    index += 1
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw fail("unterminated escape") }
                    let e = bytes[index]
                    index += 1
                    switch e {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5C)
                    case UInt8(ascii: "/"): out.append(0x2F)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        let scalar = try parseUnicodeEscape()
                        out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default:
                        index -= 1
                        throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                    }
                case 0x00..<0x20:
                    throw fail("unescaped control character 0x\(String(b, radix: 16)) in a string")
                default:
                    out.append(b)
                    index += 1
                }
            }
        }

        /// Decodes the `XXXX` after `\u`, combining a UTF-16 surrogate pair when present.
        mutating func parseUnicodeEscape() throws(SyntaxError) -> Unicode.Scalar {
            let high = try parseHex4()
            if high >= 0xD800, high < 0xDC00 {
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                else {
                    throw fail("unpaired UTF-16 high surrogate in \\u escape")
                }
                index += 2
                let low = try parseHex4()
                guard low >= 0xDC00, low < 0xE000 else { throw fail("invalid UTF-16 low surrogate in \\u escape") }
                let value = 0x10000 + ((UInt32(high) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                guard let scalar = Unicode.Scalar(value) else { throw fail("invalid \\u escape") }
                return scalar
            }
            guard let scalar = Unicode.Scalar(UInt32(high)) else {
                throw fail("unpaired UTF-16 surrogate in \\u escape")
            }
            return scalar
        }

        mutating func parseHex4() throws(SyntaxError) -> UInt16 {
            var value: UInt16 = 0
            for _ in 0..<4 {
                guard index < bytes.count else { throw fail("unterminated \\u escape") }
                let b = bytes[index]
                let digit: UInt8
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
                default: throw fail("invalid hex digit in \\u escape")
                }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }
    }

    // MARK: Writing

    /// Appends `text` as a JSON string literal (quotes included). Non-ASCII is written as
    /// raw UTF-8; quote, backslash and control characters are escaped.
    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in text.utf8 {
            switch b {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [
                    0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                    hex[Int(b >> 4)], hex[Int(b & 0xF)],
                ])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
