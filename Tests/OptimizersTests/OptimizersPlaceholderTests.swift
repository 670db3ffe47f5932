import Optimizers
import XCTest

final class OptimizersPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
