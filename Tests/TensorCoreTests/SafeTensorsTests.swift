import Foundation
import TensorCore
import XCTest

/// Builds a safetensors file byte by byte: length prefix, header text verbatim, buffer.
func safeTensorsBytes(header: String, buffer: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    let n = declaredLength ?? UInt64(h.count)
    return (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + h + buffer
}

/// The little-endian bytes of Float32 values.
func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32($0))) } }
}

final class SafeTensorsTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "SafeTensorsTests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Asserts that decoding `bytes` throws a SafeTensorsError whose problem satisfies `matches`.
    private func assertRejects(
        _ bytes: [UInt8], _ label: String, file: StaticString = #filePath, line: UInt = #line,
        _ matches: (SafeTensorsError.Problem) -> Bool
    ) {
        do {
            let decoded = try SafeTensors.decode(bytes, source: "case.safetensors")
            XCTFail("\(label): decoded \(decoded.tensors.keys.sorted()) instead of throwing", file: file, line: line)
        } catch let error as SafeTensorsError {
            XCTAssertEqual(error.source, "case.safetensors", file: file, line: line)
            XCTAssertTrue(error.description.contains("case.safetensors"), file: file, line: line)
            XCTAssertTrue(matches(error.problem), "\(label): unexpected \(error)", file: file, line: line)
        } catch {
            XCTFail("\(label): not a SafeTensorsError: \(error)", file: file, line: line)
        }
    }

    /// One F32 entry's JSON.
    private func entry(_ name: String, shape: String, offsets: String, dtype: String = "\"F32\"") -> String {
        "\"\(name)\":{\"dtype\":\(dtype),\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    // MARK: Round trips

    func testRoundTripIsBitExactIncludingSpecialValues() throws {
        let specialBits: [UInt32] = [
            0x8000_0000,  // -0.0
            0x7FC0_0000, 0x7FC0_0001, 0xFFC1_2345,  // quiet NaNs with payloads and sign
            0x7F80_0001, 0x7FA0_0000,  // signalling NaN bit patterns
            0x0000_0001, 0x807F_FFFF,  // smallest / largest-magnitude negative subnormal
            0x7F80_0000, 0xFF80_0000,  // ±infinity
            0x7F7F_FFFF, 0x0080_0000,  // largest finite, smallest normal
        ]
        var special = Tensor.zeros([specialBits.count])
        special.withUnsafeMutableBufferPointer { b in
            for (i, bits) in specialBits.enumerated() { b[i] = Float(bitPattern: bits) }
        }
        var rng = SeededGenerator(seed: 7)
        let tensors: [String: Tensor] = [
            "special": special,
            "empty": Tensor.zeros([0]),
            "emptyInside": Tensor.zeros([3, 0, 2]),
            "scalar": Tensor(shape: [], repeating: 2.5),
            "stage1.conv.weight": Tensor.normal([4, 3, 5, 5], using: &rng),
            "ünïcödé name \"quoted\"\n": Tensor.uniform([2, 3], low: -1, high: 1, using: &rng),
        ]
        let bytes = try SafeTensors.encode(tensors, metadata: ["step": "42"])
        let file = try SafeTensors.decode(bytes)
        XCTAssertEqual(Set(file.tensors.keys), Set(tensors.keys))
        for (name, tensor) in tensors {
            let decoded = try XCTUnwrap(file.tensors[name], name)
            XCTAssertEqual(decoded.shape, tensor.shape, name)
            XCTAssertTrue(decoded.isBitIdentical(to: tensor), "\(name) not bit-identical")
        }
        let decodedBits = try XCTUnwrap(file.tensors["special"]).scalars.map(\.bitPattern)
        XCTAssertEqual(decodedBits, specialBits)
        XCTAssertEqual(file.metadata, ["step": "42"])
        XCTAssertTrue(file.isBitIdentical(to: SafeTensorsFile(tensors: tensors, metadata: ["step": "42"])))
    }

    func testEncodingIsDeterministicSortedAndAligned() throws {
        var rng = SeededGenerator(seed: 3)
        let b = Tensor.uniform([3], low: 0, high: 1, using: &rng)
        let a = Tensor.uniform([2, 2], low: 0, high: 1, using: &rng)
        var first: [String: Tensor] = [:]
        first["b"] = b
        first["a"] = a
        first["c"] = Tensor.zeros([1])
        var second: [String: Tensor] = [:]
        second["c"] = Tensor.zeros([1])
        second["a"] = a
        second["b"] = b
        let meta1 = ["z": "1", "y": "2", "x": "3"]
        let meta2 = ["x": "3", "z": "1", "y": "2"]
        let bytes1 = try SafeTensors.encode(first, metadata: meta1)
        let bytes2 = try SafeTensors.encode(second, metadata: meta2)
        XCTAssertEqual(bytes1, bytes2)
        XCTAssertEqual(try SafeTensors.encode(first, metadata: meta1), bytes1)

        let n = bytes1[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(n % 8, 0, "header padded to 8 bytes")
        let header = String(decoding: bytes1[8..<(8 + n)], as: UTF8.self)
        let json = String(header.reversed().drop { $0 == " " }.reversed())
        XCTAssertLessThan(header.count - json.count, 8, "only the padding is spaces")
        // Metadata first, then names in sorted order, laid out contiguously in that order.
        XCTAssertEqual(
            json,
            "{\"__metadata__\":{\"x\":\"3\",\"y\":\"2\",\"z\":\"1\"},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[16,28]},"
                + "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[28,32]}}")
        XCTAssertEqual(Array(bytes1[(8 + n)...]), littleEndianBytes(a.scalars + b.scalars + [0]))
    }

    func testKnownFileHasTheReferenceBytes() throws {
        // What the reference writer (huggingface/safetensors) produces for {"a": [1, 2]}:
        // compact JSON padded with spaces to a multiple of 8, then little-endian floats.
        let bytes = try SafeTensors.encode(["a": try Tensor(shape: [2], values: [1, 2])])
        let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}" + "  "  // 54 + 2 = 56
        XCTAssertEqual(bytes, [56, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8) + [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])
    }

    func testHandBuiltFileDecodes() throws {
        // Written byte by byte, unpadded, exactly as a minimal third-party writer would.
        var bytes: [UInt8] = [54, 0, 0, 0, 0, 0, 0, 0]
        bytes += Array("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}".utf8)
        bytes += [0x00, 0x00, 0xC0, 0x3F]  // 1.5
        bytes += [0x00, 0x00, 0x20, 0xC1]  // -10
        let file = try SafeTensors.decode(bytes)
        XCTAssertEqual(file.metadata, [:])
        let a = try XCTUnwrap(file.tensors["a"])
        XCTAssertEqual(a.shape, [2])
        XCTAssertEqual(a.scalars, [1.5, -10])

        // Whitespace, reordered fields, null metadata, escapes in names: all valid JSON.
        let loose = safeTensorsBytes(
            header:
                " { \"__metadata__\" : null ,"
                + " \"b\\u00e9\\n\" : { \"shape\" : [ 1 ]"
                + " , \"data_offsets\" : [ 0 , 4 ] , \"dtype\" : \"F32\" } }\n\t ",
            buffer: littleEndianBytes([3]))
        let looseFile = try SafeTensors.decode(loose)
        XCTAssertEqual(looseFile.tensors["bé\n"]?.scalars, [3])
        XCTAssertEqual(looseFile.metadata, [:])
    }

    func testFileWrittenByTheReferenceImplementationDecodesAndReencodesIdentically() throws {
        // Written by huggingface safetensors 0.8.0 (Python, numpy backend):
        //   bits = np.array([0x80000000, 0x7FC00001, 0x00000001, 0x7F800000, 0x3F800000], dtype=np.uint32)
        //   save_file({"b": bits.view(np.float32),
        //              "a": np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1,
        //              "empty": np.zeros((0,), dtype=np.float32), "scalar": np.array(2.5, dtype=np.float32)},
        //             path, metadata={"step": "12", "z": "ünï \"q\""})
        let reference: String =
            "GAEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJzdGVwIjoiMTIiLCJ6Ijoiw7xuw68gXCJxXCIifSwiYSI6eyJkdHlwZSI6IkYzMiIs"
            + "InNoYXBlIjpbMiwzXSwiZGF0YV9vZmZzZXRzIjpbMCwyNF19LCJiIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOls1XSwiZGF0YV9v"
            + "ZmZzZXRzIjpbMjQsNDRdfSwiZW1wdHkiOnsiZHR5cGUiOiJGMzIiLCJzaGFwZSI6WzBdLCJkYXRhX29mZnNldHMiOls0NCw0NF19"
            + "LCJzY2FsYXIiOnsiZHR5cGUiOiJGMzIiLCJzaGFwZSI6W10sImRhdGFfb2Zmc2V0cyI6WzQ0LDQ4XX19ICAgAACAvwAAAL8AAAAA"
            + "AAAAPwAAgD8AAMA/AAAAgAEAwH8BAAAAAACAfwAAgD8AACBA"
        let bytes = try Array(XCTUnwrap(Data(base64Encoded: reference)))
        let file = try SafeTensors.decode(bytes)
        XCTAssertEqual(file.metadata, ["step": "12", "z": "ünï \"q\""])
        XCTAssertEqual(file.tensors["a"]?.shape, [2, 3])
        XCTAssertEqual(file.tensors["a"]?.scalars, [-1, -0.5, 0, 0.5, 1, 1.5])
        XCTAssertEqual(
            file.tensors["b"]?.scalars.map(\.bitPattern),
            [0x8000_0000, 0x7FC0_0001, 0x0000_0001, 0x7F80_0000, 0x3F80_0000])
        XCTAssertEqual(file.tensors["empty"]?.shape, [0])
        XCTAssertEqual(file.tensors["scalar"]?.shape, [])
        XCTAssertEqual(file.tensors["scalar"]?.scalars, [2.5])
        // Our writer produces the reference writer's exact bytes.
        XCTAssertEqual(try SafeTensors.encode(file.tensors, metadata: file.metadata), bytes)
    }

    func testMetadataRoundTrip() throws {
        let metadata = [
            "rng.state": "1,2,3,18446744073709551615",
            "step": "1000",
            "empty": "",
            "quotes \"and\" \\backslashes\\": "line1\nline2\ttab\u{01}\u{1F}",
            "ünïcödé 🎉": "ẞ 𝄞",
        ]
        let bytes = try SafeTensors.encode([:], metadata: metadata)
        let file = try SafeTensors.decode(bytes)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertTrue(file.tensors.isEmpty)
    }

    func testEmptyFileWithNoTensorsRoundTrips() throws {
        let bytes = try SafeTensors.encode([:])
        XCTAssertEqual(bytes, [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        let file = try SafeTensors.decode(bytes)
        XCTAssertTrue(file.tensors.isEmpty && file.metadata.isEmpty)
    }

    func testWriteAndReadThroughTheFileSystem() throws {
        let path = directory + "/model.safetensors"
        var rng = SeededGenerator(seed: 11)
        let tensors = ["w": Tensor.normal([8, 8], using: &rng), "b": Tensor.zeros([8])]
        try SafeTensors.write(tensors, metadata: ["epoch": "3"], to: path)
        let file = try SafeTensors.read(path: path)
        XCTAssertTrue(file.isBitIdentical(to: SafeTensorsFile(tensors: tensors, metadata: ["epoch": "3"])))
        XCTAssertEqual(
            try Array(Data(contentsOf: URL(fileURLWithPath: path))),
            try SafeTensors.encode(tensors, metadata: ["epoch": "3"]))

        // Overwrite in place.
        try SafeTensors.write(["w": Tensor.zeros([1])], to: path)
        XCTAssertEqual(try SafeTensors.read(path: path).tensors["w"]?.shape, [1])
    }

    // MARK: Errors naming the file

    func testReservedTensorNameIsRejected() {
        XCTAssertThrowsError(try SafeTensors.encode(["__metadata__": Tensor.zeros([1])])) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.problem, .reservedName("__metadata__"))
        }
        let path = directory + "/x.safetensors"
        XCTAssertThrowsError(try SafeTensors.write(["__metadata__": Tensor.zeros([1])], to: path)) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.source, path)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testMissingFileAndDirectoryAreTypedErrorsNamingThePath() throws {
        let missing = directory + "/nope.safetensors"
        XCTAssertThrowsError(try SafeTensors.read(path: missing)) { error in
            let e = error as? SafeTensorsError
            XCTAssertEqual(e?.source, missing)
            XCTAssertEqual(e?.problem, .fileNotFound)
            XCTAssertTrue(String(describing: error).contains(missing))
        }
        XCTAssertThrowsError(try SafeTensors.read(path: directory)) { error in
            let e = error as? SafeTensorsError
            XCTAssertEqual(e?.source, directory)
            XCTAssertEqual(e?.problem, .notARegularFile)
        }
        XCTAssertThrowsError(try SafeTensors.write([:], to: directory + "/missing/dir/x.safetensors")) { error in
            XCTAssertEqual(
                error as? AtomicFileError,
                .directoryMissing(directory: directory + "/missing/dir", path: directory + "/missing/dir/x.safetensors")
            )
        }
        // A corrupt file on disk is reported with its path.
        let corrupt = directory + "/corrupt.safetensors"
        try AtomicFile.write([1, 2, 3], to: corrupt)
        XCTAssertThrowsError(try SafeTensors.read(path: corrupt)) { error in
            XCTAssertEqual(
                error as? SafeTensorsError, SafeTensorsError(source: corrupt, problem: .fileTooShort(byteCount: 3)))
            XCTAssertTrue(String(describing: error).contains(corrupt))
        }
    }

    // MARK: Malformed input, one case per check

    func testLengthPrefixProblems() {
        for n in 0..<8 {
            assertRejects(Array(repeating: 0, count: n), "\(n) bytes") { $0 == .fileTooShort(byteCount: n) }
        }
        assertRejects(safeTensorsBytes(header: "{}", declaredLength: 1 << 63), "2^63") {
            $0 == .headerTooLarge(declared: 1 << 63, limit: 100_000_000)
        }
        assertRejects(safeTensorsBytes(header: "{}", declaredLength: 1_000_000_000_000), "10^12") {
            if case .headerTooLarge = $0 { return true } else { return false }
        }
        assertRejects(safeTensorsBytes(header: "{}", declaredLength: UInt64.max), "2^64-1") {
            if case .headerTooLarge = $0 { return true } else { return false }
        }
        assertRejects(safeTensorsBytes(header: "{}", declaredLength: 3), "beyond file") {
            $0 == .headerLengthBeyondFile(declared: 3, available: 2)
        }
        assertRejects(safeTensorsBytes(header: "{}", declaredLength: 100_000_000), "at the cap but beyond file") {
            $0 == .headerLengthBeyondFile(declared: 100_000_000, available: 2)
        }
    }

    func testHeaderTextProblems() {
        assertRejects([2, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0xFF], "invalid UTF-8") { $0 == .headerNotUTF8 }
        assertRejects([4, 0, 0, 0, 0, 0, 0, 0, 0x22, 0xED, 0xA0, 0x80], "encoded surrogate") { $0 == .headerNotUTF8 }
        let notJSON = [
            "", "{", "{\"a\"", "{\"a\":}", "{\"a\":1,}", "{'a':1}", "{} x", "{}\0", "[1 2]",
            "{\"a\":tru}", "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":1e}", "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\n\"}",
            String(repeating: "[", count: 100_000), String(repeating: "{\"a\":", count: 100) + "1",
        ]
        for text in notJSON {
            assertRejects(safeTensorsBytes(header: text), "not JSON: \(text.prefix(20))") {
                if case .invalidJSON = $0 { return true } else { return false }
            }
        }
        for (text, kind) in [
            ("[]", "an array"), ("\"x\"", "a string"), ("42", "the number 42"), ("null", "null"),
            ("true", "the boolean true"),
        ] {
            assertRejects(safeTensorsBytes(header: text), "not an object: \(text)") {
                $0 == .headerNotAnObject(found: kind)
            }
        }
    }

    func testMetadataProblems() {
        assertRejects(safeTensorsBytes(header: "{\"__metadata__\":{\"k\":1}}"), "number value") {
            if case .invalidMetadata(key: "k", _) = $0 { return true } else { return false }
        }
        assertRejects(safeTensorsBytes(header: "{\"__metadata__\":{\"k\":null}}"), "null value") {
            if case .invalidMetadata(key: "k", _) = $0 { return true } else { return false }
        }
        assertRejects(safeTensorsBytes(header: "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"), "duplicate key") {
            $0 == .invalidMetadata(key: "k", reason: "duplicate key")
        }
        assertRejects(safeTensorsBytes(header: "{\"__metadata__\":[\"k\"]}"), "array") {
            if case .invalidMetadata(key: nil, _) = $0 { return true } else { return false }
        }
        assertRejects(safeTensorsBytes(header: "{\"__metadata__\":{},\"__metadata__\":{}}"), "twice") {
            $0 == .duplicateName("__metadata__")
        }
    }

    func testEntryProblems() {
        func bytes(_ entries: String..., buffer: [UInt8] = littleEndianBytes([1])) -> [UInt8] {
            safeTensorsBytes(header: "{" + entries.joined(separator: ",") + "}", buffer: buffer)
        }
        func isInvalidEntry(_ p: SafeTensorsError.Problem, _ fragment: String) -> Bool {
            if case let .invalidEntry(tensor: "t", reason) = p {
                return reason.contains(fragment)
            } else {
                return false
            }
        }
        assertRejects(bytes("\"t\":[1]"), "entry not an object") { isInvalidEntry($0, "expected an object") }
        assertRejects(bytes("\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}"), "missing dtype") {
            isInvalidEntry($0, "missing field 'dtype'")
        }
        assertRejects(bytes("\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"), "missing shape") {
            isInvalidEntry($0, "missing field 'shape'")
        }
        assertRejects(bytes("\"t\":{\"dtype\":\"F32\",\"shape\":[1]}"), "missing offsets") {
            isInvalidEntry($0, "missing field 'data_offsets'")
        }
        assertRejects(bytes(entry("t", shape: "[1]", offsets: "[0,4]", dtype: "32")), "dtype not string") {
            isInvalidEntry($0, "'dtype' must be a string")
        }
        assertRejects(bytes(entry("t", shape: "1", offsets: "[0,4]")), "shape not array") {
            isInvalidEntry($0, "'shape' must be an array")
        }
        assertRejects(bytes(entry("t", shape: "[1]", offsets: "{}")), "offsets not array") {
            isInvalidEntry($0, "'data_offsets' must be an array")
        }
        assertRejects(
            bytes("\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"), "duplicate field"
        ) {
            isInvalidEntry($0, "duplicate field 'dtype'")
        }
        assertRejects(
            bytes("\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}"), "unknown field"
        ) {
            isInvalidEntry($0, "unknown field 'extra'")
        }
        for dtype in ["F64", "F16", "BF16", "I64", "U8", "BOOL", "f32", "", "FLOAT"] {
            assertRejects(bytes(entry("t", shape: "[1]", offsets: "[0,4]", dtype: "\"\(dtype)\"")), "dtype \(dtype)") {
                $0 == .unsupportedDtype(tensor: "t", dtype: dtype)
            }
        }
        assertRejects(
            bytes(entry("t", shape: "[1]", offsets: "[0,4]"), entry("t", shape: "[0]", offsets: "[4,4]")),
            "duplicate name"
        ) {
            $0 == .duplicateName("t")
        }
    }

    func testShapeProblems() {
        func isInvalidShape(_ p: SafeTensorsError.Problem, _ fragment: String) -> Bool {
            if case let .invalidShape(tensor: "t", reason) = p {
                return reason.contains(fragment)
            } else {
                return false
            }
        }
        let buffer = littleEndianBytes([1])
        for (shape, fragment) in [
            ("[-1]", "negative"), ("[1.0]", "not an integer"), ("[1e0]", "not an integer"), ("[\"1\"]", "a string"),
            ("[null]", "null"), ("[[1]]", "an array"), ("[true]", "boolean"), ("[99999999999999999999]", "too large"),
            ("[-0]", "negative"),
        ] {
            assertRejects(
                safeTensorsBytes(header: "{" + entry("t", shape: shape, offsets: "[0,4]") + "}", buffer: buffer),
                "shape \(shape)"
            ) {
                isInvalidShape($0, fragment)
            }
        }
        // Overflowing element counts are rejected before anything is allocated.
        for shape in [
            "[4294967296,4294967296]", "[9223372036854775807,2]", "[3037000500,3037000500,0]", "[2305843009213693952]",
        ] {
            assertRejects(
                safeTensorsBytes(header: "{" + entry("t", shape: shape, offsets: "[0,4]") + "}", buffer: buffer),
                "overflow \(shape)"
            ) {
                if case .elementCountOverflow(tensor: "t", _) = $0 { return true } else { return false }
            }
        }
        // Absurd but representable counts (10^12 elements) fail the size check, not an allocation.
        assertRejects(
            safeTensorsBytes(
                header: "{" + entry("t", shape: "[1000000,1000000]", offsets: "[0,4]") + "}", buffer: buffer), "10^12"
        ) {
            $0 == .byteLengthMismatch(tensor: "t", expected: 4_000_000_000_000, actual: 4)
        }
    }

    func testOffsetProblems() {
        func isInvalidOffsets(_ p: SafeTensorsError.Problem, _ fragment: String) -> Bool {
            if case let .invalidOffsets(tensor: "t", reason) = p {
                return reason.contains(fragment)
            } else {
                return false
            }
        }
        let buffer = littleEndianBytes([1, 2])
        let cases: [(String, String)] = [
            ("[0]", "found 1 elements"), ("[0,4,8]", "found 3 elements"), ("[]", "found 0 elements"),
            ("[-4,0]", "negative"), ("[0,4.0]", "not an integer"), ("[\"0\",4]", "a string"),
            ("[8,4]", "begin 8 > end 4"), ("[4,12]", "beyond the 8-byte buffer"),
            ("[0,9223372036854775808]", "too large"), ("[1000000000000,1000000000004]", "beyond"),
        ]
        for (offsets, fragment) in cases {
            assertRejects(
                safeTensorsBytes(header: "{" + entry("t", shape: "[1]", offsets: offsets) + "}", buffer: buffer),
                "offsets \(offsets)"
            ) {
                isInvalidOffsets($0, fragment)
            }
        }
        assertRejects(
            safeTensorsBytes(header: "{" + entry("t", shape: "[1]", offsets: "[0,8]") + "}", buffer: buffer),
            "length mismatch"
        ) {
            $0 == .byteLengthMismatch(tensor: "t", expected: 4, actual: 8)
        }
        assertRejects(
            safeTensorsBytes(header: "{" + entry("t", shape: "[3]", offsets: "[0,8]") + "}", buffer: buffer),
            "length mismatch 2"
        ) {
            $0 == .byteLengthMismatch(tensor: "t", expected: 12, actual: 8)
        }
    }

    func testCoverageProblems() {
        let buffer = littleEndianBytes([1, 2, 3])
        func file(_ entries: String...) -> [UInt8] {
            safeTensorsBytes(header: "{" + entries.joined(separator: ",") + "}", buffer: buffer)
        }
        assertRejects(
            file(entry("a", shape: "[2]", offsets: "[0,8]"), entry("b", shape: "[2]", offsets: "[4,12]")), "overlap"
        ) {
            $0 == .overlappingTensors(first: "a", second: "b")
        }
        assertRejects(
            file(entry("a", shape: "[3]", offsets: "[0,12]"), entry("b", shape: "[0]", offsets: "[4,4]")),
            "empty inside"
        ) {
            $0 == .overlappingTensors(first: "a", second: "b")
        }
        assertRejects(
            file(entry("a", shape: "[1]", offsets: "[0,4]"), entry("b", shape: "[1]", offsets: "[8,12]")), "hole"
        ) {
            $0 == .uncoveredBytes(begin: 4, end: 8)
        }
        assertRejects(
            file(entry("a", shape: "[1]", offsets: "[4,8]"), entry("b", shape: "[1]", offsets: "[8,12]")),
            "leading hole"
        ) {
            $0 == .uncoveredBytes(begin: 0, end: 4)
        }
        assertRejects(file(entry("a", shape: "[2]", offsets: "[0,8]")), "trailing bytes") {
            $0 == .uncoveredBytes(begin: 8, end: 12)
        }
        assertRejects(file(), "no tensors but a buffer") { $0 == .uncoveredBytes(begin: 0, end: 12) }
        // Out-of-order offsets and empty tensors at the boundaries are fine.
        let ok = file(
            entry("z", shape: "[1]", offsets: "[0,4]"), entry("a", shape: "[2]", offsets: "[4,12]"),
            entry("e", shape: "[0]", offsets: "[12,12]"), entry("f", shape: "[2,0]", offsets: "[0,0]"))
        XCTAssertEqual(try SafeTensors.decode(ok).tensors["a"]?.scalars, [2, 3])
        XCTAssertEqual(try SafeTensors.decode(ok).tensors["f"]?.shape, [2, 0])
    }

    func testErrorDescriptionsNameTheProblem() {
        let e = SafeTensorsError(
            source: "/ckpt/stage1.safetensors", problem: .byteLengthMismatch(tensor: "w", expected: 16, actual: 8))
        XCTAssertEqual(
            e.description,
            "safetensors /ckpt/stage1.safetensors: tensor 'w': shape needs 16 bytes but data_offsets span 8")
    }
}
