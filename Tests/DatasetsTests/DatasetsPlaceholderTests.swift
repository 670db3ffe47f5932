import Datasets
import XCTest

final class DatasetsPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
