import Layerwise
import XCTest

final class StageValuesTests: XCTestCase {
    func testOneValueIsEveryStagesAndAListIsOnePerStage() throws {
        let one: [Float] = try StageValues.parse("0.05", option: "--stage-lr", stages: 3, requirement: "a number")
        XCTAssertEqual(one, [0.05, 0.05, 0.05])
        let each: [Int] = try StageValues.parse(" 1, 4 ,4", option: "--stage-epochs", stages: 3, requirement: "n")
        XCTAssertEqual(each, [1, 4, 4])
    }

    func testTypedErrorsNameTheOptionTheStageAndTheValue() {
        XCTAssertThrowsError(
            try StageValues.parse("1,2", option: "--stage-epochs", stages: 3, requirement: "n") as [Int]
        ) {
            guard case let .invalidOption(stage, option, value, _)? = $0 as? TrainerError else {
                return XCTFail("\($0)")
            }
            XCTAssertEqual([stage.map(String.init) ?? "nil", option, value], ["nil", "--stage-epochs", "1,2"])
        }
        XCTAssertThrowsError(
            try StageValues.parse("0.1,x,0.2", option: "--stage-lr", stages: 3, requirement: "a number") as [Float]
        ) {
            XCTAssertEqual(
                $0 as? TrainerError,
                .invalidOption(stage: 2, option: "--stage-lr", value: "x", reason: "expected a number"))
        }
        XCTAssertThrowsError(
            try StageValues.parse(
                "1,0,1", option: "--stage-temperature", stages: 3, requirement: "a positive number"
            ) { (t: Float) in t > 0 }
        ) {
            XCTAssertEqual(
                $0 as? TrainerError,
                .invalidOption(
                    stage: 2, option: "--stage-temperature", value: "0", reason: "expected a positive number"))
        }
        XCTAssertThrowsError(try StageValues.parse("", option: "--stage-epochs", stages: 2, requirement: "n") as [Int])
    }

    func testFractionNearUnitNorm() throws {
        // Filters of norm 1, 1.005, 2 and 0: two are within 0.01 of the unit sphere.
        let w = try Tensor(shape: [4, 1, 1, 2], values: [0.6, 0.8, 1.005, 0, 2, 0, 0, 0])
        XCTAssertEqual(WideStack.fractionNearUnitNorm(w, tolerance: 0.01), 0.5)
    }

    /// `pretrain(from:)` trains only the stages from the given one; the ones below keep
    /// their weights, and a stage outside the stack is a typed error.
    func testPretrainFromAStageLeavesTheStagesBelowUntouched() throws {
        let data = SyntheticImages(count: 8, seed: 4)
        let specs = WideStack.softHebbCIFAR.prefix(2).map { s -> WideStageSpec in
            var s = s; s.width /= 24; return s
        }
        var g = SeededGenerator(seed: 2)
        let layers = try WideStack.layers(specs, inputChannels: 3, using: &g)
        let before = layers.map { WideStack.convolution(of: $0)!.weight.value }
        let stages = try WideStack.softHebbStages(layers: layers, specs: specs, dataset: data, batchSize: 4)
        let patch = try XCTUnwrap(ReceptiveField.smallestPatch([layers[0]], channels: 3))
        let trainer = try LayerwiseTrainer(stages: stages, inputChannels: 3, firstPatchSize: patch, seed: 3)
        XCTAssertThrowsError(try trainer.pretrainStages(from: 3)) {
            XCTAssertEqual(
                $0 as? TrainerError,
                .invalidOption(stage: nil, option: "firstStage", value: "3", reason: "must be in 1…2"))
        }
        let report = try trainer.pretrainStages(from: 2)
        XCTAssertEqual(report.stages.map(\.stage), [2])
        XCTAssertTrue(WideStack.convolution(of: layers[0])!.weight.value.isBitIdentical(to: before[0]))
        XCTAssertFalse(WideStack.convolution(of: layers[1])!.weight.value.isBitIdentical(to: before[1]))
    }
}
