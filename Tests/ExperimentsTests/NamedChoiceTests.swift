import Layerwise
import XCTest

/// The paper setup's choices by name: every valid name parses, an unknown one is an error
/// that names it and lists the valid ones. (Fast; not gated like the experiments.)
final class NamedChoiceTests: XCTestCase {
    func testTransferArmNamesRoundTrip() throws {
        for arm in TransferArm.allCases { XCTAssertEqual(try TransferArm(named: arm.rawValue), arm) }
        XCTAssertEqual(TransferArm.paperArms + TransferArm.kmeansArms, TransferArm.allCases)
        XCTAssertEqual(try TransferArm.list(" scratch, kmeans_frozen,,"), [.scratch, .kmeansFrozen])
        XCTAssertEqual(try TransferArm.list(""), [])
    }

    func testUnknownTransferArmNamesItAndTheValidArms() {
        XCTAssertThrowsError(try TransferArm.list("scratch,contrastive")) { error in
            XCTAssertEqual(
                error as? PaperSetupError,
                .unknownName(
                    kind: "transfer arm", value: "contrastive", valid: TransferArm.allCases.map(\.rawValue)))
            let text = "\(error)"
            XCTAssertTrue(text.contains("\"contrastive\""), text)
            XCTAssertTrue(text.contains("contrastive_frozen, contrastive_finetuned"), text)
        }
    }

    func testArmsSayWhereTheirWeightsComeFromAndHowTheyTrain() {
        XCTAssertNil(TransferArm.scratch.source)
        XCTAssertEqual(TransferArm.scratch.mode, .scratch)
        XCTAssertEqual(TransferArm.contrastiveFrozen.source, .contrastive)
        XCTAssertEqual(TransferArm.supervisedFineTuned.mode, .fineTuned)
        XCTAssertEqual(TransferArm.kmeansFrozen.mode, .frozen)
        XCTAssertTrue(TransferArm.Source.supervised.carriesClassifierNames)
        XCTAssertFalse(TransferArm.Source.kmeans.carriesClassifierNames)
    }

    func testDistanceAndMinerNames() throws {
        XCTAssertTrue(try DistanceName(named: "cosine").make() is CosineDistance)
        XCTAssertTrue(try DistanceName(named: "euclidean").make() is EuclideanDistance)
        XCTAssertTrue(try DistanceName(named: "squared-euclidean").make() is SquaredEuclideanDistance)
        XCTAssertTrue(try MinerName(named: "semi-hard").make() is SemiHardNegativeMiner)
        XCTAssertTrue(try MinerName(named: "hardest").make() is HardestNegativeMiner)
    }

    /// An unknown distance used to fall back silently to cosine.
    func testUnknownDistanceIsAnErrorNotCosine() {
        XCTAssertThrowsError(try DistanceName(named: "manhattan")) { error in
            XCTAssertEqual(
                error as? PaperSetupError,
                .unknownName(
                    kind: "distance", value: "manhattan", valid: ["cosine", "euclidean", "squared-euclidean"]))
            XCTAssertEqual("\(error)", "unknown distance \"manhattan\"; valid: cosine, euclidean, squared-euclidean")
        }
        XCTAssertThrowsError(try MinerName(named: "semihard")) { error in
            XCTAssertEqual(
                error as? PaperSetupError,
                .unknownName(
                    kind: "negative miner", value: "semihard", valid: ["semi-hard", "hardest"]))
        }
    }

    func testPaperClassifierValidatesAndTransfers() throws {
        XCTAssertThrowsError(try PaperClassifier(conv1Filters: 0, conv2Filters: 4, hiddenUnits: 8)) {
            XCTAssertEqual(
                $0 as? PaperSetupError, .invalidOption(name: "conv1Filters", value: "0", reason: "must be ≥ 1"))
        }
        XCTAssertThrowsError(
            try PaperClassifier(conv1Filters: 2, conv2Filters: 4, hiddenUnits: 8, transferredStages: 3))
        let paper = try PaperClassifier(conv1Filters: 2, conv2Filters: 4, hiddenUnits: 8)
        let shape = ImageShape(channels: 3, height: 32, width: 32)
        XCTAssertThrowsError(
            try paper.transferClassifier(
                .contrastiveFrozen, classes: 10, pretrained: nil, inputShape: shape, seed: 1)
        ) {
            XCTAssertEqual($0 as? PaperSetupError, .missingPretrainedWeights(arm: "contrastive_frozen"))
        }
        // Pretraining names "stage1.0.*" land in the classifier's conv1; the pool has no state.
        var g = SeededGenerator(seed: 9)
        let pretrainedConv = try Conv2D(inputChannels: 3, outputChannels: 2, kernelSize: 6, using: &g)
        let pretrained = ["stage1.0.weight": pretrainedConv.weight.value, "stage1.0.bias": pretrainedConv.bias!.value]
        let classifier = try paper.transferClassifier(
            .contrastiveFrozen, classes: 10, pretrained: pretrained, inputShape: shape, seed: 1)
        let state = classifier.stateTensors()
        XCTAssertTrue(try XCTUnwrap(state["stage1.0.weight"]).isBitIdentical(to: pretrainedConv.weight.value))
        // Scratch gets the same seed's fresh conv instead.
        let scratch = try paper.transferClassifier(
            .scratch, classes: 10, pretrained: pretrained, inputShape: shape, seed: 1)
        let fresh = try paper.layers(classes: 10, seed: 1).stages[0][0].parameters[0].value
        XCTAssertTrue(try XCTUnwrap(scratch.stateTensors()["stage1.0.weight"]).isBitIdentical(to: fresh))
    }
}
