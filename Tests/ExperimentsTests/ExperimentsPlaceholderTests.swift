import Layerwise
import XCTest

final class ExperimentsPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
