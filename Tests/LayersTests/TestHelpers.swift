import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

/// Runs the finite-difference check and fails the test with the report when it does not pass.
func assertGradientsMatch(
    _ layer: any Layer, input: Tensor, epsilon: Float = 1e-2, tolerance: Double = 1e-2,
    file: StaticString = #filePath, line: UInt = #line
) {
    let report = GradientCheck.check(layer: layer, input: input, epsilon: epsilon)
    XCTAssertTrue(report.passes(tolerance: tolerance), "\(report)", file: file, line: line)
    XCTAssertGreaterThan(report.checked, 0, file: file, line: line)
}

/// Values in ±[margin, 1], so kinks at 0 (ReLU) stay more than `margin` away.
func awayFromZero(_ shape: [Int], margin: Float = 0.1, seed: UInt64) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    var t = Tensor.uniform(shape, low: margin, high: 1, using: &rng)
    t.withUnsafeMutableBufferPointer { b in
        for i in b.indices where rng.nextUniform() < 0.5 { b[i] = -b[i] }
    }
    return t
}

/// A random permutation of 0, step, 2·step, … — all values distinct and `step` apart,
/// so a max-pool argmax cannot change under ±epsilon perturbations smaller than step/2.
func distinctValues(_ shape: [Int], step: Float = 0.1, seed: UInt64) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    let n = shape.reduce(1, *)
    var values = (0..<n).map { Float($0) * step - Float(n) * step / 2 }
    values.shuffle(using: &rng)
    return try! Tensor(shape: shape, values: values)
}

func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line)
{
    XCTAssertEqual(a.shape, b.shape, file: file, line: line)
    guard a.shape == b.shape else { return }
    var worst: Float = 0
    for i in 0..<a.count { worst = max(worst, abs(a[flat: i] - b[flat: i]) / max(1, abs(b[flat: i]))) }
    XCTAssertLessThanOrEqual(worst, tolerance, file: file, line: line)
}
