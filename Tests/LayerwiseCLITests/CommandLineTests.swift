import ArgumentParser
import Foundation
import Layerwise
import LayerwiseImages
import XCTest

@testable import LayerwiseCLI

final class CommandLineTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "layerwise-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    /// 24 images (PNG and JPEG, two sizes) in two class folders.
    func makeFolder() throws -> String {
        let folder = "\(root)/photos"
        for i in 0..<24 {
            let (w, h) = i % 3 == 0 ? (24, 20) : (16, 16)
            var px: [UInt8] = []
            for y in 0..<h {
                for x in 0..<w { px += [UInt8((x * 11 + i * 7) % 256), UInt8((y * 13) % 256), UInt8(i * 9 % 256)] }
            }
            let image = RGBImage(width: w, height: h, pixels: px)
            let name = "\(folder)/\(i % 2 == 0 ? "cats" : "dogs")/\(i).\(i % 4 < 2 ? "png" : "jpg")"
            try FileManager.default.createDirectory(
                atPath: (name as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let bytes =
                i % 4 < 2 ? try PNGEncoder.encode(rgb: px, width: w, height: h) : try ImageCodec.encodeJPEG(image)
            try Data(bytes).write(to: URL(fileURLWithPath: name))
        }
        return folder
    }

    func tinyRecipe() throws -> String {
        var r = PretrainRecipe()
        r.inputSize = 16
        r.stages = [
            StageRecipe(
                filters: 4, kernelSize: 3, pool: 2, whitening: 0.1, start: .kmeans,
                batchSize: 16, epochs: 2, stepsPerEpoch: 2)
        ]
        let path = "\(root)/recipe.json"
        try r.json().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func run(_ arguments: [String]) throws {
        var command = try LayerwiseCommand.parseAsRoot(arguments)
        try command.run()
    }

    /// The message the tool prints for the error `arguments` cause (parse or run).
    func failure(_ arguments: [String]) -> String {
        do {
            try run(arguments)
            return "no error"
        } catch {
            return LayerwiseCommand.message(for: error)
        }
    }

    func npyShape(_ path: String) throws -> (descr: String, shape: [Int]) {
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let h = try NPY.readHeader(path: path, fileSize: size)
        return (h.descr, h.shape)
    }

    func testPretrainFeaturesProbeAndInspectOnAnImageFolder() throws {
        let folder = try makeFolder(), recipe = try tinyRecipe()
        let model = "\(root)/model.safetensors", logs = "\(root)/logs"
        try run([
            "pretrain", "--data", folder, "--recipe", recipe, "--out", model, "--log-dir", logs,
            "--checkpoint-dir", "\(root)/ckpt",
        ])
        XCTAssertTrue(FileManager.default.fileExists(atPath: model))
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: logs).filter { $0.hasPrefix("events.out") }.count, 1)
        try run(["features", "--model", model, "--data", folder, "--out", "\(root)/f.npy"])
        let f = try npyShape("\(root)/f.npy")
        XCTAssertEqual(f.descr, "<f4")
        XCTAssertEqual(f.shape, [24, 16], "24 images × 4 quadrants × 4 filters")
        XCTAssertEqual(
            try NPY.loadLabels(path: "\(root)/f.labels.npy"),
            try ImageFolderDataset(root: folder, options: .init(size: 16)).images.labels)
        try run(["probe", "--model", model, "--train", folder, "--test", folder, "--epochs", "2"])
        try run(["inspect", model])
        try run(["inspect", folder])
        try run(["inspect", "\(root)/f.npy"])
        // Resuming a finished run trains nothing more and writes the same model.
        let before = try Data(contentsOf: URL(fileURLWithPath: model))
        try run([
            "pretrain", "--data", folder, "--recipe", recipe, "--out", "\(root)/again.safetensors", "--resume",
            "--checkpoint-dir", "\(root)/ckpt",
        ])
        let again = try SafeTensors.read(path: "\(root)/again.safetensors")
        let first = try SafeTensors.read(path: model)
        XCTAssertTrue(first.tensors.keys.sorted() == again.tensors.keys.sorted())
        for (k, t) in first.tensors { XCTAssertTrue(t.isBitIdentical(to: again.tensors[k]!), k) }
        XCTAssertFalse(before.isEmpty)
    }

    /// The saved (folded) convolutions give the trained (whitened) stack's output.
    func testModelFileReproducesTheTrainedStack() throws {
        let folder = try makeFolder()
        var recipe = PretrainRecipe()
        recipe.inputSize = 16
        recipe.stages = [
            StageRecipe(filters: 4, kernelSize: 3, batchSize: 8, epochs: 1, stepsPerEpoch: 2),
            StageRecipe(
                filters: 5, kernelSize: 2, pool: 1, whitening: 0.01, start: .random, batchSize: 8,
                epochs: 1, stepsPerEpoch: 2),
        ]
        let images = try ImageFolderDataset(root: folder, options: .init(size: 16)).images
        let normalization = ChannelNormalization.fit(images)
        let trainer = try RecipeBuilder.trainer(recipe: recipe, dataset: images, normalization: normalization)
        try trainer.pretrain()
        let path = "\(root)/m.safetensors"
        try ModelFile(trainer: trainer, recipe: recipe, normalization: normalization, training: [:]).write(to: path)
        let loaded = try ModelFile.read(path: path)
        let batch = try makeBatch(from: images, indices: 0..<6, normalization: normalization).images
        let want = trainer.featureExtractor(throughStage: 2)(batch)
        let got = try loaded.featureExtractor()(batch)
        XCTAssertEqual(got.shape, want.shape)
        let worst = zip(got.scalars, want.scalars).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(worst, 1e-4)
    }

    func makeBatch(
        from d: any ImageDataset, indices: Range<Int>, normalization: ChannelNormalization
    ) throws
        -> (images: Tensor, labels: [Int])
    {
        let s = d.imageShape
        var t = Tensor.zeros([indices.count, s.channels, s.height, s.width])
        t.withUnsafeMutableBufferPointer { b in
            for (r, i) in indices.enumerated() {
                d.copyPixels(of: i, into: UnsafeMutableBufferPointer(rebasing: b[(r * s.elementCount)...]))
            }
        }
        try normalization.apply(to: &t)
        return (t, [])
    }

    func testRecipeErrorsNameTheKey() throws {
        let path = "\(root)/r.json"
        func message(_ json: String) throws -> String {
            try json.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try PretrainRecipe.load(path: path)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(try message(#"{"stages": [{"filtrs": 8}]}"#).contains("stages[0].filtrs: unknown key 'filtrs'"))
        XCTAssertTrue(try message(#"{"inputSize": "big"}"#).contains("inputSize: expected Int"))
        XCTAssertTrue(try message(#"{"stages": [{"filters": 0}]}"#).contains("stages[0].filters = 0"))
        XCTAssertTrue(try message(#"{"stages": []}"#).contains("at least one stage"))
        XCTAssertTrue(try message(#"{"objective": {"loss": "hinge"}}"#).contains("objective.loss"))
        XCTAssertTrue(try message(#"{"stages": [{}, {"start": "kmeans"}]}"#).contains("stages[1].start"))
        XCTAssertTrue(try message("{not json").contains("r.json"))
        XCTAssertEqual(try message(#"{"seed": 3}"#), "no error")
        var expected = PretrainRecipe.default
        expected.seed = 3
        XCTAssertEqual(try PretrainRecipe.load(path: path), expected)
        let text = try PretrainRecipe.twoStage.json()
        XCTAssertEqual(try JSONDecoder().decode(PretrainRecipe.self, from: Data(text.utf8)), .twoStage)
    }

    func testBadOptionsAndFilesAreCleanErrors() throws {
        let folder = try makeFolder(), recipe = try tinyRecipe()
        let notModel = "\(root)/other.safetensors"
        try SafeTensors.write(["x": Tensor.zeros([2])], to: notModel)
        try Data("hello".utf8).write(to: URL(fileURLWithPath: "\(root)/notes.txt"))
        let cases: [([String], String)] = [
            (["pretrain", "--data", folder, "--out", "m.bin"], "must end in .safetensors"),
            (
                ["pretrain", "--data", "\(root)/nope", "--out", "\(root)/m.safetensors"],
                "no such data file: \(root)/nope"
            ),
            (
                ["pretrain", "--data", folder, "--recipe", "\(root)/missing.json", "--out", "\(root)/m.safetensors"],
                "no such recipe file"
            ),
            (
                ["pretrain", "--data", folder, "--recipe", recipe, "--out", "\(root)/m.safetensors", "--split", "val"],
                "invalid --split val"
            ),
            (["pretrain", "--data", "\(root)/notes.txt", "--out", "\(root)/m.safetensors"], "expected a folder"),
            (["pretrain", "--data", folder, "--out", "\(root)/m.safetensors", "--probe-every", "-1"], "--probe-every"),
            (["pretrain", "--data", folder, "--out", "\(root)/m.safetensors", "--bogus"], "Unknown option '--bogus'"),
            (["features", "--model", notModel, "--data", folder, "--out", "\(root)/f.npy"], "not a layerwise model"),
            (
                ["features", "--model", "\(root)/none.safetensors", "--data", folder, "--out", "\(root)/f.npy"],
                "no such model file"
            ),
            (["features", "--model", notModel, "--data", folder, "--out", "\(root)/f.csv"], "must end in .npy"),
            (["probe", "--model", notModel, "--train", folder, "--test", folder, "--epochs", "0"], "--epochs"),
            (["recipe", "--print", "fancy"], "known recipes: default, two-stage"),
            (["inspect", "\(root)/notes.txt"], "expected .safetensors, .npy or a folder"),
        ]
        for (arguments, expected) in cases {
            let message = failure(arguments)
            XCTAssertTrue(message.contains(expected), "\(arguments): \(message)")
        }
    }
}

extension CommandLineTests {
    /// `positives: framePair` reads the data as clips (here a 5-D .npy of drifting frames).
    func testFramePairRecipeTrainsOnNPYClips() throws {
        let (n, t, h, w) = (4, 3, 16, 16)
        var payload: [UInt8] = []
        for clip in 0..<n {
            for f in 0..<t {
                for y in 0..<h {
                    for x in 0..<w {
                        for c in 0..<3 {
                            let v: Int = ((x + f + clip * 5) * 9 % 256) ^ (y * 7 + c)
                            payload.append(UInt8(v & 0xFF))
                        }
                    }
                }
            }
        }
        let clips = "\(root)/clips.npy"
        try Data(NPY.encode(descr: "|u1", shape: [n, t, h, w, 3], payload: payload)).write(
            to: URL(fileURLWithPath: clips))
        var r = PretrainRecipe()
        r.inputSize = 16
        r.positives = .framePair
        r.stages = [
            StageRecipe(
                filters: 4, kernelSize: 3, pool: 2, whitening: nil, start: .random, batchSize: 8, epochs: 1,
                stepsPerEpoch: 3)
        ]
        let recipe = "\(root)/clips.json"
        try r.json().write(toFile: recipe, atomically: true, encoding: .utf8)
        try run(["pretrain", "--data", clips, "--recipe", recipe, "--out", "\(root)/clips.safetensors"])
        let model = try ModelFile.read(path: "\(root)/clips.safetensors")
        XCTAssertEqual(model.training["images"], "\(n * t)")
        XCTAssertTrue(
            failure(["pretrain", "--data", "\(root)/nothing.npy", "--recipe", recipe, "--out", "\(root)/c.safetensors"])
                .contains("no such data file"))
    }
}

extension CommandLineTests {
    func testFiltersWritesAnUpscaledGrid() throws {
        let folder = try makeFolder(), recipe = try tinyRecipe()
        let model = "\(root)/model.safetensors"
        try run(["pretrain", "--data", folder, "--recipe", recipe, "--out", model])
        try run(["filters", "--model", model, "--out", "\(root)/f.png", "--scale", "8"])
        let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(root)/f.png")))
        let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(width, 4 * (3 * 8 + 1) + 1, "4 filters of 3x3 at 8x with 1-pixel gaps")
        XCTAssertEqual(height, 3 * 8 + 2)
        XCTAssertTrue(
            failure(["filters", "--model", model, "--out", "\(root)/f.png", "--stage", "2"]).contains("stages 1...1"))
        XCTAssertTrue(
            failure(["filters", "--model", model, "--out", "\(root)/f.png", "--scale", "0"]).contains("--scale"))
    }
}

extension CommandLineTests {
    /// A run cut after its first epoch and resumed with `--resume` writes the same model, bit
    /// for bit, as the uninterrupted run (the data, whitening and k-means start are rebuilt).
    func testResumeAfterAnInterruptionGivesTheUninterruptedModel() throws {
        let folder = try makeFolder(), recipe = try tinyRecipe()
        let whole = "\(root)/whole.safetensors", resumed = "\(root)/resumed.safetensors"
        try run(["pretrain", "--data", folder, "--recipe", recipe, "--out", whole, "--checkpoint-dir", "\(root)/a"])
        try run([
            "pretrain", "--data", folder, "--recipe", recipe, "--out", "\(root)/b.safetensors",
            "--checkpoint-dir", "\(root)/b",
        ])
        // Remove every checkpoint after epoch 1 (2 steps): the state of a run killed there.
        let names = try FileManager.default.contentsOfDirectory(atPath: "\(root)/b").sorted()
        XCTAssertGreaterThanOrEqual(names.count, 2, "\(names)")
        for name in names where !name.hasSuffix("step000000002.safetensors") {
            try FileManager.default.removeItem(atPath: "\(root)/b/\(name)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(root)/b").count, 1)
        try run([
            "pretrain", "--data", folder, "--recipe", recipe, "--out", resumed, "--checkpoint-dir", "\(root)/b",
            "--resume",
        ])
        let a = try SafeTensors.read(path: whole), b = try SafeTensors.read(path: resumed)
        XCTAssertEqual(b.metadata["resumedFrom"], "stage 1 after step 2")
        XCTAssertNil(a.metadata["resumedFrom"])
        XCTAssertEqual(a.tensors.keys.sorted(), b.tensors.keys.sorted())
        for (name, t) in a.tensors { XCTAssertTrue(t.isBitIdentical(to: b.tensors[name]!), name) }
    }
}

extension CommandLineTests {
    /// With a checkpoint folder, SIGTERM finishes the current step, writes a checkpoint and ends
    /// with exit status 75; `--resume` then finishes the run from that checkpoint.
    func testSignalStopsAtACheckpointAndResumeFinishes() throws {
        let folder = try makeFolder()
        var r = PretrainRecipe()
        r.inputSize = 16
        r.stages = [StageRecipe(filters: 4, kernelSize: 3, pool: 2, batchSize: 16, epochs: 50, stepsPerEpoch: 2)]
        let recipe = "\(root)/long.json", checkpoints = "\(root)/ckpt", out = "\(root)/m.safetensors"
        try r.json().write(toFile: recipe, atomically: true, encoding: .utf8)
        // A SIGTERM that arrives after the run has restored the previous action is ignored, not fatal.
        signal(SIGTERM, SIG_IGN)
        defer { signal(SIGTERM, SIG_DFL) }
        let arguments = [
            "pretrain", "--data", folder, "--recipe", recipe, "--out", out, "--checkpoint-dir", checkpoints,
        ]
        let outcome = Outcome()
        let worker = Thread {
            do {
                var command = try LayerwiseCommand.parseAsRoot(arguments)
                try command.run()
            } catch { outcome.error = error }
            outcome.done.signal()
        }
        worker.start()
        let deadline = Date().addingTimeInterval(60)
        while (try? FileManager.default.contentsOfDirectory(atPath: checkpoints))?.isEmpty ?? true, Date() < deadline {
            usleep(1000)
        }
        raise(SIGTERM)
        outcome.done.wait()
        XCTAssertEqual(
            (outcome.error as? ExitCode)?.rawValue, SignalStop.stoppedExitStatus, "\(String(describing: outcome.error))"
        )
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a stopped run writes no model")
        try run(arguments + ["--resume"])
        let model = try SafeTensors.read(path: out)
        let resumedAfter = try XCTUnwrap(model.metadata["resumedFrom"]?.split(separator: " ").last.flatMap { Int($0) })
        XCTAssertEqual(Int(model.metadata["steps"] ?? ""), 100 - resumedAfter, "the resumed run does only the rest")
    }
}

/// What the pretraining thread of a test ended with.
private final class Outcome: @unchecked Sendable {
    var error: Error?
    let done = DispatchSemaphore(value: 0)
}
