import Foundation

/// Which part of a CIFAR directory to read.
public enum CIFARSplit: String, Sendable, CaseIterable {
    case train, test
}

/// Which CIFAR-100 label to expose: the 100 fine classes or the 20 superclasses.
public enum CIFAR100LabelKind: String, Sendable, CaseIterable {
    case fine, coarse
}

/// Readers for the official CIFAR-10 and CIFAR-100 binary formats.
///
/// - CIFAR-10 record: 3,073 bytes = 1 label byte (0–9) + 3,072 pixel bytes.
/// - CIFAR-100 record: 3,074 bytes = coarse label (0–19) + fine label (0–99) + 3,072 pixel bytes.
/// - Pixels: 1,024 red (32 × 32, row-major), then 1,024 green, then 1,024 blue.
///
/// Files are validated before use: they must be regular files whose size is a positive
/// multiple of the record length, and every label must be in range; errors name the file,
/// the record and its byte offset.
public enum CIFAR {
    /// Shape of a CIFAR image: 3 × 32 × 32.
    public static let imageShape = ImageShape(channels: 3, height: 32, width: 32)
    /// Bytes of pixels per record.
    public static let pixelBytes = 3 * 32 * 32
    /// CIFAR-10 record length (label + pixels).
    public static let cifar10RecordLength = 1 + pixelBytes
    /// CIFAR-100 record length (coarse label + fine label + pixels).
    public static let cifar100RecordLength = 2 + pixelBytes

    /// Loads and concatenates CIFAR-10 batch files, in the order given.
    /// - Throws: ``DatasetError`` for a missing, empty, truncated or out-of-range file.
    public static func loadCIFAR10(files: [String]) throws -> InMemoryImageDataset {
        guard !files.isEmpty else {
            throw DatasetError.invalidOption(
                name: "files", value: "[]", reason: "give at least one CIFAR-10 batch file")
        }
        var pixels = [UInt8]()
        var labels = [Int]()
        for file in files {
            try readRecords(
                file: file, labelBytes: 1, labelIndex: 0, labelLimits: [10],
                pixels: &pixels, labels: &labels)
        }
        return InMemoryImageDataset(
            validatedPixels: pixels, shape: imageShape, labels: labels, classCount: 10, classNames: nil)
    }

    /// Loads a CIFAR-10 directory in the official layout (`cifar-10-batches-bin`).
    ///
    /// `.train` reads whichever of `data_batch_1.bin` … `data_batch_5.bin` exist (at least
    /// one must); `.test` reads `test_batch.bin`. Class names come from `batches.meta.txt`
    /// when present (it must then list exactly 10 names).
    public static func loadCIFAR10(directory: String, split: CIFARSplit) throws -> InMemoryImageDataset {
        try FileReading.requireDirectory(directory)
        let files: [String]
        switch split {
        case .train:
            files = (1...5).map { join(directory, "data_batch_\($0).bin") }.filter { FileReading.isRegularFile($0) }
            guard !files.isEmpty else {
                throw DatasetError.missingFile(
                    path: join(directory, "data_batch_1.bin … data_batch_5.bin (none found)"))
            }
        case .test:
            files = [join(directory, "test_batch.bin")]
        }
        let data = try loadCIFAR10(files: files)
        let metaPath = join(directory, "batches.meta.txt")
        guard FileReading.isRegularFile(metaPath) else { return data }
        let names = try readNames(metaPath, expected: 10)
        return InMemoryImageDataset(
            validatedPixels: data.pixels, shape: imageShape, labels: data.labels, classCount: 10, classNames: names)
    }

    /// Loads one CIFAR-100 binary file (`train.bin` or `test.bin`).
    public static func loadCIFAR100(file: String, labels kind: CIFAR100LabelKind = .fine) throws -> InMemoryImageDataset
    {
        var pixels = [UInt8]()
        var labels = [Int]()
        try readRecords(
            file: file, labelBytes: 2, labelIndex: kind == .coarse ? 0 : 1, labelLimits: [20, 100],
            pixels: &pixels, labels: &labels)
        return InMemoryImageDataset(
            validatedPixels: pixels, shape: imageShape, labels: labels,
            classCount: kind == .coarse ? 20 : 100, classNames: nil)
    }

    /// Loads a CIFAR-100 directory in the official layout (`cifar-100-binary`): `train.bin`
    /// or `test.bin`, with names from `fine_label_names.txt` / `coarse_label_names.txt` when present.
    public static func loadCIFAR100(
        directory: String, split: CIFARSplit, labels kind: CIFAR100LabelKind = .fine
    ) throws -> InMemoryImageDataset {
        try FileReading.requireDirectory(directory)
        let data = try loadCIFAR100(file: join(directory, "\(split.rawValue).bin"), labels: kind)
        let namesPath = join(directory, kind == .fine ? "fine_label_names.txt" : "coarse_label_names.txt")
        guard FileReading.isRegularFile(namesPath) else { return data }
        let names = try readNames(namesPath, expected: kind == .fine ? 100 : 20)
        return InMemoryImageDataset(
            validatedPixels: data.pixels, shape: imageShape, labels: data.labels,
            classCount: names.count, classNames: names)
    }

    // MARK: - Internals

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func readNames(_ path: String, expected: Int) throws -> [String] {
        let names = try FileReading.readNameLines(path)
        guard names.count == expected else {
            throw DatasetError.badHeader(
                file: path, reason: "expected \(expected) class names (one per line), found \(names.count)")
        }
        return names
    }

    /// Validates one file and appends its records. Every label byte is range-checked
    /// (`labelLimits[j]` for label byte j); the label at `labelIndex` is kept.
    static func readRecords(
        file: String, labelBytes: Int, labelIndex: Int, labelLimits: [Int],
        pixels: inout [UInt8], labels: inout [Int]
    ) throws {
        let recordLength = labelBytes + pixelBytes
        let size = try FileReading.regularFileSize(file)
        try checkSize(size, recordLength: recordLength, file: file)
        let bytes = try FileReading.readBytes(file, count: size)
        try appendRecords(
            bytes, file: file, labelBytes: labelBytes, labelIndex: labelIndex, labelLimits: labelLimits,
            pixels: &pixels, labels: &labels)
    }

    /// A CIFAR file must hold a positive whole number of records.
    static func checkSize(_ size: Int, recordLength: Int, file: String) throws {
        guard size > 0 else { throw DatasetError.emptyFile(path: file) }
        guard size % recordLength == 0 else {
            throw DatasetError.truncated(
                file: file, size: size, recordLength: recordLength, offset: (size / recordLength) * recordLength)
        }
    }

    /// Decodes the bytes of one CIFAR-10 batch file held in memory, with exactly the checks
    /// of ``loadCIFAR10(files:)``. - Throws: ``DatasetError`` naming `source`.
    public static func decodeCIFAR10(_ bytes: [UInt8], source: String = "<memory>") throws -> InMemoryImageDataset {
        var pixels = [UInt8](), labels = [Int]()
        try checkSize(bytes.count, recordLength: cifar10RecordLength, file: source)
        try appendRecords(
            bytes, file: source, labelBytes: 1, labelIndex: 0, labelLimits: [10], pixels: &pixels, labels: &labels)
        return InMemoryImageDataset(
            validatedPixels: pixels, shape: imageShape, labels: labels, classCount: 10, classNames: nil)
    }

    /// Decodes the bytes of one CIFAR-100 file held in memory, with exactly the checks of
    /// ``loadCIFAR100(file:labels:)``. - Throws: ``DatasetError`` naming `source`.
    public static func decodeCIFAR100(
        _ bytes: [UInt8], labels kind: CIFAR100LabelKind = .fine, source: String = "<memory>"
    ) throws -> InMemoryImageDataset {
        var pixels = [UInt8](), labels = [Int]()
        try checkSize(bytes.count, recordLength: cifar100RecordLength, file: source)
        try appendRecords(
            bytes, file: source, labelBytes: 2, labelIndex: kind == .coarse ? 0 : 1, labelLimits: [20, 100],
            pixels: &pixels, labels: &labels)
        return InMemoryImageDataset(
            validatedPixels: pixels, shape: imageShape, labels: labels,
            classCount: kind == .coarse ? 20 : 100, classNames: nil)
    }

    /// Range-checks and appends the records of `bytes` (whose size ``checkSize`` accepted).
    static func appendRecords(
        _ bytes: [UInt8], file: String, labelBytes: Int, labelIndex: Int, labelLimits: [Int],
        pixels: inout [UInt8], labels: inout [Int]
    ) throws {
        let recordLength = labelBytes + pixelBytes
        let n = bytes.count / recordLength
        let start = pixels.count
        pixels.reserveCapacity(start + n * pixelBytes)
        labels.reserveCapacity(labels.count + n)
        try bytes.withUnsafeBufferPointer { src in
            for r in 0..<n {
                let offset = r * recordLength
                for j in 0..<labelBytes {
                    let value = Int(src[offset + j])
                    guard value < labelLimits[j] else {
                        throw DatasetError.labelOutOfRange(
                            file: file, record: r, offset: offset + j, value: value, limit: labelLimits[j])
                    }
                }
                labels.append(Int(src[offset + labelIndex]))
                pixels.append(
                    contentsOf: UnsafeBufferPointer(rebasing: src[(offset + labelBytes)..<(offset + recordLength)]))
            }
        }
    }
}
