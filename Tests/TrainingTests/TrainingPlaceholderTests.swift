import Layerwise
import XCTest

final class TrainingPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
