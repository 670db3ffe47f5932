import ArgumentParser
import Foundation
import Layerwise
import XCTest

@testable import ReproducePaper

/// `reproduce-paper --layers 3` without `--probe-only`, run in process on a few synthetic
/// CIFAR images at a tiny width: the finetuned and scratch arms land in results.json.
final class DeepArmsCommandTests: XCTestCase {
    /// Writes `cifar10/data_batch_1.bin`, `cifar10/test_batch.bin` and `cifar100/train.bin`
    /// (the official layouts) of class-tinted noise images; returns the folder.
    func writeSyntheticCIFAR(train: Int, test: Int) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("layerwise-deep-arms-\(UUID())")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        for folder in ["cifar10", "cifar100"] {
            try FileManager.default.createDirectory(
                at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        var g = SeededGenerator(seed: 9)
        func records(_ count: Int, labelBytes: Int) -> Data {
            var bytes: [UInt8] = []
            for i in 0..<count {
                let label = UInt8(i % 10)
                bytes += Array(repeating: label, count: labelBytes)
                for c in 0..<3 {
                    let tint = Int(label) * 20 + c * 30
                    for _ in 0..<1024 { bytes.append(UInt8(clamping: tint + g.nextInt(below: 60))) }
                }
            }
            return Data(bytes)
        }
        try records(train, labelBytes: 1).write(to: root.appendingPathComponent("cifar10/data_batch_1.bin"))
        try records(test, labelBytes: 1).write(to: root.appendingPathComponent("cifar10/test_batch.bin"))
        try records(10, labelBytes: 2).write(to: root.appendingPathComponent("cifar100/train.bin"))
        return root.path
    }

    func testDeepStackTrainsTheFineTunedAndScratchArms() throws {
        let data = try writeSyntheticCIFAR(train: 40, test: 20)
        let out = data + "/out"
        var command = try ReproducePaper.parseAsRoot([
            "--layers", "3", "--skip-supervised", "--cifar10", data + "/cifar10", "--cifar100", data + "/cifar100",
            "--width-scale", "0.05", "--epochs", "2", "--seeds", "1", "--probe-epochs", "1", "--probe-stages", "3",
            "--skip-controls", "--threads", "1", "--out", out,
        ])
        try command.run()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
        let results = try XCTUnwrap(json as? [String: Any])
        let arms = try XCTUnwrap(results["arms"] as? [String: [String: Any]])
        XCTAssertEqual(Set(arms.keys), ["finetuned", "scratch"])
        for (name, arm) in arms {
            let accuracies = try XCTUnwrap(arm["test_accuracy_per_seed"] as? [Double], name)
            XCTAssertEqual(accuracies.count, 1, name)
            XCTAssertTrue(accuracies.allSatisfy { (0...1).contains($0) }, "\(name): \(accuracies)")
            XCTAssertEqual((arm["curve"] as? [Double])?.count, 2, name)
            XCTAssertGreaterThan(arm["seconds"] as? Double ?? 0, 0, name)
        }
        XCTAssertNotNil((results["linear_probe"] as? [String: Any])?["stage3"])
        let markdown = try String(contentsOfFile: out + "/results.md", encoding: .utf8)
        XCTAssertTrue(markdown.contains("| finetuned |") && markdown.contains("| scratch |"), markdown)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/curves.svg"))
    }

    /// `--deep-pretrain-on cifar10+cifar100` pretrains on both sets' images; the probe still
    /// trains on the CIFAR-10 training images alone.
    func testDeepStackPretrainsOnCIFAR100ImagesToo() throws {
        let data = try writeSyntheticCIFAR(train: 40, test: 20)
        let out = data + "/out"
        var command = try ReproducePaper.parseAsRoot([
            "--layers", "3", "--skip-supervised", "--probe-only", "--cifar10", data + "/cifar10", "--cifar100",
            data + "/cifar100", "--deep-pretrain-on", "cifar10+cifar100", "--width-scale", "0.05", "--deep-stages",
            "1", "--probe-epochs", "1", "--skip-controls", "--threads", "1", "--out", out,
        ])
        try command.run()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
        let results = try XCTUnwrap(json as? [String: Any])
        let counts = try XCTUnwrap(results["data"] as? [String: Any])
        XCTAssertEqual(counts["pretrain_images"] as? Int, 50)
        XCTAssertEqual(counts["train_images"] as? Int, 40)
        XCTAssertNotNil((results["linear_probe"] as? [String: Any])?["stage1"])
    }

    /// `--probe-concat 1@2,2` adds one probe of stage 1 pooled to 2×2 beside stage 2's own map,
    /// under the name of its taps.
    func testConcatenatedProbeIsReportedUnderItsTaps() throws {
        let data = try writeSyntheticCIFAR(train: 40, test: 20)
        let out = data + "/out"
        var command = try ReproducePaper.parseAsRoot([
            "--layers", "3", "--skip-supervised", "--probe-only", "--cifar10", data + "/cifar10", "--width-scale",
            "0.05", "--deep-stages", "2", "--probe-stages", "2", "--probe-concat", "1@2,2", "--probe-epochs", "1",
            "--skip-controls", "--threads", "1", "--out", out,
        ])
        try command.run()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
        let probes = try XCTUnwrap((json as? [String: Any])?["linear_probe"] as? [String: Double])
        XCTAssertEqual(Set(probes.keys), ["stage2", "stage1@2x2+stage2"])
        XCTAssertTrue(probes.values.allSatisfy { (0...1).contains($0) }, "\(probes)")
    }

    /// A probe whose features would not fit `--probe-memory-gb` stops the run before pretraining.
    func testProbeOverTheMemoryLimitStopsBeforePretraining() throws {
        let data = try writeSyntheticCIFAR(train: 40, test: 20)
        let out = data + "/out"
        var command = try ReproducePaper.parseAsRoot([
            "--layers", "3", "--skip-supervised", "--probe-only", "--cifar10", data + "/cifar10", "--cifar100",
            data + "/cifar100", "--width-scale", "0.05", "--probe-memory-gb", "0.000001", "--threads", "1",
            "--out", out,
        ])
        // The command prints the typed error ("… more than the 1000 bytes limit …") and exits with failure.
        XCTAssertThrowsError(try command.run()) { XCTAssertEqual($0 as? ExitCode, .failure) }
        XCTAssertEqual(
            "\(ProbeError.featureCacheTooLarge(bytes: 2_500_000, limit: 1_000))",
            "probe features need 2 MB, more than the 1000 bytes limit (pool to a coarser grid, tap fewer stages "
                + "or raise the limit)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/deep_stages.safetensors"))
    }

    /// The combinations `--layers 3` rejects, each with an error naming the option, before any work.
    func testDeepStackRejectsWhatItCannotRun() throws {
        let rejected: [([String], String)] = [
            ([], "--skip-supervised"),
            (["--probe-only"], "--skip-supervised"),
            (["--skip-supervised", "--arms", "scratch"], "--arms"),
            (["--skip-supervised", "--kmeans-arms"], "--kmeans-arms"),
            (["--skip-supervised", "--epochs", "0"], "--epochs"),
            (["--skip-supervised", "--seeds", "0"], "--seeds"),
            (["--skip-supervised", "--probe-memory-gb", "0"], "--probe-memory-gb"),
            (["--skip-supervised", "--deep-pretrain-on", "cifar100"], "--deep-pretrain-on"),
            (["--skip-supervised", "--probe-concat", "3"], "--probe-concat"),
            (["--skip-supervised", "--probe-concat", "2,2@4"], "--probe-concat"),
            (["--skip-supervised", "--probe-concat", "1,4"], "--probe-concat"),
            (["--skip-supervised", "--probe-concat", "2@0,3"], "--probe-concat"),
            (["--skip-supervised", "--probe-concat", "two,3"], "--probe-concat"),
            (["--skip-supervised", "--probe-concat", "2,3", "--deep-stages", "2"], "--probe-concat"),
        ]
        for (extra, option) in rejected {
            XCTAssertThrowsError(try ReproducePaper.parseAsRoot(["--layers", "3"] + extra), "\(extra)") { error in
                let message = ReproducePaper.message(for: error)
                XCTAssertTrue(message.contains(option), "\(extra): \(message)")
            }
        }
        for accepted in [["--skip-supervised"], ["--skip-supervised", "--probe-only"]] {
            XCTAssertNoThrow(try ReproducePaper.parseAsRoot(["--layers", "3"] + accepted), "\(accepted)")
        }
        let arms = try XCTUnwrap(ReproducePaper.parseAsRoot(["--layers", "3", "--skip-supervised"]) as? ReproducePaper)
        XCTAssertEqual(try arms.deepOptions().transfer?.epochs, Budget.preset(.quick).epochs)
        let probes = try XCTUnwrap(
            ReproducePaper.parseAsRoot(["--layers", "3", "--skip-supervised", "--probe-only"]) as? ReproducePaper)
        XCTAssertNil(try probes.deepOptions().transfer)
        let concatenated = try XCTUnwrap(
            ReproducePaper.parseAsRoot(["--layers", "3", "--skip-supervised", "--probe-concat", "2@4, 3"])
                as? ReproducePaper)
        XCTAssertEqual(
            try concatenated.deepOptions().concatenatedTaps, [ProbeTap(stage: 2, grid: 4), ProbeTap(stage: 3)])
        XCTAssertEqual(try concatenated.deepOptions().probeStages, [], "no stage alone unless --probe-stages names it")
    }
}
