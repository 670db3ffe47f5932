import Foundation

/// How a 4-D image array in an `.npy` file is ordered.
public enum NPYLayout: String, Sendable, CaseIterable {
    /// N × H × W × C (NumPy / TensorFlow convention); converted to CHW on load.
    case nhwc
    /// N × C × H × W (PyTorch convention); used as is.
    case nchw
}

/// Reader and writer for NumPy `.npy` files holding 8-bit images and integer labels.
///
/// The header is parsed strictly (format versions 1.0, 2.0 and 3.0): magic string,
/// version, header length within the file, and exactly the keys `descr`,
/// `fortran_order` (must be `False`) and `shape`. Shapes are checked against the
/// file size **before** any data is allocated, so a corrupt header cannot trigger a
/// huge allocation.
public enum NPY {
    /// A parsed `.npy` header.
    public struct Header: Sendable, Equatable {
        /// The dtype string, e.g. `|u1` or `<i8`.
        public var descr: String
        public var fortranOrder: Bool
        public var shape: [Int]
        /// Byte offset of the array data.
        public var dataOffset: Int
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// Loads 8-bit images (and optionally labels) saved with NumPy.
    ///
    /// - Parameters:
    ///   - path: a `uint8` array of shape N×H×W×C (`.nhwc`), N×C×H×W (`.nchw`) or N×H×W (grayscale).
    ///   - labelsPath: a 1-D integer array of N labels (`<i8`, `<i4`, `<i2`, `|i1`, `|u1`), or nil.
    ///   - layout: the order of a 4-D image array.
    /// - Throws: ``DatasetError`` naming the file and what is wrong.
    public static func loadImages(
        path: String, labelsPath: String? = nil, layout: NPYLayout = .nhwc
    ) throws -> InMemoryImageDataset {
        let size = try FileReading.regularFileSize(path)
        let header = try readHeader(path: path, fileSize: size)
        let (n, shape) = try imageGeometry(header, layout: layout, path: path)
        let raw = try FileReading.readBytes(path, offset: header.dataOffset, count: size - header.dataOffset)
        let labels = try labelsPath.map {
            try checkedLabels(loadLabels(path: $0), imageCount: n, path: path, labelsPath: $0)
        }
        return try dataset(raw: raw, count: n, shape: shape, header: header, layout: layout, labels: labels)
    }

    /// Decodes the bytes of an image `.npy` file (and optionally of a labels file) held in
    /// memory, with exactly the checks of ``loadImages(path:labelsPath:layout:)``.
    ///
    /// - Parameters:
    ///   - source, labelsSource: name the bytes in errors.
    /// - Throws: ``DatasetError`` naming `source` or `labelsSource` and what is wrong.
    public static func decodeImages(
        _ bytes: [UInt8], labels labelBytes: [UInt8]? = nil, layout: NPYLayout = .nhwc,
        source: String = "<memory>", labelsSource: String = "<memory labels>"
    ) throws -> InMemoryImageDataset {
        let header = try decodeHeader(bytes, source: source)
        let (n, shape) = try imageGeometry(header, layout: layout, path: source)
        let raw = Array(bytes[header.dataOffset...])
        let labels = try labelBytes.map {
            try checkedLabels(
                decodeLabels($0, source: labelsSource), imageCount: n, path: source, labelsPath: labelsSource)
        }
        return try dataset(raw: raw, count: n, shape: shape, header: header, layout: layout, labels: labels)
    }

    /// Validates and parses the header of `.npy` bytes held in memory.
    static func decodeHeader(_ bytes: [UInt8], source: String) throws -> Header {
        guard bytes.count >= 10 else {
            throw DatasetError.badHeader(
                file: source, reason: "file of \(bytes.count) bytes is too short for an .npy header")
        }
        return try parseHeader(path: source, fileSize: bytes.count, prefix: Array(bytes.prefix(12))) { offset, count in
            Array(bytes[offset..<(offset + count)])  // parseHeader checked offset + count ≤ fileSize
        }
    }

    /// The image count and shape an image header describes (uint8, rank 3 or 4, no zero dimension).
    static func imageGeometry(
        _ header: Header, layout: NPYLayout, path: String
    ) throws -> (count: Int, shape: ImageShape) {
        guard ["|u1", "<u1", ">u1", "u1"].contains(header.descr) else {
            throw DatasetError.badHeader(
                file: path, reason: "images must be uint8 ('|u1'), found descr '\(header.descr)'")
        }
        let shape: ImageShape
        switch header.shape.count {
        case 3:
            shape = ImageShape(channels: 1, height: header.shape[1], width: header.shape[2])
        case 4:
            shape =
                layout == .nhwc
                ? ImageShape(channels: header.shape[3], height: header.shape[1], width: header.shape[2])
                : ImageShape(channels: header.shape[1], height: header.shape[2], width: header.shape[3])
        default:
            throw DatasetError.badHeader(
                file: path, reason: "images must be a 4-D (or 3-D grayscale) array, found shape \(header.shape)")
        }
        let n = header.shape[0]
        guard n > 0, shape.channels > 0, shape.height > 0, shape.width > 0 else {
            throw DatasetError.badHeader(file: path, reason: "shape \(header.shape) has a zero dimension")
        }
        return (n, shape)
    }

    /// Labels that match the image count and are usable class indices.
    static func checkedLabels(_ l: [Int], imageCount n: Int, path: String, labelsPath: String) throws -> [Int] {
        guard l.count == n else {
            throw DatasetError.shapeMismatch(
                what: "labels in \(labelsPath)", expected: "\(n) (one per image in \(path))", got: "\(l.count)")
        }
        for (i, v) in l.enumerated() where v < 0 || v == Int.max {
            throw DatasetError.invalidOption(
                name: "\(labelsPath) label[\(i)]", value: "\(v)",
                reason: v < 0 ? "labels must be ≥ 0" : "labels must be < Int.max")
        }
        return l
    }

    /// The dataset of `raw` pixel bytes (HWC interleaved ones converted to planar CHW).
    static func dataset(
        raw: [UInt8], count n: Int, shape: ImageShape, header: Header, layout: NPYLayout, labels: [Int]?
    ) throws -> InMemoryImageDataset {
        var pixels: [UInt8]
        if header.shape.count == 4 && layout == .nhwc && shape.channels > 1 {
            // Interleaved HWC → planar CHW, image by image.
            let c = shape.channels, hw = shape.height * shape.width, per = shape.elementCount
            pixels = [UInt8](repeating: 0, count: raw.count)
            raw.withUnsafeBufferPointer { src in
                pixels.withUnsafeMutableBufferPointer { dst in
                    for img in 0..<n {
                        let s = src.baseAddress! + img * per, d = dst.baseAddress! + img * per
                        for p in 0..<hw {
                            for ch in 0..<c { d[ch * hw + p] = s[p * c + ch] }
                        }
                    }
                }
            }
        } else {
            pixels = raw
        }
        return try InMemoryImageDataset(pixels: pixels, shape: shape, labels: labels)
    }

    /// Loads a 1-D integer array (`<i8`, `<i4`, `<i2`, `|i1`, `|u1`, `<u2`, `<u4`, `<u8`).
    public static func loadLabels(path: String) throws -> [Int] {
        let size = try FileReading.regularFileSize(path)
        let header = try readHeader(path: path, fileSize: size)
        let itemSize = try labelItemSize(header, path: path)
        let raw = try FileReading.readBytes(path, offset: header.dataOffset, count: size - header.dataOffset)
        return try integers(raw, header: header, itemSize: itemSize, path: path)
    }

    /// Decodes the bytes of a labels `.npy` file held in memory, with exactly the checks of
    /// ``loadLabels(path:)``.
    /// - Throws: ``DatasetError`` naming `source`.
    public static func decodeLabels(_ bytes: [UInt8], source: String = "<memory>") throws -> [Int] {
        let header = try decodeHeader(bytes, source: source)
        let itemSize = try labelItemSize(header, path: source)
        return try integers(Array(bytes[header.dataOffset...]), header: header, itemSize: itemSize, path: source)
    }

    /// The item size of a 1-D integer header (rank and dtype checked).
    static func labelItemSize(_ header: Header, path: String) throws -> Int {
        guard header.shape.count == 1 else {
            throw DatasetError.badHeader(file: path, reason: "labels must be a 1-D array, found shape \(header.shape)")
        }
        return try integerType(header.descr, file: path).0
    }

    /// The little-endian integers of `raw` (the header's element count of them).
    static func integers(_ raw: [UInt8], header: Header, itemSize: Int, path: String) throws -> [Int] {
        let signed = try integerType(header.descr, file: path).1
        let n = header.shape[0]
        // n one-byte labels become n 8-byte Ints: check that fits too (see FileReading.readBytes).
        guard UInt64(n) <= ProcessInfo.processInfo.physicalMemory / UInt64(MemoryLayout<Int>.stride) else {
            throw DatasetError.readFailed(path: path, reason: "\(n) labels need more memory than this machine has")
        }
        var out = [Int](repeating: 0, count: n)
        for i in 0..<n {
            var v: UInt64 = 0
            for b in 0..<itemSize { v |= UInt64(raw[i * itemSize + b]) << (8 * UInt64(b)) }  // little-endian
            if signed && itemSize < 8 && (v >> (8 * UInt64(itemSize) - 1)) & 1 == 1 {
                v |= ~UInt64(0) << (8 * UInt64(itemSize))  // sign-extend
            }
            let value = Int64(bitPattern: v)
            if !signed && itemSize == 8 && v > UInt64(Int.max) {
                throw DatasetError.invalidOption(
                    name: "\(path) label[\(i)]", value: "\(v)", reason: "does not fit in Int")
            }
            out[i] = Int(value)
        }
        return out
    }

    /// Byte size and signedness of a supported integer dtype.
    static func integerType(_ descr: String, file: String) throws -> (Int, Bool) {
        switch descr {
        case "|u1", "<u1", "u1": return (1, false)
        case "|i1", "<i1", "i1": return (1, true)
        case "<i2": return (2, true)
        case "<u2": return (2, false)
        case "<i4": return (4, true)
        case "<u4": return (4, false)
        case "<i8": return (8, true)
        case "<u8": return (8, false)
        default:
            throw DatasetError.badHeader(
                file: file, reason: "unsupported label dtype '\(descr)' (use little-endian integers such as '<i8')")
        }
    }

    static func itemSize(_ descr: String) -> Int? {
        guard let last = descr.last, let n = Int(String(last)), descr.count >= 2 else { return nil }
        let kind = descr[descr.index(descr.endIndex, offsetBy: -2)]
        return "iuf".contains(kind) ? n : nil
    }

    /// Reads and validates the header of the `.npy` file at `path` (of `fileSize` bytes).
    public static func readHeader(path: String, fileSize: Int) throws -> Header {
        let prefixLength = 8
        guard fileSize >= prefixLength + 2 else {
            throw DatasetError.badHeader(
                file: path, reason: "file of \(fileSize) bytes is too short for an .npy header")
        }
        let prefix = try FileReading.readBytes(path, count: Swift.min(fileSize, 12))
        return try parseHeader(path: path, fileSize: fileSize, prefix: prefix) { offset, count in
            try FileReading.readBytes(path, offset: offset, count: count)
        }
    }

    /// Parses a header from bytes (`prefix` holds at least the first 10 bytes;
    /// `read(offset, count)` fetches more).
    static func parseHeader(
        path: String, fileSize: Int, prefix: [UInt8], read: (Int, Int) throws -> [UInt8]
    ) throws -> Header {
        guard prefix.count >= 10, Array(prefix[0..<6]) == magic else {
            throw DatasetError.badHeader(file: path, reason: "missing the \\x93NUMPY magic string at byte 0")
        }
        let major = Int(prefix[6]), minor = Int(prefix[7])
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(prefix[8]) | Int(prefix[9]) << 8
            headerStart = 10
        case 2, 3:
            guard prefix.count >= 12 else {
                throw DatasetError.badHeader(file: path, reason: "file too short for a version \(major) header length")
            }
            headerLength = Int(prefix[8]) | Int(prefix[9]) << 8 | Int(prefix[10]) << 16 | Int(prefix[11]) << 24
            headerStart = 12
        default:
            throw DatasetError.badHeader(file: path, reason: "unsupported .npy format version \(major).\(minor)")
        }
        guard minor == 0 else {
            throw DatasetError.badHeader(file: path, reason: "unsupported .npy format version \(major).\(minor)")
        }
        guard headerLength > 0, headerStart + headerLength <= fileSize else {
            throw DatasetError.badHeader(
                file: path,
                reason:
                    "header length \(headerLength) at byte \(headerStart - (major == 1 ? 2 : 4)) runs past the end "
                    + "of the \(fileSize)-byte file"
            )
        }
        let headerBytes = try read(headerStart, headerLength)
        guard let text = String(bytes: headerBytes, encoding: major == 3 ? .utf8 : .ascii) else {
            throw DatasetError.badHeader(file: path, reason: "header is not \(major == 3 ? "UTF-8" : "ASCII") text")
        }
        var header = try parseDictionary(text, file: path)
        header.dataOffset = headerStart + headerLength
        // Check the shape against the bytes present before anyone allocates for it.
        guard let item = itemSize(header.descr) else {
            throw DatasetError.badHeader(file: path, reason: "unsupported dtype '\(header.descr)'")
        }
        var elements = 1
        for d in header.shape {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw DatasetError.badHeader(file: path, reason: "shape \(header.shape) overflows the element count")
            }
            elements = p
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: item)
        let remaining = fileSize - header.dataOffset
        guard !overflow, bytes == remaining else {
            throw DatasetError.badHeader(
                file: path,
                reason:
                    "shape \(header.shape) of '\(header.descr)' needs "
                    + "\(overflow ? "more than Int.max" : "\(bytes)") data bytes, "
                    + "but \(remaining) bytes follow the header at offset \(header.dataOffset)")
        }
        return header
    }

    /// Parses `{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }`.
    static func parseDictionary(_ raw: String, file: String) throws -> Header {
        func bad(_ reason: String) -> DatasetError { .badHeader(file: file, reason: reason) }
        var s = Substring(raw.trimmingCharacters(in: .whitespacesAndNewlines))
        guard s.first == "{", s.last == "}" else { throw bad("header is not a Python dict literal: \(raw.prefix(80))") }
        s = s.dropFirst().dropLast()
        var descr: String?, fortran: Bool?, shape: [Int]?

        func skipSpaces() { while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() } }
        func readString() throws -> String {
            skipSpaces()
            guard let q = s.first, q == "'" || q == "\"" else {
                throw bad("expected a quoted string near '\(s.prefix(20))'")
            }
            s = s.dropFirst()
            guard let end = s.firstIndex(of: q) else { throw bad("unterminated string") }
            let value = String(s[..<end])
            s = s[s.index(after: end)...]
            return value
        }
        func expect(_ c: Character) throws {
            skipSpaces()
            guard s.first == c else { throw bad("expected '\(c)' near '\(s.prefix(20))'") }
            s = s.dropFirst()
        }

        while true {
            skipSpaces()
            if s.isEmpty { break }
            let key = try readString()
            try expect(":")
            skipSpaces()
            switch key {
            case "descr":
                guard descr == nil else { throw bad("duplicate key 'descr'") }
                descr = try readString()
            case "fortran_order":
                guard fortran == nil else { throw bad("duplicate key 'fortran_order'") }
                if s.hasPrefix("False") {
                    fortran = false; s = s.dropFirst(5)
                } else if s.hasPrefix("True") {
                    fortran = true; s = s.dropFirst(4)
                } else {
                    throw bad("fortran_order must be True or False")
                }
            case "shape":
                guard shape == nil else { throw bad("duplicate key 'shape'") }
                try expect("(")
                guard let close = s.firstIndex(of: ")") else { throw bad("unterminated shape tuple") }
                let inside = s[..<close]
                s = s[s.index(after: close)...]
                var dims = [Int]()
                for part in inside.split(separator: ",", omittingEmptySubsequences: false) {
                    let t = part.trimmingCharacters(in: .whitespaces)
                    if t.isEmpty { continue }
                    guard t.allSatisfy({ $0.isASCII && $0.isNumber }), let d = Int(t) else {
                        throw bad("shape entry '\(t)' is not a non-negative integer")
                    }
                    dims.append(d)
                }
                shape = dims
            default:
                throw bad("unexpected key '\(key)'")
            }
            skipSpaces()
            if s.first == "," {
                s = s.dropFirst()
            } else if !s.isEmpty {
                throw bad("expected ',' near '\(s.prefix(20))'")
            }
        }
        guard let descr else { throw bad("missing key 'descr'") }
        guard let fortran else { throw bad("missing key 'fortran_order'") }
        guard let shape else { throw bad("missing key 'shape'") }
        guard !fortran else { throw bad("fortran_order True is not supported (save with np.ascontiguousarray)") }
        return Header(descr: descr, fortranOrder: fortran, shape: shape, dataOffset: 0)
    }

    // MARK: - Writing

    /// The bytes of a version-1.0 `.npy` file: header for `descr`/`shape`, then `payload`.
    /// The header is padded so the data starts on a 64-byte boundary, as NumPy does.
    public static func encode(descr: String, shape: [Int], payload: [UInt8]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let length = dict.utf8.count
        var out = magic + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)]
        out += Array(dict.utf8)
        out += payload
        return out
    }

    /// Writes `pixels` as a `uint8` array of the given shape.
    /// - Throws: ``DatasetError`` when the shape does not match the pixel count or writing fails.
    public static func write(pixels: [UInt8], shape: [Int], to path: String) throws {
        let n = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }), n == pixels.count else {
            throw DatasetError.shapeMismatch(
                what: "pixels for shape \(shape)", expected: "\(n) bytes", got: "\(pixels.count)")
        }
        try writeFile(encode(descr: "|u1", shape: shape, payload: pixels), to: path)
    }

    /// Writes `labels` as a 1-D `<i8` array.
    public static func write(labels: [Int], to path: String) throws {
        var payload = [UInt8]()
        payload.reserveCapacity(labels.count * 8)
        for l in labels {
            let v = UInt64(bitPattern: Int64(l))
            for b in 0..<8 { payload.append(UInt8((v >> (8 * UInt64(b))) & 0xFF)) }
        }
        try writeFile(encode(descr: "<i8", shape: [labels.count], payload: payload), to: path)
    }

    /// Writes a dataset's images (in `layout`) and, when labelled and `labelsPath` is given, its labels.
    public static func write(
        _ dataset: InMemoryImageDataset, imagesPath: String, labelsPath: String? = nil, layout: NPYLayout = .nhwc
    ) throws {
        let s = dataset.imageShape, n = dataset.count
        switch layout {
        case .nchw:
            try write(pixels: dataset.pixels, shape: [n, s.channels, s.height, s.width], to: imagesPath)
        case .nhwc:
            let hw = s.height * s.width, per = s.elementCount
            var out = [UInt8](repeating: 0, count: dataset.pixels.count)
            for img in 0..<n {
                for p in 0..<hw {
                    for c in 0..<s.channels {
                        out[img * per + p * s.channels + c] = dataset.pixels[img * per + c * hw + p]
                    }
                }
            }
            try write(pixels: out, shape: [n, s.height, s.width, s.channels], to: imagesPath)
        }
        if let labelsPath, let labels = dataset.labels { try write(labels: labels, to: labelsPath) }
    }

    static func writeFile(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw DatasetError.writeFailed(path: path, reason: "could not create the file")
        }
    }
}
