import Foundation
import XCTest

@testable import Datasets

/// The example's embedded sample data loads with the library's own loaders.
final class EmbeddedSampleTests: XCTestCase {
    var resources: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Examples/ReproducePaper/Resources").path
    }

    func testCIFAR10SampleLoadsWithNamesAndAllClasses() throws {
        let train = try CIFAR.loadCIFAR10(directory: resources + "/cifar10_sample", split: .train)
        let validation = try CIFAR.loadCIFAR10(directory: resources + "/cifar10_sample", split: .test)
        XCTAssertEqual(train.count, 1200)
        XCTAssertEqual(validation.count, 400)
        XCTAssertEqual(train.classNames?.first, "airplane")
        XCTAssertEqual(Set(train.labels!), Set(0..<10))
        XCTAssertEqual(Set(validation.labels!), Set(0..<10))
    }

    func testCIFAR100SampleLoads() throws {
        let fine = try CIFAR.loadCIFAR100(directory: resources + "/cifar100_sample", split: .train)
        XCTAssertEqual(fine.count, 1000)
        XCTAssertEqual(fine.classNames?.count, 100)
        XCTAssertEqual(Set(fine.labels!).count, 100)
        let coarse = try CIFAR.loadCIFAR100(directory: resources + "/cifar100_sample", split: .train, labels: .coarse)
        XCTAssertEqual(coarse.classNames?.count, 20)
    }
}
