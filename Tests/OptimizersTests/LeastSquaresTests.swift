import Layers
import Optimizers
import TensorCore
import XCTest

/// Fits a Linear layer to a noiseless linear target with MSE computed here; the loss
/// must fall to near zero, which needs correct gradients, updates and state handling.
final class LeastSquaresTests: XCTestCase {
    private func fit(_ optimizer: any Optimizer, steps: Int) throws -> (first: Float, last: Float) {
        var rng = SeededGenerator(seed: 1)
        let layer = try Linear(inputFeatures: 3, outputFeatures: 2, using: &rng)
        let trueW = try Tensor(shape: [2, 3], values: [0.5, -1, 2, 1.5, 0.25, -0.75])
        let trueB: [Float] = [0.3, -0.2]
        let x = Tensor.uniform([32, 3], low: -1, high: 1, using: &rng)
        var target = try BLAS.matmul(x, trueW, transposeB: true)
        for r in 0..<32 { for c in 0..<2 { target[flat: r * 2 + c] += trueB[c] } }
        try optimizer.validate()
        var losses: [Float] = []
        for _ in 0..<steps {
            layer.zeroGradients()
            let y = layer.forward(x, mode: .training)
            var grad = Tensor.zeros(y.shape)
            var loss: Float = 0
            for i in 0..<y.count {
                let d = y[flat: i] - target[flat: i]
                loss += d * d / Float(y.count)
                grad[flat: i] = 2 * d / Float(y.count)
            }
            losses.append(loss)
            _ = layer.backward(grad)
            optimizer.update(layer.parameters)
        }
        return (losses.first!, losses.last!)
    }

    func testSGDWithMomentumFits() throws {
        let (first, last) = try fit(SGD(learningRate: 0.1, momentum: 0.9), steps: 300)
        XCTAssertGreaterThan(first, 0.5)
        XCTAssertLessThan(last, 1e-6)
    }

    func testAdamFits() throws {
        let (first, last) = try fit(Adam(learningRate: 0.05), steps: 400)
        XCTAssertGreaterThan(first, 0.5)
        XCTAssertLessThan(last, 1e-4)
    }
}
