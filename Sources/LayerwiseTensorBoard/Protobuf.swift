/// A hand-written protobuf encoder for the few messages of TensorBoard's event format
/// (`tensorflow.Event`, `Summary`, `Summary.Image`, `HistogramProto`).
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    enum WireType: UInt64 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ type: WireType) { varint(UInt64(field) << 3 | type.rawValue) }

    mutating func int(_ field: Int, _ value: Int) {
        key(field, .varint)
        varint(UInt64(bitPattern: Int64(value)))
    }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, .fixed64)
        bytes += TFRecord.littleEndian(value.bitPattern)
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        bytes += TFRecord.littleEndian(value.bitPattern)
    }

    mutating func data(_ field: Int, _ value: [UInt8]) {
        key(field, .lengthDelimited)
        varint(UInt64(value.count))
        bytes += value
    }

    mutating func string(_ field: Int, _ value: String) { data(field, Array(value.utf8)) }

    /// A packed `repeated double`.
    mutating func packedDoubles(_ field: Int, _ values: [Double]) {
        data(field, values.flatMap { TFRecord.littleEndian($0.bitPattern) })
    }
}

/// The `Summary.Value` payloads written here.
enum SummaryValue {
    case scalar(Float)
    case image(png: [UInt8], width: Int, height: Int)
    case histogram(Histogram)

    /// `Summary.Value { tag = 1; simple_value = 2 | image = 4 | histo = 5 }`.
    func encoded(tag: String) -> [UInt8] {
        var w = ProtobufWriter()
        w.string(1, tag)
        switch self {
        case let .scalar(v):
            w.float(2, v)
        case let .image(png, width, height):
            var image = ProtobufWriter()  // Summary.Image { height 1, width 2, colorspace 3, encoded 4 }
            image.int(1, height)
            image.int(2, width)
            image.int(3, 3)
            image.data(4, png)
            w.data(4, image.bytes)
        case let .histogram(h):
            w.data(5, h.encoded())
        }
        return w.bytes
    }
}

/// `tensorflow.Event { wall_time = 1; step = 2; file_version = 3 | summary = 5 }`.
enum EventRecord {
    static func fileVersion(wallTime: Double) -> [UInt8] {
        var w = ProtobufWriter()
        w.double(1, wallTime)
        w.string(3, "brain.Event:2")
        return w.bytes
    }

    static func summary(wallTime: Double, step: Int, tag: String, value: SummaryValue) -> [UInt8] {
        var summary = ProtobufWriter()  // Summary { repeated Value value = 1 }
        summary.data(1, value.encoded(tag: tag))
        var w = ProtobufWriter()
        w.double(1, wallTime)
        w.int(2, step)
        w.data(5, summary.bytes)
        return w.bytes
    }
}
