import Losses
import XCTest

final class LossesPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
