import Augmentations
import XCTest

final class AugmentationsPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
