import Foundation
import TensorCore
import XCTest

final class SafeTensorsLargeFileTests: XCTestCase {
    /// A sparse file larger than the machine's memory is refused before anything is
    /// allocated for it (it used to make `reserveCapacity` trap).
    func testAFileLargerThanMemoryIsATypedError() throws {
        let path = NSTemporaryDirectory() + "SafeTensorsLargeFileTests-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data()))
        let size = off_t(ProcessInfo.processInfo.physicalMemory) * 2
        guard truncate(path, size) == 0 else { throw XCTSkip("cannot make a sparse file of \(size) bytes here") }
        XCTAssertThrowsError(try SafeTensors.read(path: path)) { error in
            guard let e = error as? SafeTensorsError, case let .readFailed(code, message) = e.problem else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(e.source, path)
            XCTAssertEqual(code, ENOMEM)
            XCTAssertTrue(message.contains("\(size) bytes"), message)
        }
    }
}
