import Foundation
import TensorCore
import XCTest

/// Deterministic mutation fuzzing of ``SafeTensors/decode(_:source:)``.
///
/// Every input must either be rejected with a ``SafeTensorsError`` or decode to a file
/// that re-validates (re-encoding and decoding it again gives a bit-identical file).
/// A trap (crash) fails the whole test process; a hang would show up as a timeout.
///
/// By default about 10,000 inputs run (well under 5 s in a debug build). For a longer run
/// set the count, e.g.:
///
///     LAYERWISE_FUZZ_ITERATIONS=1000000 swift test --skip-build --filter SafeTensorsFuzzTests
///
/// and optionally `LAYERWISE_FUZZ_SEED=<UInt64>` to explore a different deterministic stream.
final class SafeTensorsFuzzTests: XCTestCase {
    /// Outcome bookkeeping shared by all inputs of one run.
    private struct Tally {
        var accepted = 0
        var rejected = 0
        var problemKinds: [String: Int] = [:]
        var failures: [String] = []
    }

    private static var iterations: Int {
        ProcessInfo.processInfo.environment["LAYERWISE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 10_000
    }

    private static var seed: UInt64 {
        ProcessInfo.processInfo.environment["LAYERWISE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5AFE_7E25
    }

    /// A few valid files covering metadata, empty and scalar tensors, unicode names.
    private func seedFiles() throws -> [[UInt8]] {
        var rng = SeededGenerator(seed: 99)
        return [
            try SafeTensors.encode(
                ["stage1.conv.weight": Tensor.normal([2, 3], using: &rng), "stage1.conv.bias": Tensor.zeros([3])],
                metadata: ["step": "12", "rng.state": "1,2,3,4"]),
            try SafeTensors.encode(
                [
                    "empty": Tensor.zeros([0]), "scalar": Tensor(shape: [], repeating: -0.0),
                    "x": Tensor.zeros([1, 0, 5]),
                    "y": Tensor.uniform([2, 2, 2], low: -1, high: 1, using: &rng),
                ]),
            try SafeTensors.encode([:], metadata: ["only": "metadata", "ünï": "\"\\\n"]),
            try SafeTensors.encode(["名前": Tensor.uniform([5], low: 0, high: 1, using: &rng)]),
        ]
    }

    private static func headerLength(_ bytes: [UInt8]) -> Int {
        (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
    }

    private static func withLength(_ bytes: [UInt8], _ n: UInt64) -> [UInt8] {
        var out = bytes
        for i in 0..<min(8, out.count) { out[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }
        return out
    }

    /// Replaces the header (keeping the buffer) and fixes the length prefix.
    private static func replacingHeader(_ bytes: [UInt8], with header: [UInt8]) -> [UInt8] {
        let n = headerLength(bytes)
        return withLength([0, 0, 0, 0, 0, 0, 0, 0], UInt64(header.count)) + header + Array(bytes[(8 + n)...])
    }

    /// Decodes one input and records whether it behaved.
    private func check(_ bytes: [UInt8], _ label: @autoclosure () -> String, _ tally: inout Tally) {
        do {
            let file = try SafeTensors.decode(bytes, source: "fuzz-input")
            tally.accepted += 1
            // The accepted file must re-validate and cannot hold more data than the input.
            let dataBytes = file.tensors.values.reduce(0) { $0 + 4 * $1.count }
            let reencoded = try SafeTensors.encode(file.tensors, metadata: file.metadata)
            let again = try SafeTensors.decode(reencoded)
            if !again.isBitIdentical(to: file) || dataBytes > bytes.count {
                tally.failures.append("\(label()): accepted file does not re-validate")
            }
        } catch let error as SafeTensorsError {
            tally.rejected += 1
            let kind = String(String(describing: error.problem).prefix { $0 != "(" })
            tally.problemKinds[kind, default: 0] += 1
            if error.source != "fuzz-input" || !error.description.contains("fuzz-input") {
                tally.failures.append("\(label()): error does not name the source: \(error)")
            }
        } catch {
            tally.failures.append("\(label()): not a SafeTensorsError: \(error)")
        }
    }

    /// Interesting numbers to splice into headers: boundaries of Int, UInt64, the header
    /// cap, non-integers and absurd sizes.
    private static let numbers = [
        "0", "1", "4", "-1", "-0", "1.5", "1e3", "1E-2", "4.0", "100000000", "100000001",
        "1000000000000", "4294967296", "2305843009213693952", "9223372036854775807",
        "9223372036854775808", "18446744073709551615", "18446744073709551616",
        "99999999999999999999999999999999", "[]", "[0]", "null", "\"1\"", "{}", "true",
    ]

    /// JSON-significant bytes, so random edits hit the parser's branches.
    private static let jsonBytes = Array("{}[]\":,\\-+.0123456789eEtfnu \n\u{0}\u{7F}".utf8) + [0xC3, 0xFF, 0xED]

    func testCorruptedInputsAreRejectedOrRevalidateNeverTrap() throws {
        let seeds = try seedFiles()
        for s in seeds { XCTAssertNoThrow(try SafeTensors.decode(s)) }
        var tally = Tally()
        var rng = SeededGenerator(seed: Self.seed)
        let start = Date()

        // 1. Systematic: empty input, truncation at every byte boundary of each header and
        //    every byte of the smaller buffers, absurd declared lengths.
        check([], "empty", &tally)
        for (k, s) in seeds.enumerated() {
            for cut in 0..<s.count { check(Array(s[..<cut]), "seed \(k) truncated to \(cut)", &tally) }
            let n = Self.headerLength(s)
            let lengths: [UInt64] = [
                0, 1, 2, UInt64(n) - 1, UInt64(n) + 1, UInt64(n) + 8, UInt64(s.count - 8),
                UInt64(s.count - 7), 99_999_999, 100_000_000, 100_000_001, 1_000_000_000_000,
                1 << 32, 1 << 63, (1 << 63) + 1, UInt64.max,
            ]
            for length in lengths { check(Self.withLength(s, length), "seed \(k) length \(length)", &tally) }
            // Trailing bytes after a valid file.
            check(s + [0], "seed \(k) + 1 byte", &tally)
            check(s + [0, 0, 0, 0], "seed \(k) + 4 bytes", &tally)
        }

        // 2. Handcrafted headers with huge shapes/offsets and deep nesting.
        let buffer4 = [UInt8](repeating: 0, count: 4)
        for a in Self.numbers {
            for b in ["[1]", "[\(a)]", "[\(a),\(a)]", "[2,\(a)]", "[\(a),0]"] {
                let header = "{\"t\":{\"dtype\":\"F32\",\"shape\":\(b),\"data_offsets\":[0,4]}}"
                check(safeTensorsBytes(header: header, buffer: buffer4), "shape \(b)", &tally)
            }
            for offsets in ["[0,\(a)]", "[\(a),4]", "[\(a),\(a)]", "[\(a)]", "\(a)"] {
                let header = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\(offsets)}}"
                check(safeTensorsBytes(header: header, buffer: buffer4), "offsets \(offsets)", &tally)
            }
        }
        let entry = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
        for header in [
            "[]", "\"x\"", "0", "null", "{\"t\":\(entry),\"t\":\(entry)}",
            "{\"__metadata__\":{\"k\":1},\"t\":\(entry)}",
            "{\"__metadata__\":[],\"t\":\(entry)}", "{\"t\":\(entry.replacingOccurrences(of: "F32", with: "F64"))}",
        ] {
            check(safeTensorsBytes(header: header, buffer: buffer4), "header \(header)", &tally)
        }
        for depth in [1, 2, 3, 63, 64, 65, 1_000, 100_000] {
            check(
                safeTensorsBytes(header: String(repeating: "[", count: depth) + String(repeating: "]", count: depth)),
                "depth \(depth)", &tally)
            check(
                safeTensorsBytes(
                    header: "{\"t\":" + String(repeating: "{\"a\":", count: depth) + "1"
                        + String(repeating: "}", count: depth + 1)),
                "object depth \(depth)", &tally)
        }

        // 3. Random mutations of the seeds until the budget is spent.
        var iteration = 0
        while tally.accepted + tally.rejected < Self.iterations {
            iteration += 1
            let s = seeds[rng.nextInt(below: seeds.count)]
            let n = Self.headerLength(s)
            var m = s
            let op = rng.nextInt(below: 11)
            switch op {
            case 0:  // truncate somewhere in the data (or anywhere)
                m = Array(s[..<(8 + n + rng.nextInt(below: s.count - 8 - n + 1))])
                if rng.nextInt(below: 2) == 0 { m = Array(s[..<rng.nextInt(below: s.count + 1)]) }
            case 1:  // flip bits in the length prefix
                for _ in 0...rng.nextInt(below: 3) { m[rng.nextInt(below: 8)] ^= 1 << UInt8(rng.nextInt(below: 8)) }
            case 2:  // flip bits in the header
                for _ in 0...rng.nextInt(below: 4) { m[8 + rng.nextInt(below: n)] ^= 1 << UInt8(rng.nextInt(below: 8)) }
            case 3:  // flip bits anywhere (data flips should mostly be accepted)
                for _ in 0...rng.nextInt(below: 4) {
                    m[rng.nextInt(below: m.count)] ^= 1 << UInt8(rng.nextInt(below: 8))
                }
            case 4:  // overwrite header bytes with JSON-significant bytes
                for _ in 0...rng.nextInt(below: 3) {
                    m[8 + rng.nextInt(below: n)] = Self.jsonBytes[rng.nextInt(below: Self.jsonBytes.count)]
                }
            case 5:  // replace a number in the header with an interesting one, fixing the length
                var header = Array(s[8..<(8 + n)])
                let digitRuns = Self.digitRuns(header)
                if let run = digitRuns.isEmpty ? nil : digitRuns[rng.nextInt(below: digitRuns.count)] {
                    header.replaceSubrange(run, with: Array(Self.numbers[rng.nextInt(below: Self.numbers.count)].utf8))
                }
                m = Self.replacingHeader(s, with: header)
            case 6:  // insert or delete a chunk of the header, fixing the length
                var header = Array(s[8..<(8 + n)])
                let at = rng.nextInt(below: header.count + 1)
                if rng.nextInt(below: 2) == 0 {
                    let chunk = (0..<(1 + rng.nextInt(below: 8))).map { _ in
                        Self.jsonBytes[rng.nextInt(below: Self.jsonBytes.count)]
                    }
                    header.insert(contentsOf: chunk, at: at)
                } else {
                    header.removeSubrange(at..<min(header.count, at + 1 + rng.nextInt(below: 8)))
                }
                m = Self.replacingHeader(s, with: header)
            case 7:  // random bytes, with or without a plausible length prefix
                let count = rng.nextInt(below: 96)
                m = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if count >= 8, rng.nextInt(below: 2) == 0 {
                    m = Self.withLength(m, UInt64(rng.nextInt(below: count - 7)))
                }
            case 8:  // splice one seed's header onto another seed's buffer
                let other = seeds[rng.nextInt(below: seeds.count)]
                m = Self.replacingHeader(other, with: Array(s[8..<(8 + n)]))
            case 9:  // shift one tensor's [begin, end] by a few bytes (overlaps, holes)
                let header = String(decoding: s[8..<(8 + n)], as: UTF8.self)
                let pieces = header.components(separatedBy: "\"data_offsets\":[")
                if pieces.count > 1 {
                    let k = 1 + rng.nextInt(below: pieces.count - 1)
                    let parts = pieces[k].split(separator: "]", maxSplits: 1, omittingEmptySubsequences: false)
                    let bounds = parts[0].split(separator: ",").compactMap { Int($0) }
                    if bounds.count == 2, parts.count == 2 {
                        let delta = [-8, -4, 4, 8][rng.nextInt(below: 4)]
                        var edited = pieces
                        edited[k] = "\(bounds[0] + delta),\(bounds[1] + delta)]" + parts[1]
                        m = Self.replacingHeader(s, with: Array(edited.joined(separator: "\"data_offsets\":[").utf8))
                    }
                }
            default:  // duplicate or drop a slice of the buffer
                let bufferStart = 8 + n
                if s.count > bufferStart {
                    let a = bufferStart + rng.nextInt(below: s.count - bufferStart)
                    let b = min(s.count, a + 1 + rng.nextInt(below: 8))
                    if rng.nextInt(below: 2) == 0 {
                        m.insert(contentsOf: s[a..<b], at: a)
                    } else {
                        m.removeSubrange(a..<b)
                    }
                } else {
                    m.append(UInt8(truncatingIfNeeded: rng.next()))
                }
            }
            check(m, "iteration \(iteration) op \(op)", &tally)
            if tally.failures.count > 20 { break }
        }

        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(tally.failures, [], "first failures: \(tally.failures.prefix(10))")
        XCTAssertGreaterThanOrEqual(tally.accepted + tally.rejected, Self.iterations)
        // The mutations must reach deep validation, not just the length prefix: some inputs
        // survive (data-only flips), and most rejection paths are exercised.
        XCTAssertGreaterThan(tally.accepted, 0)
        let expectedKinds = [
            "fileTooShort", "headerTooLarge", "headerLengthBeyondFile", "headerNotUTF8", "invalidJSON",
            "headerNotAnObject", "duplicateName", "invalidMetadata", "invalidEntry", "unsupportedDtype",
            "invalidShape", "elementCountOverflow", "invalidOffsets", "byteLengthMismatch",
            "overlappingTensors", "uncoveredBytes",
        ]
        for kind in expectedKinds {
            XCTAssertGreaterThan(tally.problemKinds[kind, default: 0], 0, "no input was rejected with \(kind)")
        }
        print(
            "SafeTensors fuzz: \(tally.accepted + tally.rejected) inputs "
                + "(\(tally.accepted) accepted, \(tally.rejected) rejected) "
                + "in \(String(format: "%.2f", elapsed)) s; "
                + "rejections by kind: \(tally.problemKinds.sorted { $0.key < $1.key })"
        )
    }

    /// Ranges of ASCII digit runs in `header` (candidate numbers to replace).
    private static func digitRuns(_ header: [UInt8]) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var i = 0
        while i < header.count {
            if header[i] >= UInt8(ascii: "0"), header[i] <= UInt8(ascii: "9") {
                let start = i
                while i < header.count, header[i] >= UInt8(ascii: "0"), header[i] <= UInt8(ascii: "9") { i += 1 }
                runs.append(start..<i)
            } else {
                i += 1
            }
        }
        return runs
    }
}
