import Layers
import Optimizers
import TensorCore
import XCTest

final class SGDTests: XCTestCase {
    func testPlainStepAndWeightDecay() throws {
        let p = parameter([1, -2], gradient: [0.5, 4])
        let sgd = SGD(learningRate: 0.1, weightDecay: 0.01)
        sgd.update([p])
        XCTAssertEqual(p.value[flat: 0], 1 - 0.1 * (0.5 + 0.01 * 1), accuracy: 1e-6)
        XCTAssertEqual(p.value[flat: 1], -2 - 0.1 * (4 + 0.01 * -2), accuracy: 1e-6)
        XCTAssertEqual(sgd.stepCount, 1)
        XCTAssertTrue(sgd.slots.values.allSatisfy(\.isEmpty), "no momentum, no state")
    }

    func testMomentumOverTwoSteps() throws {
        let (lr, mu): (Float, Float) = (0.1, 0.9)
        let p = parameter([1], gradient: [2])
        let sgd = SGD(learningRate: lr, momentum: mu)
        sgd.update([p])  // b = 2, θ = 1 − 0.2
        XCTAssertEqual(p.value[flat: 0], 1 - lr * 2, accuracy: 1e-6)
        setGradient(p, [-1])
        sgd.update([p])  // b = 0.9·2 − 1 = 0.8
        XCTAssertEqual(p.value[flat: 0], 1 - lr * 2 - lr * (mu * 2 - 1), accuracy: 1e-6)
    }

    func testNesterovOverTwoSteps() throws {
        let (lr, mu, wd): (Float, Float, Float) = (0.1, 0.5, 0.1)
        let p = parameter([1], gradient: [2])
        let sgd = SGD(learningRate: lr, momentum: mu, nesterov: true, weightDecay: wd)
        var theta: Float = 1, b: Float = 0
        for g in [Float(2), -3] {
            setGradient(p, [g])
            sgd.update([p])
            let gd = g + wd * theta
            b = mu * b + gd
            theta -= lr * (gd + mu * b)
            XCTAssertEqual(p.value[flat: 0], theta, accuracy: 1e-6)
        }
    }

    func testFrozenParameterIsUntouched() {
        let frozen = parameter([1, 2], gradient: [5, 5])
        frozen.isFrozen = true
        let live = parameter([1, 2], gradient: [5, 5])
        let sgd = SGD(learningRate: 0.1, momentum: 0.9)
        sgd.update([frozen, live])
        XCTAssertEqual(frozen.value.scalars, [1, 2])
        XCTAssertNotEqual(live.value.scalars, [1, 2])
        XCTAssertNil(sgd.slots[ObjectIdentifier(frozen)])
    }

    func testValidateNamesTheOption() {
        XCTAssertNoThrow(try SGD(learningRate: 0.1, momentum: 0.9, nesterov: true).validate())
        for (sgd, name) in [
            (SGD(learningRate: -1), "learningRate"), (SGD(learningRate: 0.1, momentum: -0.5), "momentum"),
            (SGD(learningRate: 0.1, weightDecay: -1), "weightDecay"),
            (SGD(learningRate: 0.1, nesterov: true), "nesterov"),
            (SGD(learningRate: .nan), "learningRate"),
        ] {
            XCTAssertThrowsError(try sgd.validate()) { error in
                guard case let .invalidHyperparameter(n, _, _)? = error as? OptimizerError else {
                    return XCTFail("\(error)")
                }
                XCTAssertEqual(n, name)
            }
        }
    }
}
