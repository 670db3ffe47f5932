import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

/// y = 2x, but backward claims 2.2x: a deliberately wrong layer.
private final class MisScaledLayer: Layer {
    let scale: Parameter
    let backwardFactor: Float
    private var input: Tensor?
    init(backwardFactor: Float) {
        scale = Parameter(name: "scale", value: Tensor(shape: [1], repeating: 2))
        self.backwardFactor = backwardFactor
    }
    var parameters: [Parameter] { [scale] }
    func outputShape(for inputShape: [Int]) throws -> [Int] { inputShape }
    func forward(_ input: Tensor, mode: Mode) -> Tensor {
        self.input = input
        var y = input
        let s = scale.value[flat: 0]
        y.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] *= s } }
        return y
    }
    func backward(_ outputGradient: Tensor) -> Tensor {
        let s = scale.value[flat: 0] * backwardFactor
        var dx = outputGradient
        var ds: Float = 0
        for i in 0..<dx.count {
            ds += outputGradient[flat: i] * input![flat: i]
            dx[flat: i] *= s
        }
        scale.gradient[flat: 0] += ds
        return dx
    }
}

final class GradientCheckTests: XCTestCase {
    func testCheckerRejectsAWrongBackward() {
        var rng = SeededGenerator(seed: 3)
        let x = Tensor.uniform([2, 3], low: -1, high: 1, using: &rng)
        let wrong = GradientCheck.check(layer: MisScaledLayer(backwardFactor: 1.1), input: x)
        XCTAssertFalse(wrong.passes(), "a 10% wrong input gradient must fail: \(wrong)")
        XCTAssertGreaterThan(wrong.maxError, 0.05)
        XCTAssertTrue(wrong.worst.hasPrefix("input"), wrong.worst)
        // The same layer with a correct backward passes, so the failure is the bug's.
        let right = GradientCheck.check(layer: MisScaledLayer(backwardFactor: 1), input: x)
        XCTAssertTrue(right.passes(), "\(right)")
    }
}
