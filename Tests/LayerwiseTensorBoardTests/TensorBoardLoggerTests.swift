import Foundation
import Layerwise
import XCTest

@testable import LayerwiseTensorBoard

final class TensorBoardLoggerTests: XCTestCase {
    func logDirectory(_ name: String = #function) throws -> String {
        let path = NSTemporaryDirectory() + "layerwise-tb-\(name.filter(\.isLetter))-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func testCRC32CKnownAnswerAndReaderAgree() {
        XCTAssertEqual(TFRecord.crc32c(Array("123456789".utf8)), 0xE306_9283)
        let bytes = (0..<300).map { UInt8(($0 * 37) % 256) }
        XCTAssertEqual(TFRecord.crc32c(bytes), EventFileReader.crc32c(bytes[...]))
    }

    func tinyTrainer(stages: Int) throws -> LayerwiseTrainer {
        var g = SeededGenerator(seed: 3)
        let pixels = (0..<(40 * 3 * 12 * 12)).map { _ in UInt8.random(in: 0...255, using: &g) }
        let data = try InMemoryImageDataset(pixels: pixels, shape: ImageShape(channels: 3, height: 12, width: 12))
        var list: [Stage] = []
        for k in 0..<stages {
            list.append(
                Stage(
                    layers: [
                        try Conv2D(
                            inputChannels: k == 0 ? 3 : 4, outputChannels: 4, kernelSize: k == 0 ? 3 : 2, using: &g),
                        ReLU(),
                    ],
                    objective: ContrastiveObjective(
                        sampler: try NeighborPatchSampler(dataset: data, maxOffset: 1),
                        loss: InfoNCELoss(temperature: 0.5)),
                    optimizer: Adam(learningRate: 1e-3), schedule: ConstantSchedule(1e-3), batchSize: 8,
                    budget: .epochs(2, stepsPerEpoch: 3)))
        }
        return try LayerwiseTrainer(stages: list, inputChannels: 3, firstPatchSize: 3, seed: 5)
    }

    func testTrainingWritesScalarsFilterImagesAndHistogramsThatAnIndependentReaderParses() throws {
        let dir = try logDirectory()
        let trainer = try tinyTrainer(stages: 2)
        let logger = try TensorBoardLogger(logDirectory: dir, trainer: trainer, filterScale: 8, histograms: true)
        var losses: [Float] = []
        try trainer.pretrain { event in
            if case let .step(e) = event { losses.append(e.loss) }
            logger.record(event)
        }
        logger.recordProbe(accuracy: 0.25)
        try logger.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(files.count, 1)
        XCTAssertTrue(files[0].hasPrefix("events.out.tfevents."))
        let events = try EventFileReader.events(path: "\(dir)/\(files[0])")
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        let values = events.flatMap { e in e.values.map { (step: e.step, value: $0) } }
        func series(_ tag: String) -> [(step: Int, value: EventFileReader.Value)] {
            values.filter { $0.value.tag == tag }
        }
        let loss1 = series("stage1/loss"), loss2 = series("stage2/loss")
        XCTAssertEqual(loss1.map(\.step), Array(1...6))
        XCTAssertEqual(loss2.map(\.step), Array(7...12), "stage 2 follows stage 1 on one global axis")
        XCTAssertEqual((loss1 + loss2).map { $0.value.scalar! }, losses)
        XCTAssertEqual(series("stage1/learning_rate").map { $0.value.scalar! }, [Float](repeating: 1e-3, count: 6))
        XCTAssertTrue(series("stage1/samples_per_second").allSatisfy { $0.value.scalar! > 0 })
        XCTAssertEqual(series("stage1/activeFraction").count, 6, "the objective's metrics are logged")
        XCTAssertEqual(series("stage2/epoch_loss").map(\.step), [9, 12])
        XCTAssertEqual(series("probe/test_accuracy").map { $0.value.scalar! }, [0.25])
        let images = series("stage1/filters")
        XCTAssertEqual(images.map(\.step), [3, 6])
        for (_, v) in images + series("stage2/filters") {
            let image = try XCTUnwrap(v.image)
            XCTAssertEqual(Array(image.png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            let ihdr = Array(image.png[16..<24])
            XCTAssertEqual(Int(ihdr[0..<4].reduce(0) { $0 << 8 | UInt32($1) }), image.width)
            XCTAssertEqual(Int(ihdr[4..<8].reduce(0) { $0 << 8 | UInt32($1) }), image.height)
        }
        // 4 filters of 3x3 at 8x with 1-pixel gaps: 4·(24+1)+1 wide, 24+2 high.
        XCTAssertEqual(images[0].value.image?.width, 101)
        XCTAssertEqual(images[0].value.image?.height, 26)
        let histogram = try XCTUnwrap(series("stage1/0.weight").first?.value.histogram)
        if case let .fixed64(num)? = histogram[3]?.first {
            XCTAssertEqual(Double(bitPattern: num), 4 * 3 * 3 * 3)
        } else {
            XCTFail("histogram count missing")
        }
    }

    func testReaderRejectsACorruptedRecord() throws {
        let dir = try logDirectory()
        let writer = try TensorBoardWriter(logDirectory: dir, clock: { 1000 })
        writer.addScalar("x", 1.5, step: 1)
        try writer.close()
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: writer.path)))
        XCTAssertEqual(try EventFileReader.records(bytes).count, 2)
        bytes[bytes.count - 6] ^= 1
        XCTAssertThrowsError(try EventFileReader.records(bytes))
    }

    func testUnwritableLogDirectoryIsATypedError() throws {
        let dir = try logDirectory()
        XCTAssertTrue(FileManager.default.createFile(atPath: "\(dir)/file", contents: Data([1])))
        XCTAssertThrowsError(try TensorBoardWriter(logDirectory: "\(dir)/file/sub")) { error in
            guard case .cannotCreate(let path, _) = error as? TensorBoardError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "\(dir)/file/sub")
        }
    }
}
