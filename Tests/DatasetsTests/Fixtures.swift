import Foundation
import XCTest

@testable import Datasets

/// A fresh temporary directory, removed when the test ends.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("layerwise-datasets-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// CIFAR-10 records whose pixel bytes encode (record, channel, position) deterministically.
func cifar10Records(labels: [UInt8]) -> [UInt8] {
    var out = [UInt8]()
    for (r, l) in labels.enumerated() {
        out.append(l)
        for i in 0..<3072 { out.append(UInt8((r * 7 + i) & 0xFF)) }
    }
    return out
}

func cifar100Records(_ pairs: [(coarse: UInt8, fine: UInt8)]) -> [UInt8] {
    var out = [UInt8]()
    for (r, p) in pairs.enumerated() {
        out.append(p.coarse)
        out.append(p.fine)
        for i in 0..<3072 { out.append(UInt8((r * 13 + i * 3) & 0xFF)) }
    }
    return out
}

/// Asserts that `body` throws a ``DatasetError`` and returns it.
@discardableResult
func expectDatasetError<T>(_ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> DatasetError?
{
    do {
        _ = try body()
        XCTFail("expected a DatasetError", file: file, line: line)
        return nil
    } catch let error as DatasetError {
        XCTAssertFalse(error.description.isEmpty, file: file, line: line)
        return error
    } catch {
        XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
        return nil
    }
}
