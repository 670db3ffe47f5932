import Layers
import TensorCore
import XCTest

final class WeightInitializerTests: XCTestCase {
    func testFansAndSpreads() {
        let (fanIn, fanOut) = WeightInitializer.fans(of: [64, 3, 6, 6])
        XCTAssertEqual(fanIn, 108)
        XCTAssertEqual(fanOut, 64 * 36)
        let shape = [200, 50, 3, 3]
        let cases: [(WeightInitializer, Float)] = [
            (.kaimingUniform, (2 / 450 as Float).squareRoot()),
            (.kaimingNormal, (2 / 450 as Float).squareRoot()),
            (.xavierUniform, (2 / (450 + 1800) as Float).squareRoot()),
            (.xavierNormal, (2 / (450 + 1800) as Float).squareRoot()),
            (.fanInUniform, (1 / (3 * 450) as Float).squareRoot()),  // U(±b) has std b/√3
        ]
        for (initializer, expectedStd) in cases {
            var rng = SeededGenerator(seed: 1)
            let w = initializer.makeWeight(shape: shape, using: &rng)
            XCTAssertEqual(w.shape, shape)
            let mean = w.scalars.reduce(0, +) / Float(w.count)
            let std = (w.scalars.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(w.count)).squareRoot()
            XCTAssertEqual(mean, 0, accuracy: expectedStd * 0.05, "\(initializer)")
            XCTAssertEqual(std, expectedStd, accuracy: expectedStd * 0.03, "\(initializer)")
        }
    }

    func testSameSeedSameWeights() throws {
        var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5)
        let x = try Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 3, using: &a)
        let y = try Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 3, using: &b)
        XCTAssertTrue(x.weight.value.isBitIdentical(to: y.weight.value))
        XCTAssertTrue(x.bias!.value.scalars.allSatisfy { $0 == 0 })
    }
}
