import Foundation
import FuzzDriver
import Layerwise

/// libFuzzer entry point for the checkpoint loader: the input is written as the only
/// checkpoint of a tiny trainer's folder (on `/dev/shm` when it exists), then
/// - `loadWeights(from:)` reads it into a fresh stack, and
/// - `pretrain(resume: true)` resumes from it (position, optimizer state, generators) and
///   trains the rest of the 2-step budget.
/// Typed errors pass; traps, leaks and ASan reports are findings, and so are weights that
/// are not finite after a load or a resumed run that reports success. Inputs that are not
/// valid safetensors are left to FuzzSafeTensors (see below).
///
/// With `LAYERWISE_FUZZ_SEED_DIR=<folder>` the binary instead trains the tiny trainer
/// with a checkpoint after every step into that folder (the seed corpus) and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzCheckpointInitialize(
    _ argc: UnsafeMutablePointer<Int32>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> Int32 {
    guard let seeds = ProcessInfo.processInfo.environment["LAYERWISE_FUZZ_SEED_DIR"] else { return 0 }
    do {
        let trainer = try TinyTrainer.make()
        trainer.checkpointDirectory = seeds
        trainer.checkpointEvery = 1
        trainer.keepCheckpoints = 0
        try trainer.pretrain()
        try trainer.saveWeights(to: seeds + "/weights.safetensors")
        exit(0)
    } catch {
        fatalError("cannot write the seed checkpoints: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    // The loader reads with SafeTensors.read (= readAll + decode): an input decode rejects
    // is rejected there the same way (FuzzSafeTensors covers it), so the time goes to
    // inputs that reach the trainer's own checks.
    guard (try? SafeTensors.decode(bytes)) != nil else { return 0 }
    let dir = TinyTrainer.directory
    // A clean folder holding only this input, under a name the trainer resumes from.
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        _ = unlink(dir + "/" + name)
    }
    let path = dir + "/layerwise-stage1-step000000001.safetensors"
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        fatalError("cannot write \(path)")
    }
    do {
        let trainer = try TinyTrainer.make()
        if (try? trainer.loadWeights(from: path)) != nil {
            TinyTrainer.requireFinite(trainer, after: "loadWeights")
        }
        let fresh = try TinyTrainer.make()
        fresh.checkpointDirectory = dir
        if (try? fresh.pretrain(resume: true)) != nil {
            TinyTrainer.requireFinite(fresh, after: "a resumed run")
        }
    } catch {
        fatalError("cannot build the tiny trainer: \(error)")
    }
    return 0
}

/// One stage: a 3x3 conv (1 → 2 channels) on 3x3 patches of four 6x6 grayscale images,
/// Adam, a triplet loss, two steps of two triplets.
enum TinyTrainer {
    static let directory: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = base + "/layerwise-fuzz-checkpoint-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    static let images: InMemoryImageDataset = {
        var g = SeededGenerator(seed: 3)
        let pixels = (0..<(4 * 36)).map { _ in UInt8(g.nextInt(below: 256)) }
        return try! InMemoryImageDataset(pixels: pixels, shape: ImageShape(channels: 1, height: 6, width: 6))
    }()

    static func make() throws -> LayerwiseTrainer {
        var g = SeededGenerator(seed: 1)
        let stage = Stage(
            layers: [try Conv2D(inputChannels: 1, outputChannels: 2, kernelSize: 3, using: &g)],
            objective: ContrastiveObjective(
                sampler: try NeighborPatchSampler(dataset: images, maxOffset: 1),
                loss: TripletMarginLoss(distance: CosineDistance(), margin: 0.5)),
            optimizer: Adam(learningRate: 0.01), schedule: ConstantSchedule(0.01), batchSize: 2,
            budget: .epochs(1, stepsPerEpoch: 2))
        return try LayerwiseTrainer(stages: [stage], inputChannels: 1, firstPatchSize: 3, seed: 7)
    }

    static func requireFinite(_ trainer: LayerwiseTrainer, after what: String) {
        for (name, p) in trainer.namedState() where !p.value.isFinite {
            fatalError("\(name) is not finite after \(what)")
        }
    }
}

@_cdecl("FuzzCheckpoint_main")
public func fuzzCheckpointMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv) { fuzzCheckpoint($0, $1) }
}
