import Foundation
import Layerwise
import XCTest

final class EvaluationTests: XCTestCase {
    override func setUp() {
        BLAS.threadCount = 1
    }

    func testQuadrantPooling() throws {
        // One image, one channel, 3x3 map: quadrants split after row/column 2 (odd: middle goes first).
        let x = try Tensor(shape: [1, 1, 3, 3], values: [1, 2, 3, 4, -5, 6, 7, 8, 9])
        let out = Evaluation.quadrantPool(x)
        // ReLU first: -5 → 0. TL = 1+2+4+0, TR = 3+6, BL = 7+8, BR = 9.
        XCTAssertEqual(out.shape, [1, 4])
        XCTAssertEqual(out.scalars, [7, 9, 15, 9])
        // 1x1 maps pool globally (one value per channel).
        let y = try Tensor(shape: [2, 2, 1, 1], values: [1, -2, 3, 4])
        let o2 = Evaluation.quadrantPool(y)
        XCTAssertEqual(o2.shape, [2, 2])
        XCTAssertEqual(o2.scalars, [1, 0, 3, 4])
        XCTAssertEqual(Evaluation.quadrantPooledWidth([7, 64, 13, 13]), 256)
        XCTAssertEqual(Evaluation.quadrantPooledWidth([7, 64, 1, 1]), 64)
    }

    func testKNNKnownAnswer() throws {
        // Train: two clusters by direction. Test points near each.
        let train = try Tensor(shape: [4, 2], values: [1, 0, 2, 0.1, 0, 1, 0.1, 3])
        let test = try Tensor(shape: [3, 2], values: [5, 0.5, 0.2, 1, 1, 0.9])
        XCTAssertEqual(
            try Evaluation.knnAccuracy(
                train: train, trainLabels: [0, 0, 1, 1], test: test, testLabels: [0, 1, 0], k: 1, classCount: 2), 1)
        XCTAssertEqual(
            try Evaluation.knnAccuracy(
                train: train, trainLabels: [0, 0, 1, 1], test: test, testLabels: [1, 1, 1], k: 1, classCount: 2),
            1.0 / 3.0)
        // k = 3 on the diagonal point: neighbours by cosine are (1,0.9)·… → two of class 0? compute: sims to
        // (1,0)=.74, (2,.1)=.78, (0,1)=.67, (.1,3)=.71 → top-3: 0,0,1 → class 0.
        XCTAssertEqual(
            try Evaluation.knnAccuracy(
                train: train, trainLabels: [0, 0, 1, 1], test: test, testLabels: [0, 1, 0], k: 3, classCount: 2), 1)
        XCTAssertThrowsError(
            try Evaluation.knnAccuracy(
                train: train, trainLabels: [0, 0, 1, 1], test: test, testLabels: [0, 1, 0], k: 0, classCount: 2)
        ) {
            guard case TrainerError.invalidOption(_, "k", _, _) = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(
            try Evaluation.knnAccuracy(
                train: train, trainLabels: [0, 0, 1], test: test, testLabels: [0, 1, 0], k: 1, classCount: 2))
    }

    /// A random (untrained) conv stage keeps where the bright blob is; quadrant pooling
    /// makes that linearly separable. The probe must find it and leave the extractor alone.
    func testLinearProbeBeatsChanceOnAnEasyTask() throws {
        var g = SeededGenerator(seed: 3)
        let layers: [any Layer] = [
            try Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 4, using: &g), try MaxPool2D(kernelSize: 2),
            ReLU(),
        ]
        let extractor = FeatureExtractor(layers: layers)
        let before = layers.flatMap(\.parameters).map(\.value)
        let train = blobDataset(count: 120, seed: 41), test = blobDataset(count: 80, seed: 42)
        let result = try LinearProbe(epochs: 20, learningRate: 0.01, batchSize: 32, seed: 1).evaluate(
            extractor, train: train, test: test)
        XCTAssertEqual(result.featureCount, 32)  // 16 → 13 → 6: 8 channels × 4 quadrants
        XCTAssertGreaterThan(result.testAccuracy, 0.8, "chance is 0.25: \(result)")
        let after = layers.flatMap(\.parameters).map(\.value)
        XCTAssertTrue(before.count == after.count && zip(before, after).allSatisfy { $0.isBitIdentical(to: $1) })
        // kNN on the same pooled features.
        let knn = try Evaluation.knnAccuracy(extractor, train: train, test: test, k: 5)
        XCTAssertGreaterThan(knn, 0.6, "chance is 0.25")
    }

    func testLinearProbeSeparatesSeparableFeatures() throws {
        // Three Gaussian clusters in 6-D with well separated means.
        var g = SeededGenerator(seed: 8)
        func sample(_ n: Int) throws -> (Tensor, [Int]) {
            var values: [Float] = [], labels: [Int] = []
            for _ in 0..<n {
                let c = g.nextInt(below: 3)
                labels.append(c)
                for j in 0..<6 { values.append((j % 3 == c ? 3 : 0) + g.nextNormal()) }
            }
            return (try Tensor(shape: [n, 6], values: values), labels)
        }
        let (xtr, ytr) = try sample(150), (xte, yte) = try sample(150)
        let r = try LinearProbe(epochs: 20, learningRate: 0.05, batchSize: 32).evaluate(
            train: xtr, trainLabels: ytr, test: xte, testLabels: yte, classCount: 3)
        XCTAssertGreaterThan(r.testAccuracy, 0.9, "\(r)")
    }

    func testLinearProbeOnRandomLabelsStaysNearChance() throws {
        var g = SeededGenerator(seed: 5)
        let train = Tensor.normal([200, 10], using: &g), test = Tensor.normal([200, 10], using: &g)
        let yTrain = (0..<200).map { _ in g.nextInt(below: 2) }, yTest = (0..<200).map { _ in g.nextInt(below: 2) }
        let r = try LinearProbe(epochs: 20, learningRate: 0.01, batchSize: 32).evaluate(
            train: train, trainLabels: yTrain, test: test, testLabels: yTest, classCount: 2)
        XCTAssertLessThan(r.testAccuracy, 0.65, "noise is not separable: \(r)")
    }
}
