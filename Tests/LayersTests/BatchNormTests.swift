import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class BatchNormTests: XCTestCase {
    private func randomAffine(_ bn: BatchNorm, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        bn.weight.value = .uniform([bn.features], low: 0.5, high: 1.5, using: &rng)
        bn.bias.value = .uniform([bn.features], low: -0.5, high: 0.5, using: &rng)
    }

    func testGradientsConvForm() throws {
        let bn = try BatchNorm(features: 3)
        randomAffine(bn, seed: 1)
        var rng = SeededGenerator(seed: 2)
        assertGradientsMatch(bn, input: .uniform([4, 3, 2, 3], low: -2, high: 2, using: &rng))
    }

    func testGradientsLinearForm() throws {
        let bn = try BatchNorm(features: 4)
        randomAffine(bn, seed: 3)
        var rng = SeededGenerator(seed: 4)
        assertGradientsMatch(bn, input: .uniform([6, 4], low: -2, high: 2, using: &rng))
    }

    func testTrainingNormalisesAndUpdatesRunningStatistics() throws {
        let bn = try BatchNorm(features: 1, momentum: 0.5)
        let x = try Tensor(shape: [4, 1], values: [1, 2, 3, 6])  // mean 3, biased var 3.5, unbiased 14/3
        let y = bn.forward(x, mode: .training)
        let std = (3.5 + 1e-5 as Float).squareRoot()
        for (i, v) in [1, 2, 3, 6].enumerated() { XCTAssertEqual(y[flat: i], (Float(v) - 3) / std, accuracy: 1e-5) }
        XCTAssertEqual(bn.runningMean.value[flat: 0], 0.5 * 0 + 0.5 * 3, accuracy: 1e-6)
        XCTAssertEqual(bn.runningVar.value[flat: 0], 0.5 * 1 + 0.5 * 14 / 3, accuracy: 1e-5)
        XCTAssertEqual(bn.buffers.map(\.name), ["runningMean", "runningVar"])
        XCTAssertEqual(bn.parameters.map(\.name), ["weight", "bias"])
    }

    func testInferenceUsesRunningStatisticsAndLeavesThemAlone() throws {
        let bn = try BatchNorm(features: 2)
        bn.runningMean.value = try Tensor(shape: [2], values: [1, -1])
        bn.runningVar.value = try Tensor(shape: [2], values: [4, 0.25])
        bn.weight.value = try Tensor(shape: [2], values: [2, 1])
        bn.bias.value = try Tensor(shape: [2], values: [0, 10])
        // [N=1, C=2, H=1, W=2]
        let x = try Tensor(shape: [1, 2, 1, 2], values: [3, 5, -1, 0])
        let y = bn.forward(x, mode: .inference)
        let e: Float = 1e-5
        let expected: [Float] = [
            2 * (3 - 1) / (4 + e).squareRoot(), 2 * (5 - 1) / (4 + e).squareRoot(),
            10 + (-1 + 1) / (0.25 + e).squareRoot(), 10 + (0 + 1) / (0.25 + e).squareRoot(),
        ]
        for i in 0..<4 { XCTAssertEqual(y[flat: i], expected[i], accuracy: 1e-5) }
        XCTAssertEqual(bn.runningMean.value.scalars, [1, -1])
        XCTAssertEqual(bn.runningVar.value.scalars, [4, 0.25])
    }

    func testRunningStatisticsConvergeToTheDataStatistics() throws {
        let bn = try BatchNorm(features: 2)
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            // Channel 0 ~ N(3, 2²), channel 1 ~ N(−1, 0.5²), as [N, C, H, W].
            var x = Tensor.zeros([8, 2, 2, 2])
            for n in 0..<8 {
                for i in 0..<4 {
                    x[flat: n * 8 + i] = rng.nextNormal(mean: 3, standardDeviation: 2)
                    x[flat: n * 8 + 4 + i] = rng.nextNormal(mean: -1, standardDeviation: 0.5)
                }
            }
            _ = bn.forward(x, mode: .training)
        }
        XCTAssertEqual(bn.runningMean.value[flat: 0], 3, accuracy: 0.4)
        XCTAssertEqual(bn.runningMean.value[flat: 1], -1, accuracy: 0.1)
        XCTAssertEqual(bn.runningVar.value[flat: 0], 4, accuracy: 1.2)
        XCTAssertEqual(bn.runningVar.value[flat: 1], 0.25, accuracy: 0.08)
    }

    func testErrors() throws {
        XCTAssertThrowsError(try BatchNorm(features: 0))
        XCTAssertThrowsError(try BatchNorm(features: 2, momentum: 1.5)) {
            guard case let .invalidConfiguration(_, option, _, _)? = $0 as? LayerError else { return XCTFail() }
            XCTAssertEqual(option, "momentum")
        }
        XCTAssertThrowsError(try BatchNorm(features: 2, epsilon: 0))
        let bn = try BatchNorm(features: 3)
        XCTAssertThrowsError(try bn.outputShape(for: [2, 4, 5, 5]))
        XCTAssertThrowsError(try bn.outputShape(for: [3]))
        XCTAssertEqual(try bn.outputShape(for: [2, 3, 5, 5]), [2, 3, 5, 5])
    }
}
