import Layerwise
import XCTest

/// Keeps the README's usage example compiling and working: the same code, on a small
/// synthetic dataset instead of a CIFAR folder.
final class ReadmeExampleTests: XCTestCase {
    func testReadmeUsageExampleRuns() throws {
        var pixels = [UInt8](repeating: 0, count: 8 * 3 * 16 * 16)
        var g = SeededGenerator(seed: 3)
        for i in pixels.indices { pixels[i] = UInt8(g.nextInt(below: 256)) }
        let images = try InMemoryImageDataset(pixels: pixels, shape: ImageShape(channels: 3, height: 16, width: 16))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // --- README snippet (data loading replaced by `images`, sizes shrunk) ---
        var rng = SeededGenerator(seed: 7)
        let sampler = try NeighborPatchSampler(
            dataset: images, maxOffset: 2,
            normalization: ChannelNormalization.fit(images))
        let stage = Stage(
            layers: [
                try Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 6, using: &rng),
                try MaxPool2D(kernelSize: 2), ReLU(),
            ],
            objective: ContrastiveObjective(sampler: sampler, loss: InfoNCELoss(temperature: 0.1)),
            optimizer: Adam(learningRate: 1e-3), schedule: ConstantSchedule(1e-3),
            batchSize: 16, budget: .epochs(2, stepsPerEpoch: 3))
        let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 7, seed: 7)
        var lines: [String] = []
        try trainer.pretrain { event in
            if let line = ProgressLine().render(event) { lines.append(line) }
        }
        try trainer.saveWeights(to: directory + "/stage1.safetensors")
        // --- end of snippet ---

        XCTAssertFalse(lines.isEmpty)
        let saved = try SafeTensors.read(path: directory + "/stage1.safetensors")
        XCTAssertEqual(saved.tensors["stage1.0.weight"]?.shape, [8, 3, 6, 6])
    }
}
