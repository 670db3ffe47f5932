import Losses
import TensorCore
import XCTest

final class LossErrorTests: XCTestCase {
    let losses: [any ContrastiveLoss] = [
        TripletMarginLoss(), TripletMarginLoss(distance: EuclideanDistance(), miner: SemiHardNegativeMiner()),
        InfoNCELoss(),
    ]

    func expect(_ expected: LossError, _ batch: TripletEmbeddings, file: StaticString = #filePath, line: UInt = #line) {
        for loss in losses {
            XCTAssertThrowsError(try loss.evaluate(batch), "\(type(of: loss))", file: file, line: line) {
                XCTAssertEqual($0 as? LossError, expected, "\(type(of: loss))", file: file, line: line)
            }
        }
    }

    func testMismatchedRowCounts() {
        let layout = TripletLayout(batchSize: 2, negativesPerAnchor: 1)
        expect(.rowCountMismatch(expected: 6, got: 5), TripletEmbeddings(Tensor.zeros([5, 4]), layout: layout))
        expect(.invalidEmbeddingShape(shape: [24]), TripletEmbeddings(Tensor.zeros([24]), layout: layout))
        expect(.invalidEmbeddingShape(shape: [6, 0]), TripletEmbeddings(Tensor.zeros([6, 0]), layout: layout))
    }

    func testNegativeLayoutSizes() {
        expect(
            .invalidLayout(batchSize: 2, negativesPerAnchor: -1),
            TripletEmbeddings(Tensor.zeros([2, 4]), layout: TripletLayout(batchSize: 2, negativesPerAnchor: -1)))
    }

    func testEmptyBatch() {
        expect(
            .emptyBatch,
            TripletEmbeddings(Tensor.zeros([0, 4]), layout: TripletLayout(batchSize: 0, negativesPerAnchor: 1)))
    }

    func testNonFiniteValuesNameTheRow() {
        var x = Tensor(shape: [6, 4], repeating: 1)
        x[flat: 3 * 4 + 2] = .nan
        let layout = TripletLayout(batchSize: 2, negativesPerAnchor: 1)
        expect(.nonFinite(what: "embeddings", row: 3), TripletEmbeddings(x, layout: layout))
        x[flat: 3 * 4 + 2] = 1
        x[flat: 5 * 4] = -.infinity
        expect(.nonFinite(what: "embeddings", row: 5), TripletEmbeddings(x, layout: layout))
    }

    /// Finite embeddings whose distance overflows: the triplet loss must throw, not
    /// return a finite hinge computed from NaN distances.
    func testOverflowingDistancesThrow() throws {
        let layout = TripletLayout(batchSize: 2, negativesPerAnchor: 1)
        var x = Tensor(shape: [6, 4], repeating: 1)
        x[flat: 1 * 4] = 3e38  // anchor 1, its negative far on the other side
        x[flat: 5 * 4] = -3e38
        let loss = TripletMarginLoss(distance: SquaredEuclideanDistance(), margin: 1)
        XCTAssertThrowsError(try loss.evaluate(TripletEmbeddings(x, layout: layout))) {
            XCTAssertEqual($0 as? LossError, .nonFinite(what: "triplet distance (overflow) at anchor", row: 1))
        }
        // The same batch scaled down is fine.
        x[flat: 1 * 4] = 3
        x[flat: 5 * 4] = -3
        XCTAssertNoThrow(try loss.evaluate(TripletEmbeddings(x, layout: layout)))
    }

    func testWrongSourceImageCount() {
        let layout = TripletLayout(batchSize: 2, negativesPerAnchor: 1)
        expect(
            .sourceImageCountMismatch(expected: 6, got: 4),
            TripletEmbeddings(Tensor(shape: [6, 4], repeating: 1), layout: layout, sourceImages: [0, 1, 0, 1]))
    }

    func testInvalidHyperparameters() {
        let batch = randomBatch(batchSize: 2, negatives: 1, dimension: 3, seed: 1)
        for margin in [-0.1, Float.nan, .infinity] {
            let loss = TripletMarginLoss(margin: margin)
            for attempt in [{ try loss.validate() }, { _ = try loss.evaluate(batch) }] {
                XCTAssertThrowsError(try attempt()) { error in
                    guard case let .invalidHyperparameter(name, _, _)? = error as? LossError else {
                        return XCTFail("\(error)")
                    }
                    XCTAssertEqual(name, "margin")
                    XCTAssertTrue("\(error)".contains("margin"))
                }
            }
        }
        XCTAssertNoThrow(try TripletMarginLoss(margin: 0).validate())
        for temperature in [0, -1, Float.nan, .infinity] {
            let loss = InfoNCELoss(temperature: temperature)
            for attempt in [{ try loss.validate() }, { _ = try loss.evaluate(batch) }] {
                XCTAssertThrowsError(try attempt()) { error in
                    guard case let .invalidHyperparameter(name, _, _)? = error as? LossError else {
                        return XCTFail("\(error)")
                    }
                    XCTAssertEqual(name, "temperature")
                }
            }
        }
    }

    func testNoStoredNegativesWithoutMiner() {
        let batch = randomBatch(batchSize: 2, negatives: 0, dimension: 3, seed: 1)
        XCTAssertThrowsError(try TripletMarginLoss().evaluate(batch)) {
            XCTAssertEqual($0 as? LossError, .noNegatives(negativesPerAnchor: 0))
        }
    }

    func testDescriptionsSayWhatIsWrong() {
        XCTAssertTrue(LossError.rowCountMismatch(expected: 6, got: 5).description.contains("5 rows"))
        XCTAssertTrue(LossError.nonFinite(what: "embeddings", row: 3).description.contains("row 3"))
        XCTAssertTrue(LossError.sourceImageCountMismatch(expected: 6, got: 4).description.contains("sourceImages"))
        XCTAssertTrue(
            LossError.invalidHyperparameter(name: "temperature", value: 0, reason: "must be > 0")
                .description.contains("temperature"))
    }
}
