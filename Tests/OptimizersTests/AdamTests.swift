import Foundation
import Layers
import Optimizers
import TensorCore
import XCTest

final class AdamTests: XCTestCase {
    func testFirstStepIsLearningRateTimesSign() {
        let p = parameter([1, 1, 1], gradient: [0.3, -20, 1e-3])
        let adam = Adam(learningRate: 0.01)
        adam.update([p])
        // m̂ = g, v̂ = g² after one step, so the step is lr · g / (|g| + ε).
        for (i, g) in [Float(0.3), -20, 1e-3].enumerated() {
            XCTAssertEqual(p.value[flat: i], 1 - 0.01 * g / (abs(g) + 1e-8), accuracy: 1e-6)
        }
    }

    func testTwoStepsMatchTheClosedForm() {
        let (lr, b1, b2, eps): (Double, Double, Double, Double) = (0.05, 0.8, 0.9, 1e-6)
        let p = parameter([0.5], gradient: [0])
        let adam = Adam(
            learningRate: Float(lr), beta1: Float(b1), beta2: Float(b2), epsilon: Float(eps), weightDecay: 0.1)
        var theta = 0.5, m = 0.0, v = 0.0
        for (t, raw) in [0.4, -0.7, 0.2].enumerated() {
            setGradient(p, [Float(raw)])
            adam.update([p])
            let g = raw + 0.1 * theta  // coupled (L2) decay
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            let mHat = m / (1 - pow(b1, Double(t + 1))), vHat = v / (1 - pow(b2, Double(t + 1)))
            theta -= lr * mHat / (vHat.squareRoot() + eps)
            XCTAssertEqual(Double(p.value[flat: 0]), theta, accuracy: 1e-5, "step \(t + 1)")
        }
    }

    func testAdamWDecouplesTheDecay() {
        let p = parameter([2], gradient: [0.5])
        let adamW = Adam.adamW(learningRate: 0.1, weightDecay: 0.5)
        XCTAssertTrue(adamW.decoupledWeightDecay)
        adamW.update([p])
        let shrunk: Float = 2 * (1 - 0.1 * 0.5)
        let step: Float = 0.1 * 0.5 / (0.5 + 1e-8)
        XCTAssertEqual(p.value[flat: 0], shrunk - step, accuracy: 1e-6)
    }

    func testStateRoundTripsThroughExport() throws {
        func run(resumeAfter: Int?) -> [Float] {
            let p = parameter([1, -1], gradient: [0, 0], name: "w")
            var adam = Adam(learningRate: 0.1)
            for step in 0..<4 {
                if step == resumeAfter {
                    let saved = adam.exportState([("w", p)])
                    let count = adam.stepCount
                    adam = Adam(learningRate: 0.1)
                    adam.importState(saved, for: [("w", p)])
                    adam.stepCount = count
                }
                setGradient(p, [Float(step) - 1.5, 0.3])
                adam.update([p])
            }
            return p.value.scalars
        }
        XCTAssertEqual(run(resumeAfter: nil), run(resumeAfter: 2))
    }

    func testFrozenParameterIsUntouched() {
        let p = parameter([1], gradient: [1])
        p.isFrozen = true
        let adam = Adam()
        adam.update([p])
        XCTAssertEqual(p.value.scalars, [1])
        XCTAssertTrue(adam.slots.isEmpty)
    }

    func testValidateNamesTheOption() {
        XCTAssertNoThrow(try Adam().validate())
        for (adam, name) in [
            (Adam(learningRate: -1), "learningRate"), (Adam(beta1: 1), "beta1"), (Adam(beta2: -0.1), "beta2"),
            (Adam(epsilon: 0), "epsilon"), (Adam(weightDecay: -0.1), "weightDecay"),
        ] {
            XCTAssertThrowsError(try adam.validate()) { error in
                guard case let .invalidHyperparameter(n, _, _)? = error as? OptimizerError else {
                    return XCTFail("\(error)")
                }
                XCTAssertEqual(n, name)
            }
        }
    }

    /// The update runs eight elements at a time: it must give the same bits as the rule applied
    /// element by element in Float, for sizes with and without a tail and both kinds of decay.
    func testVectorUpdateIsBitIdenticalToTheScalarRule() {
        for (count, decoupled) in [(8, false), (13, false), (3, true), (21, true)] {
            var rng = SeededGenerator(seed: UInt64(count))
            let values = (0..<count).map { _ in Float.random(in: -1...1, using: &rng) }
            let p = parameter(values, gradient: values)
            let (lr, b1, b2, eps, decay): (Float, Float, Float, Float, Float) = (0.01, 0.9, 0.999, 1e-8, 0.1)
            let adam = Adam(
                learningRate: lr, beta1: b1, beta2: b2, epsilon: eps, weightDecay: decay,
                decoupledWeightDecay: decoupled)
            var theta = values, m = [Float](repeating: 0, count: count), v = m
            for t in 1...3 {
                let gradients = (0..<count).map { _ in Float.random(in: -2...2, using: &rng) }
                setGradient(p, gradients)
                adam.update([p])
                let c1 = Float(1 - Foundation.pow(Double(b1), Double(t)))
                let c2 = Float(1 - Foundation.pow(Double(b2), Double(t)))
                let stepSize = lr / c1, inverseRoot = 1 / c2.squareRoot()
                let coupled: Float = decoupled ? 0 : decay, shrink: Float = decoupled ? 1 - lr * decay : 1
                for i in 0..<count {
                    let g = gradients[i] + coupled * theta[i]
                    m[i] = b1 * m[i] + (1 - b1) * g
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                    theta[i] = theta[i] * shrink - stepSize * m[i] / (v[i].squareRoot() * inverseRoot + eps)
                }
                XCTAssertEqual(p.value.scalars.map(\.bitPattern), theta.map(\.bitPattern), "\(count) step \(t)")
            }
        }
    }
}

final class AdamPerParameterStepTests: XCTestCase {
    /// A parameter that joins late (unfrozen after other updates) still gets Adam's
    /// bias-corrected first step, because its step count lives in its own state.
    func testLateJoinerGetsAFullFirstStep() {
        let early = parameter([0], gradient: [1])
        let late = parameter([0], gradient: [0.5])
        late.isFrozen = true
        let adam = Adam(learningRate: 0.1)
        for _ in 0..<5 { adam.update([early, late]) }
        XCTAssertEqual(late.value.scalars, [0])
        late.isFrozen = false
        adam.update([early, late])
        XCTAssertEqual(adam.stepCount, 6)
        XCTAssertEqual(late.value[flat: 0], -0.1 * 0.5 / (0.5 + 1e-8), accuracy: 1e-6)
    }
}
