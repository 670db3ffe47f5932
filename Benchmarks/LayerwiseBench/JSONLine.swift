import Foundation

/// One value of a JSON line. Only what the benchmark prints.
enum JSONValue {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case array([JSONValue])
    case null

    var text: String {
        switch self {
        case let .int(v): return String(v)
        case let .double(v):
            // Python's json.dumps prints NaN/inf as bare words; we print null (valid JSON).
            guard v.isFinite else { return "null" }
            if v == v.rounded(), abs(v) < 1e15 { return String(format: "%.1f", v) }
            return "\(v)"
        case let .string(s): return JSONValue.quote(s)
        case let .bool(b): return b ? "true" : "false"
        case let .array(a): return "[" + a.map(\.text).joined(separator: ", ") + "]"
        case .null: return "null"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// A JSON object that keeps its keys in insertion order, so our lines read like the
/// reference's (`json.dumps` of a dict keeps insertion order too).
struct JSONLine {
    private(set) var fields: [(key: String, value: JSONValue)] = []

    init() {}

    subscript(key: String) -> JSONValue? {
        get { fields.first(where: { $0.key == key })?.value }
        set {
            if let i = fields.firstIndex(where: { $0.key == key }) {
                if let v = newValue { fields[i].value = v } else { fields.remove(at: i) }
            } else if let v = newValue {
                fields.append((key, v))
            }
        }
    }

    mutating func set(_ key: String, _ v: Int) { self[key] = .int(v) }
    mutating func set(_ key: String, _ v: Double) { self[key] = .double(v) }
    /// Rounded to `places` decimals like Python's `round(x, places)` (ties away from zero).
    mutating func set(_ key: String, _ v: Double, places: Int) { self[key] = .double(roundTo(v, places)) }
    mutating func set(_ key: String, _ v: String) { self[key] = .string(v) }
    mutating func set(_ key: String, _ v: Bool) { self[key] = .bool(v) }
    mutating func set(_ key: String, _ v: [Double], places: Int) {
        self[key] = .array(v.map { .double(roundTo($0, places)) })
    }

    var text: String {
        "{" + fields.map { JSONValue.quote($0.key) + ": " + $0.value.text }.joined(separator: ", ") + "}"
    }
}

/// `x` rounded to `places` decimal places.
func roundTo(_ x: Double, _ places: Int) -> Double {
    guard x.isFinite else { return x }
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    return (x * scale).rounded() / scale
}
