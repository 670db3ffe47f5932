import Foundation
import Layerwise
import XCTest

/// Where the experiments find their data and how they are switched on.
///
/// The experiments train real models on real CIFAR data for several minutes, so they
/// run only when `LAYERWISE_EXPERIMENTS=1`; otherwise every experiment test throws
/// `XCTSkip` saying how to enable it. Run them in a release build:
///
///     LAYERWISE_EXPERIMENTS=1 swift test -c release --filter ExperimentsTests
///
/// - `LAYERWISE_DATA`: the folder holding `cifar-10-batches-bin/` and
///   `cifar-100-binary/`. Default: the first `shared/data` found next to an ancestor of
///   this source file, i.e. `<repo>/../shared/data` (or any higher ancestor's).
/// - `LAYERWISE_THREADS`: OpenBLAS threads (default 2).
/// - `LAYERWISE_EXPERIMENTS_LOG`: a file to which every `[experiment]` line is also
///   appended as it happens (`swift test` shows the test's output only at the end).
enum ExperimentEnvironment {
    static let enableVariable = "LAYERWISE_EXPERIMENTS"
    static let dataVariable = "LAYERWISE_DATA"
    static let threadsVariable = "LAYERWISE_THREADS"
    static let logVariable = "LAYERWISE_EXPERIMENTS_LOG"
    static let command = "LAYERWISE_EXPERIMENTS=1 swift test -c release --filter ExperimentsTests"

    static var isEnabled: Bool { ProcessInfo.processInfo.environment[enableVariable] == "1" }

    /// Throws `XCTSkip` unless the experiments are enabled; returns the data folder otherwise.
    static func requireEnabled(file: String = #filePath) throws -> String {
        guard isEnabled else {
            throw XCTSkip(
                "real-data experiment (minutes of training): enable with `\(command)`"
                    + "; data from $\(dataVariable) or <repo>/../shared/data"
            )
        }
        return try dataDirectory(file: file)
    }

    /// `$LAYERWISE_DATA`, else the nearest `<ancestor>/shared/data` of `file`.
    static func dataDirectory(file: String = #filePath) throws -> String {
        if let explicit = ProcessInfo.processInfo.environment[dataVariable], !explicit.isEmpty {
            guard isDirectory(explicit) else {
                throw ExperimentSetupError.data("\(dataVariable)=\(explicit) is not a directory")
            }
            return explicit
        }
        var url = URL(fileURLWithPath: file).deletingLastPathComponent()
        while url.path != "/" && !url.path.isEmpty {
            let candidate = url.appendingPathComponent("shared/data").path
            if isDirectory(candidate) { return candidate }
            url = url.deletingLastPathComponent()
        }
        throw ExperimentSetupError.data(
            "no shared/data folder next to any ancestor of \(file)"
                + "; set \(dataVariable) to the folder holding cifar-10-batches-bin and cifar-100-binary"
        )
    }

    static var threads: Int {
        Int(ProcessInfo.processInfo.environment[threadsVariable] ?? "") ?? 2
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }
}

enum ExperimentSetupError: Error, CustomStringConvertible {
    case data(String)

    var description: String {
        switch self {
        case let .data(reason): return reason
        }
    }
}

/// Experiment output: one line per measured number, prefixed so it can be grepped out
/// of the test log (`grep '\[experiment\]'`).
func report(_ message: String) {
    let line = "[experiment] \(message)"
    print(line)
    fflush(nil)  // all streams: test logs interleave with XCTest output
    if let path = ProcessInfo.processInfo.environment[ExperimentEnvironment.logVariable], !path.isEmpty {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(Data((line + "\n").utf8))
            handle.closeFile()
        }
    }
}

func percent(_ v: Float?) -> String {
    guard let v, v.isFinite else { return "n/a" }
    return String(format: "%.2f%%", Double(v) * 100)
}
