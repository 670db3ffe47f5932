import ArgumentParser
import Foundation
import Layerwise
import LayerwiseImages

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model, a checkpoint, a .npy file or an image folder.",
        discussion: "For an image folder it also times decoding (images per second on all cores).")

    @Argument(help: "The file or folder.")
    var path: String

    @Option(help: "Image side for an image folder.")
    var size: Int = 32

    @Option(help: "Load an image folder this many times and report the fastest (decoding benchmark).")
    var repeats: Int = 1

    func validate() throws {
        guard repeats >= 1 else {
            throw CommandLineError.badOption(name: "--repeats", value: "\(repeats)", reason: "must be ≥ 1")
        }
        guard (1...4096).contains(size) else {
            throw CommandLineError.badOption(name: "--size", value: "\(size)", reason: "must lie in 1...4096")
        }
    }

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CommandLineError.missingFile(path: path, what: "")
        }
        if isDirectory.boolValue { return try inspectFolder() }
        let lower = path.lowercased()
        if lower.hasSuffix(".npy") {
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
            let header = try NPY.readHeader(path: path, fileSize: size)
            print("\(path): .npy, dtype \(header.descr), shape \(header.shape)")
        } else if lower.hasSuffix(".safetensors") {
            try inspectSafeTensors()
        } else {
            throw CommandLineError.unknownData(path: path, reason: "expected .safetensors, .npy or a folder")
        }
    }

    func inspectSafeTensors() throws {
        let file = try SafeTensors.read(path: path)
        if file.metadata["format"] == ModelFile.format {
            let model = try ModelFile.read(path: path)
            print("\(path): layerwise model")
            print("  stages: \(model.describeStages())")
            for (k, w) in model.weights.enumerated() {
                print("  stage\(k + 1).weight \(w.weight.shape), stage\(k + 1).bias \(w.bias.shape)")
            }
            print(
                "  input: \(model.inputChannels) channels, \(model.recipe.inputSize)x\(model.recipe.inputSize); "
                    + "normalization mean \(model.normalization.mean) std \(model.normalization.std)")
            for key in model.training.keys.sorted() where key != "stages" { print("  \(key): \(model.training[key]!)") }
            return
        }
        let kind = file.metadata["kind"] ?? file.metadata["format"] ?? "safetensors"
        print("\(path): \(kind)")
        for key in file.metadata.keys.sorted() { print("  \(key): \(file.metadata[key]!)") }
        for name in file.tensors.keys.sorted() { print("  \(name) \(file.tensors[name]!.shape)") }
    }

    func inspectFolder() throws {
        var best = Double.infinity
        var loaded: LoadedImages?
        for _ in 0..<repeats {
            let start = Date()
            loaded = try DataSource.images(path, size: size)
            best = min(best, Date().timeIntervalSince(start))
        }
        guard let loaded else { return }
        print("\(path): \(loaded.summary)")
        print(
            String(
                format: "  loaded in %.3f s (%.0f images/s on %d cores%@)", best, Double(loaded.dataset.count) / best,
                ProcessInfo.processInfo.activeProcessorCount, repeats > 1 ? ", best of \(repeats)" : ""))
    }
}
