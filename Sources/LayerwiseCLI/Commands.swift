import ArgumentParser
import Foundation
import Layerwise
import LayerwiseImages
import LayerwiseTensorBoard

/// `layerwise`: layer-wise self-supervised pretraining from the command line.
public struct LayerwiseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "layerwise",
        abstract: "Layer-wise contrastive pretraining of convolutional features on your own images.",
        discussion: """
            Data (--data, --train, --test): a folder of PNG/JPEG images (root/<class>/<file> or flat), \
            a CIFAR binary folder, or a uint8 .npy array N×H×W×C.
            """,
        subcommands: [Pretrain.self, Features.self, Probe.self, Inspect.self, Filters.self, RecipeCommand.self])

    public init() {}
}

/// Options shared by the commands that read images.
struct DataOptions: ParsableArguments {
    @Option(help: "Labels for a .npy --data: a 1-D integer .npy.")
    var labels: String?

    @Option(help: "CIFAR split to read from a CIFAR folder: train or test.")
    var split: String = "train"

    @Flag(help: "Skip corrupt, truncated or unsupported image files (and report them) instead of failing.")
    var skipUnreadable = false

    func cifarSplit() throws -> CIFARSplit {
        guard let s = CIFARSplit(rawValue: split) else {
            throw CommandLineError.badOption(name: "--split", value: split, reason: "expected train or test")
        }
        return s
    }

    func load(_ path: String, size: Int, split override: CIFARSplit? = nil) throws -> LoadedImages {
        let loaded = try DataSource.images(
            path, size: size, split: override ?? cifarSplit(), labelsPath: labels, skipUnreadable: skipUnreadable)
        for (_, reason) in loaded.skipped {  // the reason names the file
            FileHandle.standardError.write(Data("skipped: \(reason)\n".utf8))
        }
        return loaded
    }
}

/// A result line on standard output, unbuffered so it keeps its place among the progress lines.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain the recipe's stages on --data and save the model (safetensors).")

    @Option(help: "Training images: an image folder, a CIFAR folder or a .npy file.")
    var data: String

    @Option(help: "Recipe JSON file, or a built-in name (default, two-stage).")
    var recipe: String = "default"

    @Option(help: "Where to write the model (.safetensors).")
    var out: String

    @Option(help: "Write TensorBoard event files to this folder.")
    var logDir: String?

    @Flag(help: "Also log parameter histograms to TensorBoard.")
    var histograms = false

    @Option(help: "Checkpoint folder (default with --resume: <out>.checkpoints).")
    var checkpointDir: String?

    @Flag(help: "Continue from the newest checkpoint in the checkpoint folder (starts fresh when there is none).")
    var resume = false

    @Option(help: "With labelled data: a linear probe (every fifth image held out) every N epochs (0 = never).")
    var probeEvery: Int = 0

    @OptionGroup var dataOptions: DataOptions

    func validate() throws {
        guard out.lowercased().hasSuffix(".safetensors") else {
            throw CommandLineError.badOption(
                name: "--out", value: out, reason: "the model file must end in .safetensors")
        }
        guard probeEvery >= 0 else {
            throw CommandLineError.badOption(name: "--probe-every", value: "\(probeEvery)", reason: "must be ≥ 0")
        }
    }

    func run() throws {
        let recipe = try PretrainRecipe.load(path: self.recipe)
        let images: InMemoryImageDataset, summary: String, clips: (any SequenceDataset)?
        if recipe.positives == .framePair {
            let loaded = try LoadedClips.load(data, size: recipe.inputSize)
            (images, summary, clips) = (loaded.frames, loaded.summary, loaded.clips)
        } else {
            let loaded = try dataOptions.load(data, size: recipe.inputSize)
            (images, summary, clips) = (loaded.dataset, loaded.summary, nil)
        }
        say("data: \(summary)")
        let normalization = ChannelNormalization.fit(images)
        let sampler = try clips.map { try FramePairSampler(clips: $0, normalization: normalization) }
        let trainer = try RecipeBuilder.trainer(
            recipe: recipe, dataset: images, normalization: normalization, sampler: sampler)
        if resume || checkpointDir != nil {
            trainer.checkpointDirectory = checkpointDir ?? out + ".checkpoints"
            trainer.checkpointEvery = trainer.stages[0].budget.stepsPerEpoch
            if resume, try trainer.latestCheckpoint(mode: .layerwise) == nil {
                say("resume: no checkpoint in \(trainer.checkpointDirectory!) yet; starting from the beginning")
            }
        }
        if probeEvery > 0 { try attachProbe(trainer, images: images, normalization: normalization) }
        let logger = try logDir.map {
            try TensorBoardLogger(logDirectory: $0, trainer: trainer, histograms: histograms)
        }
        let progress = ProgressReporter()
        let report = try pretrainStoppable(trainer) { event in
            progress.handle(event)
            logger?.record(event)
        }
        try logger?.close()
        var training = [
            "data": summary, "images": "\(images.count)",
            "seconds": String(format: "%.1f", report.totalSeconds),
            "finalLosses": report.stages.map { String(format: "%.4f", $0.finalLoss) }.joined(separator: ","),
            "steps": report.stages.map { "\($0.steps)" }.joined(separator: ","),
        ]
        if let k = report.stages.firstIndex(where: { $0.resumedAfterStep != nil }) {
            training["resumedFrom"] = "stage \(k + 1) after step \(report.stages[k].resumedAfterStep!)"
        }
        let model = try ModelFile(trainer: trainer, recipe: recipe, normalization: normalization, training: training)
        try model.write(to: out)
        say("model: \(out) (\(model.describeStages()); \(String(format: "%.1f", report.totalSeconds)) s)")
        if let logDir { say("TensorBoard: tensorboard --logdir \(logDir)") }
    }

    /// Pretrains; with a checkpoint folder, SIGINT/SIGTERM finish the current step, write a
    /// checkpoint and exit with status 75, printing the command that resumes. Without one the
    /// signals keep their default action: there would be nothing to resume from.
    func pretrainStoppable(
        _ trainer: LayerwiseTrainer, events: (TrainingEvent) -> Void
    ) throws -> PretrainingReport {
        guard trainer.checkpointDirectory != nil else { return try trainer.pretrain(resume: resume, events: events) }
        let signals = SignalStop(stopRequest: trainer.stopRequest)
        defer { signals.cancel() }
        do {
            return try trainer.pretrain(resume: resume, events: events)
        } catch let TrainerError.stopped(stage, step) {
            let again = (["layerwise"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
            FileHandle.standardError.write(
                Data(
                    """
                    stopped after step \(step) of stage \(stage); the checkpoint is in \(trainer.checkpointDirectory!)
                    resume with: \(again)\(resume ? "" : " --resume")

                    """.utf8))
            throw ExitCode(SignalStop.stoppedExitStatus)
        }
    }

    func attachProbe(
        _ trainer: LayerwiseTrainer, images: InMemoryImageDataset, normalization: ChannelNormalization
    ) throws {
        guard images.labels != nil, images.count >= 10 else {
            throw CommandLineError.badOption(
                name: "--probe-every", value: "\(probeEvery)", reason: "needs labelled data with at least 10 images")
        }
        // Every fifth image held out: image folders are sorted by class, so a tail split would
        // hold out the last classes only.
        let test = try images.subset(Array(stride(from: 4, to: images.count, by: 5)))
        let train = try images.subset((0..<images.count).filter { $0 % 5 != 4 })
        trainer.evaluateEvery = probeEvery
        trainer.evaluation = LinearProbe(epochs: 50, seed: 1).hook(
            train: train, test: test, normalization: normalization)
    }
}

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write pooled features of --data (float32 N×D .npy) and, for labelled data, the labels.",
        discussion: """
            Features are the model's output after ReLU, sum-pooled over the four image quadrants \
            (Coates et al. 2011): D = 4 × the top stage's filters. Labels go to <out>.labels.npy \
            (int64, N) unless --labels-out says otherwise.
            """)

    @Option(help: "A model written by `layerwise pretrain`.")
    var model: String

    @Option(help: "Images: an image folder, a CIFAR folder or a .npy file.")
    var data: String

    @Option(help: "Where to write the features (.npy).")
    var out: String

    @Option(help: "Where to write the labels (.npy); default <out without .npy>.labels.npy.")
    var labelsOut: String?

    @OptionGroup var dataOptions: DataOptions

    func validate() throws {
        guard out.lowercased().hasSuffix(".npy") else {
            throw CommandLineError.badOption(name: "--out", value: out, reason: "the features file must end in .npy")
        }
    }

    func run() throws {
        let model = try ModelFile.read(path: model)
        let loaded = try dataOptions.load(data, size: model.recipe.inputSize)
        try checkChannels(loaded.dataset, model)
        let (features, labels) = try Evaluation.pooledFeatures(
            try model.featureExtractor(), of: loaded.dataset, normalization: model.normalization)
        try NPYFloat.write(features, to: out)
        say("features: \(out) \(features.shape) float32 from \(loaded.summary)")
        if loaded.dataset.labels != nil {
            let path = labelsOut ?? String(out.dropLast(4)) + ".labels.npy"
            try NPY.write(labels: labels, to: path)
            say("labels: \(path) [\(labels.count)] int64")
        }
    }
}

func checkChannels(_ d: InMemoryImageDataset, _ model: ModelFile) throws {
    guard d.imageShape.channels == model.inputChannels else {
        throw CommandLineError.badOption(
            name: "data", value: "\(d.imageShape)", reason: "the model expects \(model.inputChannels)-channel images")
    }
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Linear-probe accuracy of the model's pooled features: train on --train, score on --test.",
        discussion: "A CIFAR folder given as --train reads its train split, as --test its test split.")

    @Option(help: "A model written by `layerwise pretrain`.")
    var model: String

    @Option(help: "Labelled training images.")
    var train: String

    @Option(help: "Labelled test images.")
    var test: String

    @Option(help: "Probe epochs (Adam on standardised features).")
    var epochs: Int = 100

    @OptionGroup var dataOptions: DataOptions

    func validate() throws {
        guard epochs >= 1 else {
            throw CommandLineError.badOption(name: "--epochs", value: "\(epochs)", reason: "must be ≥ 1")
        }
    }

    func run() throws {
        let model = try ModelFile.read(path: model)
        let train = try dataOptions.load(self.train, size: model.recipe.inputSize, split: .train)
        let test = try dataOptions.load(self.test, size: model.recipe.inputSize, split: .test)
        for (name, d) in [("--train", train), ("--test", test)] {
            guard d.dataset.labels != nil else {
                throw CommandLineError.badOption(
                    name: name, value: d.summary, reason: "the probe needs labelled images")
            }
            try checkChannels(d.dataset, model)
        }
        let result = try LinearProbe(epochs: epochs, seed: 1).evaluate(
            try model.featureExtractor(), train: train.dataset, test: test.dataset, normalization: model.normalization)
        say(
            String(
                format: "linear probe: test accuracy %.2f%% (train %.2f%%), %d features, %d train / %d test images",
                Double(result.testAccuracy * 100), Double(result.trainAccuracy * 100), result.featureCount,
                train.dataset.count, test.dataset.count))
    }
}

struct RecipeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recipe", abstract: "Print a built-in recipe as JSON.")

    @Option(name: .customLong("print"), help: "The recipe to print: default or two-stage.")
    var name: String = "default"

    func run() throws {
        guard let recipe = PretrainRecipe.builtIn[name] else {
            throw CommandLineError.badOption(
                name: "--print", value: name,
                reason: "known recipes: \(PretrainRecipe.builtIn.keys.sorted().joined(separator: ", "))")
        }
        print(try recipe.json())
    }
}

/// Float32 `.npy` files.
enum NPYFloat {
    static func write(_ t: Tensor, to path: String) throws {
        var payload = [UInt8]()
        payload.reserveCapacity(t.count * 4)
        t.withUnsafeBufferPointer { b in
            for v in b { withUnsafeBytes(of: v.bitPattern.littleEndian) { payload += $0 } }
        }
        try AtomicFile.write(NPY.encode(descr: "<f4", shape: t.shape, payload: payload), to: path)
    }
}
