import Foundation

/// What went wrong writing TensorBoard logs.
public enum TensorBoardError: Error, Equatable, CustomStringConvertible {
    /// The log directory could not be created or the event file not opened.
    case cannotCreate(path: String, reason: String)
    /// Writing to the event file failed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotCreate(path, reason): return "cannot create TensorBoard log \(path): \(reason)"
        case let .writeFailed(path, reason): return "cannot write TensorBoard log \(path): \(reason)"
        }
    }
}

/// Writes one TensorBoard event file (`events.out.tfevents.<time>.<host>`) in a log
/// directory: scalars, PNG images and histograms, each a TFRecord-framed `Event`.
///
/// Records are buffered and appended on ``flush()`` (and on ``close()``); TensorBoard
/// reads a growing file, so an interrupted run keeps everything flushed before.
public final class TensorBoardWriter {
    /// The event file.
    public let path: String
    private let handle: FileHandle
    private var pending: [UInt8] = []
    private let clock: () -> Double

    /// Creates `logDirectory` if needed and opens a new event file in it.
    /// - Parameter clock: the wall time stamped on events (seconds since 1970).
    public init(logDirectory: String, clock: @escaping () -> Double = { Date().timeIntervalSince1970 }) throws {
        self.clock = clock
        do {
            try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        } catch {
            throw TensorBoardError.cannotCreate(path: logDirectory, reason: "\(error)")
        }
        let now = clock()
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        var name = "events.out.tfevents.\(Int(now)).\(host.isEmpty ? "localhost" : host)"
        var candidate = (logDirectory as NSString).appendingPathComponent(name)
        var n = 1
        while FileManager.default.fileExists(atPath: candidate) {  // two writers in one second
            name = "events.out.tfevents.\(Int(now)).\(host).\(n)"
            candidate = (logDirectory as NSString).appendingPathComponent(name)
            n += 1
        }
        path = candidate
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path)
        else {
            throw TensorBoardError.cannotCreate(path: candidate, reason: "cannot create the event file")
        }
        handle = h
        pending = TFRecord.frame(EventRecord.fileVersion(wallTime: now))
        try flush()
    }

    deinit { try? handle.close() }

    /// A scalar (e.g. a loss) at `step`.
    public func addScalar(_ tag: String, _ value: Float, step: Int) {
        append(tag: tag, step: step, .scalar(value))
    }

    /// A PNG image of `width`×`height` pixels at `step`.
    public func addImage(_ tag: String, png: [UInt8], width: Int, height: Int, step: Int) {
        append(tag: tag, step: step, .image(png: png, width: width, height: height))
    }

    /// A histogram of `values` at `step`.
    public func addHistogram(_ tag: String, values: [Float], step: Int, bucketCount: Int = 30) {
        append(tag: tag, step: step, .histogram(Histogram(values, bucketCount: bucketCount)))
    }

    /// Appends the buffered records to the file.
    public func flush() throws {
        guard !pending.isEmpty else { return }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(pending))
            try handle.synchronize()
        } catch {
            throw TensorBoardError.writeFailed(path: path, reason: "\(error)")
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes the file.
    public func close() throws {
        try flush()
        try? handle.close()
    }

    private func append(tag: String, step: Int, _ value: SummaryValue) {
        pending += TFRecord.frame(EventRecord.summary(wallTime: clock(), step: step, tag: tag, value: value))
    }
}
