import Layers
import XCTest

final class LayersPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
