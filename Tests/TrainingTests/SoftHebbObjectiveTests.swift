import Foundation
import Layerwise
import XCTest

final class SoftHebbObjectiveTests: XCTestCase {
    /// Two SoftHebb updates of a 2→4, 3x3 block (non-affine batch norm in training mode,
    /// reflection padding 1, t_invert 0.65, η 0.05, power 0.5) on inputs given by a formula,
    /// against the PyTorch reference implementation (`SoftHebbBlock.hebbian_step` of the
    /// SoftHebb reimplementation the study compares with), run on the same values.
    func testTwoUpdatesMatchThePyTorchReference() throws {
        let bn = try BatchNorm(features: 2, affine: false)
        let pad = try ReflectionPad2D(padding: 1)
        var g = SeededGenerator(seed: 0)
        let conv = try Conv2D(inputChannels: 2, outputChannels: 4, kernelSize: 3, bias: false, using: &g)
        conv.weight.value = try Tensor(
            shape: [4, 2, 3, 3], values: (0..<72).map { Float(cos(0.71 * Double($0)) * 0.5) })
        var wins = [Int](repeating: 0, count: 4)
        for b in 0..<2 {
            let x = try Tensor(
                shape: [3, 2, 5, 5],
                values: (0..<150).map { Float(sin(0.37 * Double($0) + 0.1 * Double(b)) + 0.2 * Double(b)) })
            let xp = pad.forward(bn.forward(x, mode: .training), mode: .inference)
            let (delta, w) = SoftHebbRule.update(
                weight: conv.weight.value, patches: SoftHebbObjective.patches(of: xp, conv: conv),
                inverseTemperature: 0.65, learningRate: 0.05, learningRatePower: 0.5)
            conv.weight.value = try Tensor(
                shape: delta.shape, values: zip(conv.weight.value.scalars, delta.scalars).map { $0 + $1 })
            for i in 0..<4 { wins[i] += w[i] }
        }
        let expected: [Float] = [
            0.4562181, 0.3510346, 0.0722369, -0.1957232, -0.4067114, -0.3966723, -0.2549149, 0.0784819, 0.3553143,
            0.5224758, 0.360058, 0.0325963, -0.3632535, -0.5376183, -0.478117, -0.127003, 0.2152584, 0.4713731,
            0.4934902, 0.3070754, -0.0267664, -0.3482444, -0.4987786, -0.4107597, -0.1028206, 0.239627, 0.471353,
            0.4697305, 0.2528833, -0.0862456, -0.3862939, -0.4981671, -0.3671021, -0.0805973, 0.260282, 0.4705527,
            0.4589235, 0.2155787, -0.1305023, -0.4123175, -0.4943122, -0.3387659, -0.0012323, 0.3242753, 0.4970758,
            0.4268726, 0.1567394, -0.1894159, -0.4484834, -0.487009, -0.2892871, 0.0289357, 0.3465275, 0.4924509,
            0.4211973, 0.1186872, -0.2385069, -0.5269907, -0.5274493, -0.2964685, 0.1315646, 0.4313679, 0.5396901,
            0.3313507, 0.0354759, -0.2852898, -0.4137756, -0.3849223, -0.145092, 0.1107369, 0.3800219, 0.4491139,
        ]
        let got = conv.weight.value.scalars
        for i in 0..<72 { XCTAssertEqual(got[i], expected[i], accuracy: 2e-6, "weight[\(i)]") }
        XCTAssertEqual(wins, [74, 2, 2, 72])
        XCTAssertEqual(bn.runningMean.value.scalars[0], 0.05322771891951561, accuracy: 1e-6)
        XCTAssertEqual(bn.runningMean.value.scalars[1], -0.009023627266287804, accuracy: 1e-6)
        XCTAssertEqual(bn.runningVar.value.scalars[0], 0.9010393023490906, accuracy: 1e-5)
        XCTAssertEqual(bn.runningVar.value.scalars[1], 0.9019090533256531, accuracy: 1e-5)
    }

    /// The winner learns Hebbian (towards its input), every loser anti-Hebbian (away):
    /// one input row, two filters.
    func testWinnerMovesTowardsTheInputAndTheLoserAway() throws {
        let w = try Tensor(shape: [2, 2], values: [2, 0, 0, 0.5])
        let x = try Tensor(shape: [1, 2], values: [1, 1])
        let (delta, wins) = SoftHebbRule.update(
            weight: w, patches: x, inverseTemperature: 1, learningRate: 1, learningRatePower: 1)
        XCTAssertEqual(wins, [1, 0])
        // Winner: u = 2, y = s0 > 0: ΔW0 ∝ s0·(x − u·w0) = s0·(1 − 4, 1) → moves towards x's second axis.
        XCTAssertLessThan(delta[flat: 0], 0)
        XCTAssertGreaterThan(delta[flat: 1], 0)
        // Loser: u = 0.5, y = −s1: ΔW1 ∝ −s1·(x − 0.5·w1) < 0 on both axes.
        XCTAssertLessThan(delta[flat: 2], 0)
        XCTAssertLessThan(delta[flat: 3], 0)
        // The largest |ΔW| is scaled to η_o = |‖w_o‖ − 1|: 1 for filter 0.
        XCTAssertEqual(max(abs(delta[flat: 0]), abs(delta[flat: 1])), 1, accuracy: 1e-6)
    }

    /// Through the trainer, SoftHebb pulls filter norms towards 1 and is deterministic.
    func testTrainsAStageThroughTheTrainerDeterministically() throws {
        func run() throws -> (Tensor, [Float], [Int]) {
            let data = SyntheticImages(count: 24, seed: 99)
            var g = SeededGenerator(seed: 3)
            let conv = try Conv2D(inputChannels: 3, outputChannels: 6, kernelSize: 3, bias: false, using: &g)
            conv.weight.value = .normal([6, 3, 3, 3], standardDeviation: 25 / Float(27).squareRoot(), using: &g)
            let objective = try SoftHebbObjective(conv: conv, dataset: data, temperature: 1, learningRate: 0.08)
            let layers: [any Layer] = [
                try BatchNorm(features: 3, affine: false), try ReflectionPad2D(padding: 1), conv,
                try TriangleActivation(power: 0.7), try MaxPool2D(kernelSize: 4, stride: 2, padding: 1),
            ]
            let stage = Stage(
                layers: layers, objective: objective, optimizer: SoftHebbObjective.makeOptimizer(),
                schedule: ConstantSchedule(1), batchSize: 4, budget: .epochs(3, stepsPerEpoch: 6))
            let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 3, seed: 5)
            let report = try trainer.pretrain()
            return (conv.weight.value, report.stages[0].epochLosses, objective.winCounts)
        }
        let (w1, losses, wins) = try run()
        let (w2, _, _) = try run()
        XCTAssertTrue(w1.isBitIdentical(to: w2))
        XCTAssertEqual(losses.count, 3)
        XCTAssertLessThan(losses[2], losses[0] * 0.8, "mean |‖W‖ − 1| should shrink: \(losses)")
        XCTAssertEqual(wins.reduce(0, +), 3 * 6 * 4 * 16 * 16)
    }

    func testInvalidOptionsAreTypedErrors() throws {
        let data = SyntheticImages(count: 4, seed: 1)
        var g = SeededGenerator(seed: 0)
        let conv = try Conv2D(inputChannels: 3, outputChannels: 2, kernelSize: 3, bias: false, using: &g)
        XCTAssertThrowsError(try SoftHebbObjective(conv: conv, dataset: data, temperature: 0, learningRate: 0.1)) {
            XCTAssertEqual(
                $0 as? TrainerError,
                .invalidOption(
                    stage: nil, option: "SoftHebb.temperature", value: "0.0", reason: "must be positive and finite"))
        }
        XCTAssertThrowsError(try SoftHebbObjective(conv: conv, dataset: data, temperature: -1, learningRate: 0.1))
        XCTAssertThrowsError(try SoftHebbObjective(conv: conv, dataset: data, temperature: 1, learningRate: .nan))
        let biased = try Conv2D(inputChannels: 3, outputChannels: 2, kernelSize: 3, using: &g)
        XCTAssertThrowsError(try SoftHebbObjective(conv: biased, dataset: data, temperature: 1, learningRate: 0.1))
    }
}
