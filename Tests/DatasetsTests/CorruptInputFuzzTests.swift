import Foundation
import TensorCore
import XCTest

@testable import Datasets

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Deterministic corruption of every dataset file format the package reads: CIFAR-10 and
/// CIFAR-100 binaries (single files, lists of files, the official directory layouts) and
/// NumPy `.npy` images and labels.
///
/// Every input must either throw a ``DatasetError`` or load successfully — and a load only
/// counts as correct when the input really is valid:
///
/// - CIFAR: an independent oracle (size, record length, per-byte label ranges) predicts the
///   exact ``DatasetError`` value (file, record, byte offset, label, limit) or the exact
///   labels and pixels. A truncation at a record boundary is a valid shorter file.
/// - NPY: inputs known to be invalid (every truncation, absurd shapes, wrong magic …) must be
///   rejected; inputs that load must agree with their own header (count, shape, the data
///   bytes in the file, the label values) and survive a write/read round trip.
///
/// A trap (crash) kills the test process; a hang shows as a timeout (and the elapsed time
/// is asserted). By default about 10,000 inputs run in a few seconds (debug build). For a
/// longer run scale the count, e.g.:
///
///     LAYERWISE_FUZZ_ITERATIONS=200000 swift test --skip-build --filter CorruptInputFuzzTests
///
/// and optionally `LAYERWISE_FUZZ_SEED=<UInt64>` for a different deterministic stream.
final class CorruptInputFuzzTests: XCTestCase {
    // MARK: - Budget and bookkeeping

    /// Total inputs across the CIFAR and NPY fuzz tests (each gets half).
    private static var iterations: Int {
        ProcessInfo.processInfo.environment["LAYERWISE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 10_000
    }

    private static var seed: UInt64 {
        ProcessInfo.processInfo.environment["LAYERWISE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0xC1FA_0BAD
    }

    /// Outcome bookkeeping for one run.
    private struct Tally {
        var inputs = 0
        var accepted = 0
        var rejected = 0
        var kinds: [String: Int] = [:]
        var failures: [String] = []

        mutating func reject(_ error: DatasetError) {
            rejected += 1
            kinds[Self.kind(error), default: 0] += 1
        }

        /// The case name (`truncated`, `badHeader` …).
        static func kind(_ error: DatasetError) -> String {
            Mirror(reflecting: error).children.first?.label ?? "\(error)"
        }

        var summary: String {
            "\(inputs) inputs (\(accepted) loaded, \(rejected) rejected); rejections by kind: "
                + kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
    }

    /// Overwrites `path` with `bytes` (one file reused for every input keeps the run fast).
    ///
    /// Writes over the old contents and then sets the length, instead of `O_TRUNC`: on ext4
    /// a truncate-to-zero followed by a write forces the blocks to disk at close
    /// (`auto_da_alloc`), which made every input cost several milliseconds.
    private static func put(_ bytes: [UInt8], at path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        guard fd >= 0 else { throw DatasetError.writeFailed(path: path, reason: "open failed") }
        defer { close(fd) }
        var written = 0
        try bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = pwrite(fd, raw.baseAddress! + written, raw.count - written, off_t(written))
                guard n > 0 else { throw DatasetError.writeFailed(path: path, reason: "write failed") }
                written += n
            }
        }
        guard ftruncate(fd, off_t(bytes.count)) == 0 else {
            throw DatasetError.writeFailed(path: path, reason: "ftruncate failed")
        }
    }

    // MARK: - CIFAR oracle

    /// The binary format of one CIFAR flavour.
    private struct CIFARFormat {
        var name: String
        var labelLimits: [Int]
        var labelIndex: Int
        var labelBytes: Int { labelLimits.count }
        var recordLength: Int { labelBytes + CIFAR.pixelBytes }

        static let cifar10 = CIFARFormat(name: "CIFAR-10", labelLimits: [10], labelIndex: 0)
        static let cifar100Fine = CIFARFormat(name: "CIFAR-100 fine", labelLimits: [20, 100], labelIndex: 1)
        static let cifar100Coarse = CIFARFormat(name: "CIFAR-100 coarse", labelLimits: [20, 100], labelIndex: 0)

        /// What a correct reader must do with `bytes` at `path`: the exact error, or the
        /// labels and pixels of a valid file. Written from the format description, not from
        /// the reader's code.
        func expected(_ bytes: [UInt8], path: String) -> Result<(labels: [Int], pixels: [UInt8]), DatasetError> {
            if bytes.isEmpty { return .failure(.emptyFile(path: path)) }
            if bytes.count % recordLength != 0 {
                return .failure(
                    .truncated(
                        file: path, size: bytes.count, recordLength: recordLength,
                        offset: bytes.count - bytes.count % recordLength))
            }
            var labels = [Int](), pixels = [UInt8]()
            for r in 0..<(bytes.count / recordLength) {
                let base = r * recordLength
                for j in 0..<labelBytes where Int(bytes[base + j]) >= labelLimits[j] {
                    return .failure(
                        .labelOutOfRange(
                            file: path, record: r, offset: base + j, value: Int(bytes[base + j]), limit: labelLimits[j])
                    )
                }
                labels.append(Int(bytes[base + labelIndex]))
                pixels += bytes[(base + labelBytes)..<(base + recordLength)]
            }
            return .success((labels, pixels))
        }

        func load(_ path: String) throws -> InMemoryImageDataset {
            switch name {
            case "CIFAR-10": return try CIFAR.loadCIFAR10(files: [path])
            case "CIFAR-100 coarse": return try CIFAR.loadCIFAR100(file: path, labels: .coarse)
            default: return try CIFAR.loadCIFAR100(file: path, labels: .fine)
            }
        }

        /// `count` valid records with varied labels and pixels.
        func records(_ count: Int, using rng: inout SeededGenerator) -> [UInt8] {
            var out = [UInt8]()
            out.reserveCapacity(count * recordLength)
            for _ in 0..<count {
                for limit in labelLimits { out.append(UInt8(rng.nextInt(below: limit))) }
                for _ in 0..<CIFAR.pixelBytes { out.append(UInt8(truncatingIfNeeded: rng.next())) }
            }
            return out
        }
    }

    /// Loads `bytes` through the reader and compares with the oracle.
    private static func checkCIFAR(
        _ bytes: [UInt8], _ format: CIFARFormat, path: String, label: @autoclosure () -> String, _ tally: inout Tally
    ) throws {
        try put(bytes, at: path)
        tally.inputs += 1
        let expected = format.expected(bytes, path: path)
        do {
            let data = try format.load(path)
            tally.accepted += 1
            switch expected {
            case let .success(e):
                if data.labels != e.labels || data.pixels != e.pixels || data.imageShape != CIFAR.imageShape
                    || data.count != bytes.count / format.recordLength
                {
                    tally.failures.append("\(format.name) \(label()): loaded data differs from the file")
                }
                if data.classCount != format.labelLimits[format.labelIndex] {
                    tally.failures.append(
                        "\(format.name) \(label()): classCount \(String(describing: data.classCount))")
                }
            case let .failure(e):
                tally.failures.append("\(format.name) \(label()): loaded \(data.count) records, expected \(e)")
            }
        } catch let error as DatasetError {
            tally.reject(error)
            switch expected {
            case .success:
                tally.failures.append("\(format.name) \(label()): valid file rejected: \(error)")
            case let .failure(e) where e != error:
                tally.failures.append("\(format.name) \(label()): got \(error), expected \(e)")
            default:
                if !error.description.contains(path) {
                    tally.failures.append("\(format.name) \(label()): error does not name the file: \(error)")
                }
            }
        } catch {
            tally.failures.append("\(format.name) \(label()): not a DatasetError: \(error)")
        }
    }

    // MARK: - CIFAR fuzz

    func testCorruptCIFARFilesGiveTheExactTypedErrorOrTheExactData() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir + "/fuzz.bin", goodPath = dir + "/good.bin"
        var rng = SeededGenerator(seed: Self.seed)
        var tally = Tally()
        let start = Date()
        let formats: [CIFARFormat] = [.cifar10, .cifar100Fine, .cifar100Coarse]
        let seeds = formats.map { $0.records(3, using: &rng) }

        // 1. Systematic truncations: every byte of the first record's label/pixel start,
        //    a window around every record boundary, and 0 bytes.
        for (f, format) in formats.enumerated() {
            let s = seeds[f], rec = format.recordLength
            var cuts = Set(0...16)
            for r in 1...3 { for d in -3...3 where r * rec + d <= s.count { cuts.insert(r * rec + d) } }
            cuts.insert(rec / 2)  // mid-record
            cuts.insert(rec + rec / 2)
            for cut in cuts.sorted() {
                try Self.checkCIFAR(Array(s[..<cut]), format, path: path, label: "truncated to \(cut)", &tally)
            }
            // Trailing garbage after whole records.
            for extra in [1, 2, rec - 1, rec + 1] {
                try Self.checkCIFAR(
                    s + [UInt8](repeating: 7, count: extra), format, path: path, label: "+\(extra) bytes", &tally)
            }
        }

        // 2. Every value of every label byte of every record (limit boundaries included).
        for (f, format) in formats.enumerated() {
            for r in 0..<3 {
                for j in 0..<format.labelBytes {
                    for v in 0...255 {
                        var m = seeds[f]
                        m[r * format.recordLength + j] = UInt8(v)
                        try Self.checkCIFAR(m, format, path: path, label: "record \(r) label byte \(j) = \(v)", &tally)
                    }
                }
            }
        }

        // 3. Lists of files: the first bad file (in order) is the one named.
        try Self.put(seeds[0], at: goodPath)
        let badFiles: [([UInt8], DatasetError)] = [
            ([], .emptyFile(path: path)),
            (
                Array(seeds[0].dropLast()),
                .truncated(file: path, size: seeds[0].count - 1, recordLength: 3073, offset: 2 * 3073)
            ),
        ]
        for (bad, expected) in badFiles {
            try Self.put(bad, at: path)
            for files in [[goodPath, path], [path, goodPath], [goodPath, goodPath, path]] {
                tally.inputs += 1
                do {
                    let d = try CIFAR.loadCIFAR10(files: files)
                    tally.failures.append("file list \(files): loaded \(d.count) records from a bad list")
                } catch let error as DatasetError {
                    tally.reject(error)
                    if error != expected {
                        tally.failures.append("file list \(files): got \(error), expected \(expected)")
                    }
                }
            }
        }
        tally.inputs += 2
        XCTAssertEqual(try CIFAR.loadCIFAR10(files: [goodPath, goodPath]).count, 6)
        tally.accepted += 1
        do { _ = try CIFAR.loadCIFAR10(files: []); tally.failures.append("empty file list loaded") } catch let e
            as DatasetError
        {
            tally.reject(e)
            XCTAssertEqual(
                e, .invalidOption(name: "files", value: "[]", reason: "give at least one CIFAR-10 batch file"))
        }

        // 4. Random mutations until the budget (half of the total) is spent.
        var iteration = 0
        while tally.inputs < Self.iterations / 2 && tally.failures.count <= 20 {
            iteration += 1
            let f = rng.nextInt(below: formats.count)
            let format = formats[f], s = seeds[f], rec = format.recordLength
            var m = s
            let op = rng.nextInt(below: 8)
            switch op {
            case 0:  // truncate anywhere
                m = Array(s[..<rng.nextInt(below: s.count + 1)])
            case 1:  // truncate at a record boundary (valid unless 0 records remain)
                m = Array(s[..<(rec * rng.nextInt(below: 4))])
            case 2:  // random value in a random label byte
                m[rec * rng.nextInt(below: 3) + rng.nextInt(below: format.labelBytes)] = UInt8(
                    truncatingIfNeeded: rng.next())
            case 3:  // flip bits anywhere (pixel flips are still valid files)
                for _ in 0...rng.nextInt(below: 4) {
                    m[rng.nextInt(below: m.count)] ^= 1 << UInt8(rng.nextInt(below: 8))
                }
            case 4:  // append a few random bytes
                m += (0..<(1 + rng.nextInt(below: 8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 5:  // random bytes, random length (sometimes a whole number of records)
                let count = rng.nextInt(below: 2) == 0 ? rec * rng.nextInt(below: 3) : rng.nextInt(below: 2 * rec)
                m = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 6:  // delete or duplicate a slice (shifts every later record)
                let a = rng.nextInt(below: m.count), b = min(m.count, a + 1 + rng.nextInt(below: 4))
                if rng.nextInt(below: 2) == 0 { m.removeSubrange(a..<b) } else { m.insert(contentsOf: s[a..<b], at: a) }
            default:  // the other flavour's file (record-length mismatch)
                m = seeds[(f + 1) % seeds.count]
            }
            try Self.checkCIFAR(m, format, path: path, label: "iteration \(iteration) op \(op)", &tally)
        }

        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(tally.failures, [], "first failures: \(tally.failures.prefix(10))")
        XCTAssertGreaterThanOrEqual(tally.inputs, Self.iterations / 2)
        XCTAssertGreaterThan(tally.accepted, 0)
        for kind in ["emptyFile", "truncated", "labelOutOfRange", "invalidOption"] {
            XCTAssertGreaterThan(tally.kinds[kind, default: 0], 0, "no input was rejected with \(kind)")
        }
        print("CIFAR corrupt-input fuzz: \(tally.summary) in \(String(format: "%.2f", elapsed)) s")
    }

    // MARK: - NPY

    /// A valid `.npy` file plus how to read it.
    private struct NPYSeed {
        var bytes: [UInt8]
        var dict: String
        var payload: [UInt8]
        var isLabels: Bool
        var layout: NPYLayout
    }

    /// `.npy` bytes with an arbitrary header text (padded like NumPy) and format version.
    private static func npy(dict: String, payload: [UInt8], version: UInt8 = 1) -> [UInt8] {
        let prefixLength = version == 1 ? 10 : 12
        var text = Array(dict.utf8)
        text += [UInt8](repeating: 0x20, count: (64 - (prefixLength + text.count + 1) % 64) % 64) + [0x0A]
        let n = text.count
        var out = NPY.magic + [version, 0]
        out +=
            version == 1
            ? [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF)]
            : [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)]
        return out + text + payload
    }

    private static func dict(_ descr: String, _ shape: [Int]) -> String {
        let s = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        return "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(s), }"
    }

    private static func npySeeds(using rng: inout SeededGenerator) -> [NPYSeed] {
        func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        func le(_ values: [Int], _ size: Int) -> [UInt8] {
            values.flatMap { v in
                (0..<size).map { UInt8(truncatingIfNeeded: UInt64(bitPattern: Int64(v)) >> (8 * UInt64($0))) }
            }
        }
        var seeds = [NPYSeed]()
        func add(
            _ descr: String, _ shape: [Int], _ payload: [UInt8], labels: Bool, _ layout: NPYLayout = .nhwc,
            version: UInt8 = 1
        ) {
            let d = dict(descr, shape)
            seeds.append(
                NPYSeed(
                    bytes: npy(dict: d, payload: payload, version: version), dict: d, payload: payload,
                    isLabels: labels, layout: layout))
        }
        add("|u1", [3, 4, 5, 3], bytes(180), labels: false, .nhwc)
        add("|u1", [2, 3, 4, 4], bytes(96), labels: false, .nchw)
        add("|u1", [4, 6, 6], bytes(144), labels: false, .nhwc, version: 2)
        add("|u1", [1, 2, 2, 1], bytes(4), labels: false, .nhwc, version: 3)
        add("<i8", [3], le([0, 1, 2], 8), labels: true)
        add("|u1", [2], [9, 0], labels: true)
        add("<i4", [4], le([3, 0, 2, 1], 4), labels: true)
        add("<u2", [2], le([65535, 1], 2), labels: true)
        add("<i2", [4], le([-1, 0, 300, 7], 2), labels: true)
        return seeds
    }

    /// Inputs for which a correct reader has no choice.
    private enum Expectation { case reject, accept, either }

    /// Loads `bytes` as images (or labels) and checks the outcome.
    private static func checkNPY(
        _ bytes: [UInt8], asLabels: Bool, layout: NPYLayout, expect: Expectation, path: String,
        label: @autoclosure () -> String, _ tally: inout Tally
    ) throws {
        try put(bytes, at: path)
        tally.inputs += 1
        do {
            if asLabels {
                let values = try NPY.loadLabels(path: path)
                tally.accepted += 1
                // The values must be the little-endian integers of the data section.
                let header = try NPY.readHeader(path: path, fileSize: bytes.count)
                let (size, signed) = try NPY.integerType(header.descr, file: path)
                var reference = [Int]()
                for i in 0..<header.shape[0] {
                    var v: Int64 = 0
                    for b in 0..<size { v |= Int64(bytes[header.dataOffset + i * size + b]) << (8 * Int64(b)) }
                    if signed, size < 8, v >= Int64(1) << (8 * Int64(size) - 1) { v -= Int64(1) << (8 * Int64(size)) }
                    reference.append(Int(v))
                }
                if values != reference || header.dataOffset + values.count * size != bytes.count {
                    tally.failures.append(
                        "\(label()): labels \(values.prefix(8)) differ from the file (\(reference.prefix(8)))")
                }
            } else {
                let data = try NPY.loadImages(path: path, layout: layout)
                tally.accepted += 1
                let header = try NPY.readHeader(path: path, fileSize: bytes.count)
                let s = data.imageShape, dims = header.shape
                let expectedShape =
                    dims.count == 3
                    ? ImageShape(channels: 1, height: dims[1], width: dims[2])
                    : layout == .nhwc
                        ? ImageShape(channels: dims[3], height: dims[1], width: dims[2])
                        : ImageShape(channels: dims[1], height: dims[2], width: dims[3])
                let payload = Array(bytes[header.dataOffset...])
                if data.count != dims[0] || s != expectedShape || data.pixels.count != payload.count {
                    tally.failures.append("\(label()): loaded \(data.count) × \(s) from a header of shape \(dims)")
                } else if dims.count == 3 || layout == .nchw || s.channels == 1 {
                    if data.pixels != payload { tally.failures.append("\(label()): pixels differ from the file") }
                } else {
                    // Interleaved H×W×C in the file, planar C×H×W in memory.
                    let c = s.channels, hw = s.height * s.width, per = s.elementCount
                    var same = true
                    for img in 0..<data.count where same {
                        for p in 0..<hw {
                            for ch in 0..<c
                            where data.pixels[img * per + ch * hw + p] != payload[img * per + p * c + ch] {
                                same = false
                            }
                        }
                    }
                    if !same { tally.failures.append("\(label()): NHWC pixels were not transposed to CHW") }
                }
            }
            if expect == .reject { tally.failures.append("\(label()): invalid input was accepted") }
        } catch let error as DatasetError {
            tally.reject(error)
            if expect == .accept { tally.failures.append("\(label()): valid input rejected: \(error)") }
            if !error.description.contains(path) {
                tally.failures.append("\(label()): error does not name the file: \(error)")
            }
        } catch {
            tally.failures.append("\(label()): not a DatasetError: \(error)")
        }
    }

    /// Shape entries and dtypes that stress the header parser and the size arithmetic.
    private static let numbers = [
        "0", "1", "2", "3", "-1", "+1", " 2", "1.0", "1e3", "0x10", "", "00", "1000000000000", "4294967296",
        "3037000500", "9223372036854775807", "9223372036854775808", "18446744073709551616",
        "99999999999999999999999999",
    ]
    private static let descrs = [
        "|u1", "<u1", "u1", "|i1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", ">i8", ">u1", "<f4", "<f8", "|b1",
        "<i0", "<u9", "<c8", "|O", "", "u", "<i", "'", "\\", "|u1|u1",
    ]
    private static let headerBytes =
        Array("{}()[]'\":,. 0123456789-TrueFalsedescrshapefortran_order\n\t\u{0}".utf8)
        + [0x80, 0xC3, 0xFF]

    /// Every digit run in the `'shape'` tuple of a header text.
    private static func shapeDigitRanges(_ dict: String) -> [Range<String.Index>] {
        guard let open = dict.range(of: "'shape': (") else { return [] }
        var ranges = [Range<String.Index>]()
        var i = open.upperBound
        while i < dict.endIndex, dict[i] != ")" {
            if dict[i].isNumber {
                let s = i
                while i < dict.endIndex, dict[i].isNumber { i = dict.index(after: i) }
                ranges.append(s..<i)
            } else {
                i = dict.index(after: i)
            }
        }
        return ranges
    }

    func testCorruptNPYFilesGiveTypedErrorsAndValidOnesLoadConsistently() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir + "/fuzz.npy"
        var rng = SeededGenerator(seed: Self.seed ^ 0x4E50_5900)
        var tally = Tally()
        let start = Date()
        let seeds = Self.npySeeds(using: &rng)

        func check(_ m: [UInt8], _ s: NPYSeed, _ expect: Expectation, _ label: @autoclosure () -> String) throws {
            try Self.checkNPY(
                m, asLabels: s.isLabels, layout: s.layout, expect: expect, path: path,
                label: label(), &tally)
        }

        // 1. The seeds load; loading images as labels and labels as images is rejected.
        for (k, s) in seeds.enumerated() {
            try check(s.bytes, s, .accept, "seed \(k)")
            try Self.checkNPY(
                s.bytes, asLabels: !s.isLabels, layout: s.layout, expect: .reject,
                path: path, label: "seed \(k) read as the other kind", &tally)
        }

        // 2. Truncation at every byte (mid-magic, mid-version, mid-length, mid-header, mid-data):
        //    the header fixes the data size, so every shorter file is invalid.
        for (k, s) in seeds.enumerated() {
            for cut in 0..<s.bytes.count {
                try check(Array(s.bytes[..<cut]), s, .reject, "seed \(k) truncated to \(cut)")
            }
            try check(s.bytes + [0], s, .reject, "seed \(k) + 1 byte")
        }

        // 3. Absurd shapes and dtypes, each with a tiny payload: rejected from the header,
        //    before anything is allocated for the claimed size (10^12 elements would be 1 TB).
        let absurd: [[Int]] = [
            [1_000_000_000_000], [1_000_000, 1_000_000, 1], [1_000_000, 1_000, 1_000, 3],
            [Int.max], [Int.max, 2], [3_037_000_500, 3_037_000_500], [1 << 62, 4], [2, 1 << 62],
            [0], [0, 2, 2, 3], [2, 0, 2, 3], [], [1], [1, 1], [1, 1, 1, 1, 1], [4, 4, 4, 4],
        ]
        for shape in absurd {
            for descr in ["|u1", "<i8"] {
                for layout in NPYLayout.allCases {
                    let m = Self.npy(dict: Self.dict(descr, shape), payload: [1, 2, 3, 4])
                    let s = NPYSeed(bytes: m, dict: "", payload: [], isLabels: false, layout: layout)
                    // Four bytes can only be a valid image file for shape (1,1,1,4)/(1,2,2) style
                    // shapes with 4 elements; among these only [4,4,4,4]-like shapes need more.
                    let fourElements = shape.reduce(1, { $0 &* $1 }) == 4 && !shape.contains(0)
                    try check(
                        m, s, descr == "|u1" && fourElements && shape.count >= 3 ? .either : .reject,
                        "images shape \(shape) \(descr) \(layout)")
                    var l = s
                    l.isLabels = true
                    try check(
                        m, l, descr == "|u1" && shape == [4] ? .either : .reject, "labels shape \(shape) \(descr)")
                }
            }
        }
        for descr in Self.descrs {
            for (k, s) in seeds.enumerated() {
                let d = s.dict.replacingOccurrences(of: s.dict.components(separatedBy: "'")[3], with: descr)
                try check(Self.npy(dict: d, payload: s.payload), s, .either, "seed \(k) descr '\(descr)'")
            }
        }
        // Header lengths that run past the end of the file, in each version.
        for version: UInt8 in [1, 2, 3] {
            let valid = Self.npy(dict: Self.dict("|u1", [1, 2, 2]), payload: [1, 2, 3, 4], version: version)
            let s = NPYSeed(bytes: valid, dict: "", payload: [], isLabels: false, layout: .nhwc)
            try check(valid, s, .accept, "version \(version)")
            let lengthBytes = version == 1 ? 2 : 4
            for value: UInt32 in [0, 1, 63, UInt32(valid.count), 0xFFFF, 0xFFFF_FFFF] {
                var m = valid
                for b in 0..<lengthBytes { m[8 + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
                try check(m, s, .reject, "version \(version) header length \(value)")
            }
            for minor: UInt8 in [1, 255] {
                var m = valid; m[7] = minor; try check(m, s, .reject, "version \(version).\(minor)")
            }
        }
        for major: UInt8 in [0, 4, 255] {
            var m = seeds[0].bytes
            m[6] = major
            try check(m, seeds[0], .reject, "major version \(major)")
        }

        // 4. Random mutations until the budget (half of the total) is spent.
        var iteration = 0
        while tally.inputs < Self.iterations / 2 && tally.failures.count <= 20 {
            iteration += 1
            let s = seeds[rng.nextInt(below: seeds.count)]
            let dataOffset = s.bytes.count - s.payload.count
            var m = s.bytes
            var expect = Expectation.either
            let op = rng.nextInt(below: 10)
            switch op {
            case 0:  // truncate anywhere
                m = Array(s.bytes[..<rng.nextInt(below: s.bytes.count)])
                expect = .reject
            case 1:  // flip bits in the prefix or header text
                for _ in 0...rng.nextInt(below: 3) {
                    m[rng.nextInt(below: dataOffset)] ^= 1 << UInt8(rng.nextInt(below: 8))
                }
            case 2:  // flip bits in the data: still a valid file
                for _ in 0...rng.nextInt(below: 3) {
                    m[dataOffset + rng.nextInt(below: s.payload.count)] ^= 1 << UInt8(rng.nextInt(below: 8))
                }
                expect = s.isLabels ? .either : .accept  // labels may turn negative or huge, which still loads
            case 3:  // replace a shape entry with an interesting number (header rebuilt)
                let runs = Self.shapeDigitRanges(s.dict)
                var d = s.dict
                d.replaceSubrange(
                    runs[rng.nextInt(below: runs.count)], with: Self.numbers[rng.nextInt(below: Self.numbers.count)])
                m = Self.npy(dict: d, payload: s.payload)
            case 4:  // overwrite header characters with syntax bytes
                for _ in 0...rng.nextInt(below: 3) {
                    m[10 + rng.nextInt(below: dataOffset - 10)] =
                        Self.headerBytes[rng.nextInt(below: Self.headerBytes.count)]
                }
            case 5:  // insert or delete a chunk of the header text (header rebuilt)
                var d = Array(s.dict.utf8)
                let at = rng.nextInt(below: d.count + 1)
                if rng.nextInt(below: 2) == 0 {
                    d.insert(
                        contentsOf: (0..<(1 + rng.nextInt(below: 6))).map { _ in
                            Self.headerBytes[rng.nextInt(below: Self.headerBytes.count)]
                        }, at: at)
                } else {
                    d.removeSubrange(at..<min(d.count, at + 1 + rng.nextInt(below: 6)))
                }
                m = Self.npy(dict: String(decoding: d, as: UTF8.self), payload: s.payload)
            case 6:  // random bytes, with or without the magic and a version
                m = (0..<rng.nextInt(below: 160)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if rng.nextInt(below: 2) == 0, m.count >= 8 { m.replaceSubrange(0..<8, with: NPY.magic + [1, 0]) }
                expect = m.count < 10 ? .reject : .either
            case 7:  // header length field set to a random value
                m[8] = UInt8(truncatingIfNeeded: rng.next())
                if rng.nextInt(below: 2) == 0 { m[9] = UInt8(truncatingIfNeeded: rng.next()) }
            case 8:  // payload grown or shrunk: the header no longer matches
                if rng.nextInt(below: 2) == 0 {
                    m += (0..<(1 + rng.nextInt(below: 8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                } else {
                    m.removeLast(1 + rng.nextInt(below: s.payload.count))
                }
                expect = .reject
            default:  // another seed's header on this payload
                let other = seeds[rng.nextInt(below: seeds.count)]
                m = Self.npy(dict: other.dict, payload: s.payload)
            }
            if m == s.bytes { expect = .accept }
            try check(m, s, expect, "iteration \(iteration) op \(op)")
        }

        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(tally.failures, [], "first failures: \(tally.failures.prefix(10))")
        XCTAssertGreaterThanOrEqual(tally.inputs, Self.iterations / 2)
        XCTAssertGreaterThan(tally.accepted, 0)
        XCTAssertGreaterThan(tally.kinds["badHeader", default: 0], tally.rejected / 2)
        print("NPY corrupt-input fuzz: \(tally.summary) in \(String(format: "%.2f", elapsed)) s")
    }

    // MARK: - Labels paired with images

    /// Label values at the edges of Int, paired with a valid image file: negative and
    /// huge labels must give a typed error or load with those exact labels (no overflow).
    func testExtremeNPYLabelValuesNeverTrap() throws {
        let dir = try makeTemporaryDirectory(self)
        let images = dir + "/x.npy", labels = dir + "/y.npy"
        try NPY.write(pixels: [1, 2, 3], shape: [3, 1, 1, 1], to: images)
        func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        let cases: [(String, [UInt64], valid: Bool)] = [
            ("<i8", [0, 1, 2], true),
            ("<i8", [0, 1, UInt64(bitPattern: -1)], false),
            ("<i8", [0, 1, UInt64(Int64.max)], false),  // max + 1 classes overflows Int
            ("<i8", [0, UInt64(Int64.max), UInt64(Int64.max)], false),
            ("<i8", [0, 1, UInt64(bitPattern: Int64.min)], false),
            ("<u8", [0, 1, UInt64(Int64.max)], false),
            ("<u8", [0, 1, UInt64(Int64.max) + 1], false),
            ("<u8", [0, 1, UInt64.max], false),
            ("<i8", [0, 1, 1_000_000_000_000], true),  // a sparse but representable label set
        ]
        var rejected = 0
        for (descr, values, valid) in cases {
            try Self.put(NPY.encode(descr: descr, shape: [3], payload: values.flatMap(le64)), at: labels)
            do {
                let d = try NPY.loadImages(path: images, labelsPath: labels)
                XCTAssertTrue(valid, "\(descr) \(values) loaded")
                XCTAssertEqual(d.labels, values.map { Int(Int64(bitPattern: $0)) })
                XCTAssertEqual(d.classCount, d.labels!.max()! + 1)
            } catch let error as DatasetError {
                rejected += 1
                XCTAssertFalse(valid, "\(descr) \(values): \(error)")
                XCTAssertTrue(error.description.contains(labels), "\(error)")
            }
        }
        XCTAssertEqual(rejected, cases.filter { !$0.valid }.count)
        // Label count mismatch and a labels file that is really an image file.
        try Self.put(NPY.encode(descr: "<i8", shape: [2], payload: le64(0) + le64(1)), at: labels)
        XCTAssertEqual(
            expectDatasetError { try NPY.loadImages(path: images, labelsPath: labels) },
            .shapeMismatch(what: "labels in \(labels)", expected: "3 (one per image in \(images))", got: "2"))
        expectDatasetError { try NPY.loadImages(path: images, labelsPath: images) }
    }

    // MARK: - Huge files

    /// Sparse files of about a terabyte whose size is consistent with their format (a valid
    /// CIFAR record count, an `.npy` header claiming 10^12 elements that really follow): the
    /// readers must refuse them with a typed error before allocating, not trap in `malloc`.
    func testTerabyteSparseFilesAreRefusedBeforeAllocating() throws {
        let dir = try makeTemporaryDirectory(self)
        let cifar = dir + "/huge.bin", npy = dir + "/huge.npy"
        func sparse(_ path: String, prefix: [UInt8], size: Int) throws {
            try Self.put(prefix, at: path)
            let fd = open(path, O_WRONLY)
            defer { close(fd) }
            guard fd >= 0, ftruncate(fd, off_t(size)) == 0 else {
                throw XCTSkip("cannot create a sparse file of \(size) bytes here (errno \(errno))")
            }
        }
        let records = 330_000_000  // × 3,073 bytes ≈ 1.01 TB, label bytes all 0: a valid file
        try sparse(cifar, prefix: [], size: records * CIFAR.cifar10RecordLength)
        let header = NPY.encode(descr: "|u1", shape: [1_000_000, 1_000, 1_000, 1], payload: [])
        try sparse(npy, prefix: header, size: header.count + 1_000_000_000_000)
        let start = Date()
        for (name, load) in [
            ("CIFAR-10", { _ = try CIFAR.loadCIFAR10(files: [cifar]) }),
            ("NPY", { _ = try NPY.loadImages(path: npy) }),
        ] as [(String, () throws -> Void)] {
            let error = expectDatasetError(load)
            XCTAssertTrue(error.map { "\($0)".contains("memory") } ?? false, "\(name): \(String(describing: error))")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "refusal must not read the file")
    }

    // MARK: - File-system cases

    /// Missing files, directories where files belong, files where directories belong,
    /// special files, symbolic links and broken metadata in the directory loaders.
    func testFileSystemCasesGiveTypedErrors() throws {
        let dir = try makeTemporaryDirectory(self)
        var rng = SeededGenerator(seed: 7)
        let fm = FileManager.default
        let valid10 = CIFARFormat.cifar10.records(2, using: &rng)
        let valid100 = CIFARFormat.cifar100Fine.records(2, using: &rng)
        let validNPY = NPY.encode(descr: "|u1", shape: [1, 2, 2, 1], payload: [1, 2, 3, 4])
        let file = dir + "/file.bin", missing = dir + "/missing.bin", subdir = dir + "/sub"
        try Self.put(valid10, at: file)
        try fm.createDirectory(atPath: subdir, withIntermediateDirectories: true)
        let fifo = dir + "/fifo"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)

        // Every single-file reader on every bad path kind.
        let readers: [(String, (String) throws -> Any)] = [
            ("loadCIFAR10(files:)", { try CIFAR.loadCIFAR10(files: [$0]) }),
            ("loadCIFAR100(file:)", { try CIFAR.loadCIFAR100(file: $0) }),
            ("NPY.loadImages", { try NPY.loadImages(path: $0) }),
            ("NPY.loadLabels", { try NPY.loadLabels(path: $0) }),
            ("NPY.loadImages labels", { try NPY.loadImages(path: dir + "/ok.npy", labelsPath: $0) }),
        ]
        try Self.put(validNPY, at: dir + "/ok.npy")
        var count = 0
        for (name, read) in readers {
            for (path, expected) in [
                (missing, DatasetError.missingFile(path: missing)), (subdir, .notAFile(path: subdir)),
                (fifo, .notAFile(path: fifo)), ("/dev/null", .notAFile(path: "/dev/null")),
                ("", .missingFile(path: "")),
            ] {
                count += 1
                XCTAssertEqual(expectDatasetError { try read(path) }, expected, "\(name) on \(path)")
            }
        }

        // Symbolic links to a valid file are followed; a dangling link is a missing file.
        let link = dir + "/link.bin", dangling = dir + "/dangling.bin"
        try fm.createSymbolicLink(atPath: link, withDestinationPath: file)
        try fm.createSymbolicLink(atPath: dangling, withDestinationPath: missing)
        XCTAssertEqual(try CIFAR.loadCIFAR10(files: [link]).count, 2)
        XCTAssertEqual(expectDatasetError { try CIFAR.loadCIFAR10(files: [dangling]) }, .missingFile(path: dangling))
        let npyLink = dir + "/link.npy"
        try fm.createSymbolicLink(atPath: npyLink, withDestinationPath: dir + "/ok.npy")
        XCTAssertEqual(try NPY.loadImages(path: npyLink).count, 1)

        // Directory loaders.
        let c10 = dir + "/cifar-10-batches-bin", c100 = dir + "/cifar-100-binary"
        try fm.createDirectory(atPath: c10, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: c100, withIntermediateDirectories: true)
        for split in CIFARSplit.allCases {
            XCTAssertEqual(
                expectDatasetError { try CIFAR.loadCIFAR10(directory: missing, split: split) },
                .missingFile(path: missing))
            XCTAssertEqual(
                expectDatasetError { try CIFAR.loadCIFAR10(directory: file, split: split) }, .notADirectory(path: file))
            XCTAssertEqual(
                expectDatasetError { try CIFAR.loadCIFAR100(directory: missing, split: split) },
                .missingFile(path: missing))
            XCTAssertEqual(
                expectDatasetError { try CIFAR.loadCIFAR100(directory: file, split: split) }, .notADirectory(path: file)
            )
        }
        // Empty directories.
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR10(directory: c10, split: .train) },
            .missingFile(path: c10 + "/data_batch_1.bin … data_batch_5.bin (none found)"))
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR10(directory: c10, split: .test) },
            .missingFile(path: c10 + "/test_batch.bin"))
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR100(directory: c100, split: .train) },
            .missingFile(path: c100 + "/train.bin"))
        // A directory where the test file belongs.
        try fm.createDirectory(atPath: c10 + "/test_batch.bin", withIntermediateDirectories: true)
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR10(directory: c10, split: .test) },
            .notAFile(path: c10 + "/test_batch.bin"))
        try fm.removeItem(atPath: c10 + "/test_batch.bin")
        // Batches 2 and 4 only, one of them corrupt, then both valid.
        try Self.put(valid10, at: c10 + "/data_batch_2.bin")
        try Self.put(Array(valid10.dropLast(5)), at: c10 + "/data_batch_4.bin")
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR10(directory: c10, split: .train) },
            .truncated(file: c10 + "/data_batch_4.bin", size: valid10.count - 5, recordLength: 3073, offset: 3073))
        try Self.put(valid10, at: c10 + "/data_batch_4.bin")
        XCTAssertEqual(try CIFAR.loadCIFAR10(directory: c10, split: .train).count, 4)
        // Class-name files: wrong count, not UTF-8, a directory, empty.
        let meta = c10 + "/batches.meta.txt"
        for (content, isValid) in [
            ("a\nb\n", false), ((0..<10).map { "c\($0)" }.joined(separator: "\n"), true),
            ((0..<11).map { "c\($0)" }.joined(separator: "\n"), false), ("", false),
        ] {
            try Self.put(Array(content.utf8), at: meta)
            if isValid {
                XCTAssertEqual(try CIFAR.loadCIFAR10(directory: c10, split: .train).classNames?.count, 10)
            } else {
                expectDatasetError { try CIFAR.loadCIFAR10(directory: c10, split: .train) }
            }
        }
        try Self.put([0xFF, 0xFE, 0x0A], at: meta)
        XCTAssertEqual(
            expectDatasetError { try CIFAR.loadCIFAR10(directory: c10, split: .train) },
            .badHeader(file: meta, reason: "not UTF-8 text"))
        try Self.put(valid100, at: c100 + "/train.bin")
        try Self.put(Array("x\n".utf8), at: c100 + "/coarse_label_names.txt")
        XCTAssertEqual(try CIFAR.loadCIFAR100(directory: c100, split: .train, labels: .fine).count, 2)
        expectDatasetError { try CIFAR.loadCIFAR100(directory: c100, split: .train, labels: .coarse) }
        print("File-system cases: \(count) bad paths × readers, plus directory-loader cases, all typed errors")
    }
}
