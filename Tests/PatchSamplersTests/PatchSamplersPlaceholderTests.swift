import PatchSamplers
import XCTest

final class PatchSamplersPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
