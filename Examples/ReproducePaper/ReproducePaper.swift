import ArgumentParser
import Foundation
import Layerwise
import LayerwiseMPI

/// Reproduces the experiment of "Layer-Wise Contrastive Unsupervised Representation
/// Learning" (Zhao 2020): pretrain conv stages on CIFAR-100 without labels, transfer
/// them into a CIFAR-10 classifier, and compare against random and supervised
/// initialisation.
@main
struct ReproducePaper: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reproduce-paper",
        abstract: "Layer-wise contrastive pretraining on CIFAR-100, transfer to CIFAR-10, five arms compared.",
        discussion: """
            With no arguments it runs the quick preset on the embedded sample of real CIFAR images \
            (a few minutes on 2 cores). Point --cifar100 and --cifar10 at the official binary folders \
            for real runs. Results, figures and checkpoints go to --out.
            """)

    @Option(help: "A cifar-100-binary folder (train.bin). Default: the embedded sample.")
    var cifar100: String?

    @Option(help: "A cifar-10-batches-bin folder (data_batch_N.bin). Default: the embedded sample.")
    var cifar10: String?

    @Option(
        help:
            ArgumentHelp(
                "CIFAR-10 evaluation file. Default: test_batch.bin in --cifar10 if present, else a held-out split of "
                    + "the training files.")
    )
    var cifar10Test: String?

    @Option(help: "Images held out of the CIFAR-10 training files for evaluation when there is no test file.")
    var validation: Int = 4000

    @Option(
        help:
            ArgumentHelp(
                "Budget and widths: quick (fits a 2-core CPU) or paper (the reference run's budget: widths 64/128/256, "
                    + "10 pretraining and 15 training epochs).")
    )
    var preset: Preset = .quick

    @Option(
        help:
            ArgumentHelp(
                "Pretraining recipe: layerwise (the library's default, from the recipe study) or paper (the paper's "
                    + "exact recipe: 7x7 neighbours in 8x8 crops, cosine triplet, margin 0.5).")
    )
    var recipe: RecipeName = .layerwise

    @Option(help: "Stage objective: triplet, infonce or exemplar. Default: the recipe's.")
    var objective: ObjectiveName?

    @Option(
        help:
            ArgumentHelp(
                "Stage-1 init of the whitened conv: random, kmeans (exactly the k-means baseline's conv, in whitened "
                    + "coordinates) or kmeans-matched (the same, scaled to the random init's filter norm). "
                    + "Default: the recipe's (kmeans for layerwise; the paper recipe has no whitened conv and "
                    + "starts at random)."
            )
    )
    var `init`: Stage1Init?

    @Option(help: "Decoupled (AdamW) weight decay of the contrastive stages. Default: the recipe's (0).")
    var weightDecay: Float?

    @Option(help: "ZCA ε of the whitened stage-1 conv (layerwise recipe). Default: the recipe's (0.1).")
    var whiteningEpsilon: Float?

    @Option(help: "Learning rate of the contrastive stages. Default: the recipe's (1e-3).")
    var pretrainLearningRate: Float?

    @Option(help: "Optimiser of the contrastive stages: adam or sgd (momentum 0.9). Default: the recipe's (adam).")
    var pretrainOptimizer: PretrainOptimizer?

    @Option(
        help:
            ArgumentHelp(
                "Learning-rate schedule of the contrastive stages: constant or cosine (decay to 0 over each stage's "
                    + "steps). Default: the recipe's (constant).")
    )
    var pretrainSchedule: PretrainSchedule?

    @Flag(
        help:
            ArgumentHelp(
                "Skip supervised CIFAR-100 pretraining and its probe (needs --probe-only, or --arms without supervised "
                    + "arms).")
    )
    var skipSupervised = false

    @Option(
        help: ArgumentHelp(
            "Comma-separated transfer arms to train (default: all five, plus the k-means arms with --kmeans-arms).",
            valueName: "arm,arm,…"))
    var arms: String?

    @Option(
        help: ArgumentHelp(
            "ZCA-whiten stage 2's input windows, fitted to stage 1's trained output, with this ε relative to the "
                + "mean window variance (layerwise recipe; default 0.01; 0 = off).",
            valueName: "eps"))
    var stage2Whitening: Float?

    @Option(help: "Classifier training epochs per arm (overrides the preset).")
    var epochs: Int?

    @Option(help: "Contrastive and supervised pretraining epochs (overrides the preset).")
    var pretrainEpochs: Int?

    @Option(help: "Supervised CIFAR-100 pretraining epochs (overrides the preset and --pretrain-epochs).")
    var supervisedEpochs: Int?

    @Option(help: "Seeds per arm.")
    var seeds: Int?

    @Option(
        help: """
            Layer-wise stages to pretrain and transfer (1 or 2). With 2, end-to-end pretraining of the same stages \
            is timed too. With 3: the wide SoftHebb-style stack (96 → 384 → 1,536) pretrained on the CIFAR-10 \
            training images without labels and probed stage by stage, then the arms finetuned (the pretrained \
            stack plus a linear head, trained end to end) and scratch (the same from a random start), with \
            --epochs and --seeds (needs --skip-supervised; --probe-only stops after the probes).
            """)
    var layers: Int = 1

    @Option(help: "--layers 3 only: multiplies every stage's width (1 = 96/384/1,536); smaller for quick runs.")
    var widthScale: Double = 1

    @Option(
        help: ArgumentHelp(
            "--layers 3 only: how the stages learn: softhebb, kmeans, kmeans-softhebb or infonce, for every "
                + "stage or one per stage (e.g. softhebb,kmeans,kmeans; infonce trains every stage). "
                + "Default: SoftHebb's recipe (Docs/DeepStacks.md).",
            valueName: "objectives"))
    var deepObjective: String?

    @Option(
        help: ArgumentHelp(
            "--layers 3 only: SoftHebb epochs, for every stage or one per stage (e.g. 1,4,4).", valueName: "n"))
    var stageEpochs: String?

    @Option(
        help: ArgumentHelp(
            "--layers 3 only: SoftHebb learning rate η, for every stage or one per stage (e.g. 0.08,0.05,0.05).",
            valueName: "eta"))
    var stageLr: String?

    @Option(
        help: ArgumentHelp(
            "--layers 3 only: SoftHebb softmax temperature, for every stage or one per stage.", valueName: "t"))
    var stageTemperature: String?

    @Option(
        help: ArgumentHelp(
            "--layers 3 only: the images the stages pretrain on, without labels: cifar10 (the probe's training "
                + "images) or cifar10+cifar100 (those, then the CIFAR-100 training images of --cifar100).",
            valueName: "images"))
    var deepPretrainOn: DeepPretrainImages = .cifar10

    @Option(help: "--layers 3 only: how many of the three stages to build, train and probe (1…3).")
    var deepStages: Int = 3

    @Option(
        help: "--layers 3 only: load the stages from an earlier run's deep_stages.safetensors instead of pretraining.")
    var deepWeights: String?

    @Option(
        help: "--layers 3 with --deep-weights: load only the stages below this one and train it and those above.")
    var deepTrainFrom: Int?

    @Option(
        help: ArgumentHelp(
            "--layers 3 only: the stages to probe, comma-separated (default: all; none with --probe-concat).",
            valueName: "stages"))
    var probeStages: String?

    @Flag(help: "--layers 3 only: do not probe the stages' untrained controls.")
    var skipControls = false

    @Option(
        help: ArgumentHelp(
            "--layers 3 only: also probe these stages' features concatenated, comma-separated; K@G pools stage "
                + "K to a G×G grid (default: its own map), e.g. 2@4,3. Reported as stage2@4x4+stage3.",
            valueName: "taps"))
    var probeConcat: String?

    @Flag(
        help: ArgumentHelp(
            "--layers 3 only: train the probes on every training image mirrored left–right too (twice the "
                + "rows; the evaluation images are never mirrored)."))
    var probeFlips = false

    @Option(
        help: ArgumentHelp(
            "--layers 3 only: the most memory the probe's feature matrices may take, in GB; a probe that would "
                + "need more stops before any training.",
            valueName: "GB"))
    var probeMemoryGb: Double = Double(WideProbe().memoryLimitBytes) / 1e9

    @Option(help: "--deep-objective infonce only: NT-Xent temperature.")
    var deepTemperature: Float = WideContrastiveOptions().temperature

    @Option(help: "--deep-objective infonce only: Adam's rate relative to each stage's initial weight scale.")
    var deepLearningRate: Float = WideContrastiveOptions().relativeLearningRate

    @Option(help: "--deep-objective infonce only: epochs per stage.")
    var deepEpochs: Int = WideContrastiveOptions().epochs

    @Option(help: "--deep-objective infonce only: average-pool each stage's map to this grid for the embedding.")
    var deepEmbeddingGrid: Int = WideContrastiveOptions().embeddingGrid

    @Flag(help: "--deep-objective infonce only: views by crop and flip alone (no colour jitter or grey).")
    var deepGeometricViews = false

    @Flag(
        help: ArgumentHelp(
            "--deep-objective infonce only: train all --deep-stages at once, back-propagating through the stack "
                + "(the top stage's objective and optimizer, --deep-epochs epochs), instead of stage by stage."))
    var deepEndToEnd = false

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Option(help: "Output folder for results.json, results.md, figures and checkpoints.")
    var out: String = "reproduce-output"

    @Option(help: "Base seed; seed s of an arm uses base + s.")
    var seed: UInt64 = 1

    @Option(help: "Cap on pretraining images (0 = all).")
    var limitPretrain: Int = 0

    @Option(help: "Cap on CIFAR-10 training images (0 = all).")
    var limitTrain: Int = 0

    @Flag(help: "Resume contrastive pretraining from the latest checkpoint in --out/checkpoints.")
    var resume = false

    @Flag(help: "Stop after contrastive pretraining (writes the stage weights; used by the kill-and-resume test).")
    var pretrainOnly = false

    @Flag(help: "Pretrain and run the linear probes only (no transfer arms).")
    var probeOnly = false

    @Option(help: "Linear-probe epochs (overrides the preset).")
    var probeEpochs: Int?

    @Flag(help: "Also transfer k-means (Coates et al. 2011) filters as arms kmeans_frozen / kmeans_finetuned.")
    var kmeansArms = false

    @Option(
        help: ArgumentHelp(
            "Split every pretraining batch into N independently sampled shards (default: one per MPI rank, "
                + "none in one process). One process with --batch-shards N computes what `mpirun -np N` computes, "
                + "up to summation order.",
            valueName: "N"))
    var batchShards: Int?

    /// The taps of `--probe-concat`: `K` or `K@G` (stage K pooled to a G×G grid), comma-separated,
    /// at least two, each stage once.
    static func probeTaps(_ text: String, stages: Int) throws -> [ProbeTap] {
        func invalid(_ value: String, _ reason: String) -> TrainerError {
            .invalidOption(stage: nil, option: "--probe-concat", value: value, reason: reason)
        }
        let taps = try text.split(separator: ",", omittingEmptySubsequences: false).map { item -> ProbeTap in
            let parts = item.trimmingCharacters(in: .whitespaces).split(
                separator: "@", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let k = Int(parts[0]), (1...stages).contains(k) else {
                throw invalid(String(item), "expected K or K@G with a stage K in 1…\(stages)")
            }
            guard parts.count == 2 else { return ProbeTap(stage: k) }
            guard let grid = Int(parts[1]), grid >= 1 else {
                throw invalid(String(item), "the grid G after @ must be a whole number ≥ 1")
            }
            return ProbeTap(stage: k, grid: grid)
        }
        guard taps.count >= 2, Set(taps.map(\.stage)).count == taps.count else {
            throw invalid(text, "name two or more different stages")
        }
        return taps
    }

    /// The `--layers 3` experiment the deep options describe (validated; typed errors name the option).
    func deepOptions() throws -> DeepExperiment {
        guard probeMemoryGb > 0, probeMemoryGb.isFinite, probeMemoryGb < 1e9 else {
            throw ValidationError("--probe-memory-gb must be a positive number of GB, got \(probeMemoryGb)")
        }
        guard (1...3).contains(deepStages) else {
            throw ValidationError("--deep-stages must be 1, 2 or 3, got \(deepStages)")
        }
        if let deepTrainFrom {
            guard deepWeights != nil else { throw ValidationError("--deep-train-from needs --deep-weights") }
            guard (1...deepStages).contains(deepTrainFrom) else {
                throw ValidationError("--deep-train-from must be in 1…\(deepStages), got \(deepTrainFrom)")
            }
        }
        let budget = Budget.preset(preset)
        var deep = DeepExperiment(
            out: out, seed: seed, probeEpochs: probeEpochs ?? 50, threads: threads, commandLine: "",
            widthScale: widthScale, stageCount: deepStages, weightsPath: deepWeights, trainFrom: deepTrainFrom,
            probeControls: !skipControls, probeFlips: probeFlips,
            probeMemoryLimitBytes: Int(probeMemoryGb * 1e9),
            contrastive: WideContrastiveOptions(
                temperature: deepTemperature, relativeLearningRate: deepLearningRate, epochs: deepEpochs,
                embeddingGrid: deepEmbeddingGrid, colourViews: !deepGeometricViews),
            endToEnd: deepEndToEnd,
            pretrainImages: deepPretrainOn,
            transfer: probeOnly
                ? nil
                : DeepTransfer(
                    epochs: epochs ?? budget.epochs, batchSize: budget.batchSize, seeds: seeds ?? budget.seeds))
        do {
            let n = DeepRecipe.standard.objectives.count
            let positive = "a positive, finite number"
            if let deepObjective {
                deep.recipe.objectives = try StageValues.parse(
                    deepObjective, option: "--deep-objective", stages: n,
                    requirement: DeepObjective.allCases.map(\.rawValue).joined(separator: ", "))
            }
            if let stageEpochs {
                deep.recipe.epochs = try StageValues.parse(
                    stageEpochs, option: "--stage-epochs", stages: n, requirement: "a whole number ≥ 1"
                ) { $0 >= 1 }
            }
            if let stageLr {
                deep.recipe.learningRates = try StageValues.parse(
                    stageLr, option: "--stage-lr", stages: n, requirement: positive
                ) { $0 > 0 && $0.isFinite }
            }
            if let stageTemperature {
                deep.recipe.temperatures = try StageValues.parse(
                    stageTemperature, option: "--stage-temperature", stages: n, requirement: positive
                ) { $0 > 0 && $0.isFinite }
            }
            if let probeStages {
                deep.probeStages = try probeStages.split(separator: ",").map { item -> Int in
                    guard let k = Int(item.trimmingCharacters(in: .whitespaces)), (1...deepStages).contains(k) else {
                        throw TrainerError.invalidOption(
                            stage: nil, option: "--probe-stages", value: String(item),
                            reason: "expected stage numbers in 1…\(deepStages)")
                    }
                    return k
                }
                if deep.probeStages?.isEmpty ?? false {
                    throw TrainerError.invalidOption(
                        stage: nil, option: "--probe-stages", value: probeStages, reason: "names no stage")
                }
            }
            if let probeConcat {
                deep.concatenatedTaps = try Self.probeTaps(probeConcat, stages: deepStages)
                if probeStages == nil { deep.probeStages = [] }
            }
        } catch let error as TrainerError {
            throw ValidationError("\(error)")
        }
        let contrastiveStages = deep.recipe.objectives.prefix(deepStages).filter { $0 == .infonce }.count
        if contrastiveStages > 0, contrastiveStages < deepStages {
            throw ValidationError("--deep-objective infonce trains every stage (do not mix it with other objectives)")
        }
        if deepEndToEnd, contrastiveStages == 0 {
            throw ValidationError(
                "--deep-end-to-end needs --deep-objective infonce (the other objectives do not back-propagate)")
        }
        if deepEndToEnd, deepTrainFrom != nil {
            throw ValidationError("--deep-end-to-end trains the whole stack; it cannot start at --deep-train-from")
        }
        do { try deep.contrastive.validate() } catch { throw ValidationError("\(error)") }
        return deep
    }

    /// The `--arms` list (nil = every arm).
    func selectedArms() throws -> [TransferArm]? {
        do {
            return try arms.map(TransferArm.list)
        } catch {
            throw ValidationError("--arms: \(error)")
        }
    }

    /// The `--layers 3` combinations: the deep stack has no supervised CIFAR-100 arm and
    /// trains its own two arms, not the paper classifier's.
    func validateDeep() throws {
        guard skipSupervised else {
            throw ValidationError(
                "--layers 3 needs --skip-supervised (the deep stack has no supervised CIFAR-100 pretraining or arm)")
        }
        if arms != nil {
            throw ValidationError(
                "--arms selects the paper classifier's arms; --layers 3 trains its own (finetuned and scratch; "
                    + "--probe-only skips them)")
        }
        if kmeansArms { throw ValidationError("--kmeans-arms transfers one stage; it needs --layers 1") }
        _ = try deepOptions()
    }

    func validate() throws {
        guard (1...3).contains(layers) else { throw ValidationError("--layers must be 1, 2 or 3, got \(layers)") }
        if layers == 3 { try validateDeep() }
        guard widthScale > 0, widthScale.isFinite else {
            throw ValidationError("--width-scale must be > 0, got \(widthScale)")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        if let batchShards, batchShards < 1 {
            throw ValidationError("--batch-shards must be ≥ 1, got \(batchShards)")
        }
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be ≥ 1, got \(epochs)") }
        if let pretrainEpochs, pretrainEpochs < 1 {
            throw ValidationError("--pretrain-epochs must be ≥ 1, got \(pretrainEpochs)")
        }
        if let supervisedEpochs, supervisedEpochs < 1 {
            throw ValidationError("--supervised-epochs must be ≥ 1, got \(supervisedEpochs)")
        }
        if let weightDecay, !(weightDecay >= 0 && weightDecay.isFinite) {
            throw ValidationError("--weight-decay must be finite and ≥ 0, got \(weightDecay)")
        }
        if let whiteningEpsilon, !(whiteningEpsilon > 0 && whiteningEpsilon.isFinite) {
            throw ValidationError("--whitening-epsilon must be finite and > 0, got \(whiteningEpsilon)")
        }
        if let stage2Whitening, !(stage2Whitening >= 0 && stage2Whitening.isFinite) {
            throw ValidationError("--stage2-whitening must be finite and ≥ 0, got \(stage2Whitening)")
        }
        if let pretrainLearningRate, !(pretrainLearningRate > 0 && pretrainLearningRate.isFinite) {
            throw ValidationError("--pretrain-learning-rate must be finite and > 0, got \(pretrainLearningRate)")
        }
        let chosenArms = try selectedArms()
        if let chosenArms, chosenArms.isEmpty { throw ValidationError("--arms names no arm") }
        if layers == 2, (chosenArms ?? []).contains(where: { $0.source == .kmeans }) {
            throw ValidationError("--arms: the k-means arms transfer one stage; they need --layers 1")
        }
        let runsSupervisedArm =
            !probeOnly && layers != 3
            && (chosenArms ?? TransferArm.paperArms).contains { $0.source == .supervised }
        if skipSupervised && runsSupervisedArm {
            throw ValidationError(
                "--skip-supervised: the supervised transfer arms need the supervised weights (use --probe-only or "
                    + "--arms without them)"
            )
        }
        if let seeds, seeds < 1 { throw ValidationError("--seeds must be ≥ 1, got \(seeds)") }
        guard validation >= 1 else { throw ValidationError("--validation must be ≥ 1, got \(validation)") }
        guard limitPretrain >= 0, limitTrain >= 0 else {
            throw ValidationError("--limit-pretrain and --limit-train must be ≥ 0")
        }
    }

    mutating func run() throws {
        BLASKernel.restartWithFasterKernelIfNeeded { FileHandle.standardError.write(Data("note: \($0)\n".utf8)) }
        // Under an MPI launcher (mpirun, srun) every rank runs this same command.
        let communicator: any Communicator
        do {
            communicator = try MPICommunicator.fromEnvironment()
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
        isQuietRank = !communicator.isRoot
        do {
            try run(communicator: communicator)
        } catch let exit as ExitCode {
            end(communicator, failed: exit != .success)
            throw exit
        } catch let invalid as ValidationError where communicator.size == 1 {
            throw invalid  // ArgumentParser prints it with the usage
        } catch {
            // Library errors are typed and describe themselves; print them plainly.
            let text = "\(error)", rank = "rank \(communicator.rank): "
            let prefix = communicator.size > 1 && !text.hasPrefix(rank) ? rank : ""
            FileHandle.standardError.write(Data("error: \(prefix)\(text)\n".utf8))
            end(communicator, failed: true)
            throw ExitCode.failure
        }
        end(communicator, failed: false)
    }

    /// Shuts MPI down; after a failure it aborts the job, so no other rank waits for this one.
    func end(_ communicator: any Communicator, failed: Bool) {
        guard let mpi = communicator as? MPICommunicator else { return }
        if failed && mpi.size > 1 { mpi.abort(exitCode: 1) }
        mpi.finalize()
    }

    mutating func run(communicator: any Communicator) throws {
        BLAS.threadCount = threads
        var budget = Budget.preset(preset)
        if let epochs { budget.epochs = epochs }
        if let pretrainEpochs { budget.pretrainEpochs = pretrainEpochs; budget.supervisedEpochs = pretrainEpochs }
        if let supervisedEpochs { budget.supervisedEpochs = supervisedEpochs }
        if let seeds { budget.seeds = seeds }
        if let probeEpochs { budget.probeEpochs = probeEpochs }
        var recipe = Recipe.named(recipe, objective: objective)
        if let weightDecay { recipe.weightDecay = weightDecay }
        if let `init` {
            guard recipe.whiteningEpsilon != nil || `init` == .random else {
                throw ValidationError(
                    "--init \(`init`.rawValue) needs a recipe with a whitened stage-1 conv (--recipe layerwise)")
            }
            if `init` != recipe.stage1Init { recipe.name += "+init-\(`init`.rawValue)" }
            recipe.stage1Init = `init`
        }
        if recipe.weightDecay > 0 { recipe.name += "+wd\(recipe.weightDecay)" }
        if let whiteningEpsilon {
            guard recipe.whiteningEpsilon != nil else {
                throw ValidationError(
                    "--whitening-epsilon needs a recipe with a whitened stage-1 conv (--recipe layerwise)")
            }
            if whiteningEpsilon != recipe.whiteningEpsilon { recipe.name += "+zca-eps\(whiteningEpsilon)" }
            recipe.whiteningEpsilon = whiteningEpsilon
        }
        if let stage2Whitening {
            guard recipe.whiteningEpsilon != nil else {
                throw ValidationError("--stage2-whitening needs the layerwise recipe (its stage 1 is whitened too)")
            }
            let eps: Float? = stage2Whitening > 0 ? stage2Whitening : nil
            if eps != recipe.upperWhiteningEpsilon { recipe.name += eps.map { "+stage2-zca\($0)" } ?? "+no-stage2-zca" }
            recipe.upperWhiteningEpsilon = eps
        }
        if let pretrainOptimizer, pretrainOptimizer != recipe.optimizer {
            recipe.optimizer = pretrainOptimizer
            recipe.name += "+\(pretrainOptimizer.rawValue)"
        }
        if let pretrainLearningRate, pretrainLearningRate != recipe.learningRate {
            recipe.learningRate = pretrainLearningRate
            recipe.name += "+lr\(pretrainLearningRate)"
        }
        if let pretrainSchedule, pretrainSchedule != recipe.schedule {
            recipe.schedule = pretrainSchedule
            recipe.name += "+\(pretrainSchedule.rawValue)"
        }
        let experiment = Experiment(
            budget: budget, recipe: recipe, layers: layers, out: out, seed: seed, resume: resume,
            pretrainOnly: pretrainOnly, probeOnly: probeOnly, skipSupervised: skipSupervised, kmeansArms: kmeansArms,
            selectedArms: try selectedArms(), threads: threads,
            commandLine: (["reproduce-paper"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            communicator: communicator, shards: batchShards, signals: SignalStop())
        // One run per output folder: a second one gets "in use by PID …" (rank 0 writes).
        var lock: DirectoryLock?
        defer { lock?.release() }
        if communicator.isRoot {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            lock = try DirectoryLock(directory: out)
            if let pid = lock?.staleOwner {
                FileHandle.standardError.write(
                    Data("note: \(out) was locked by PID \(pid), which no longer runs\n".utf8))
            }
        }
        do {
            let data = try DataSources.load(
                cifar100: cifar100, cifar10: cifar10, cifar10Test: cifar10Test, validation: validation,
                limitPretrain: limitPretrain, limitTrain: limitTrain)
            if layers == 3 {
                var deep = try deepOptions()
                deep.out = out
                deep.commandLine = experiment.commandLine
                return try deep.run(data: data)
            }
            try experiment.run(data: data)
        } catch let TrainerError.stopped(stage, step) {
            let command = experiment.commandLine + (resume ? "" : " --resume")
            if communicator.isRoot {
                FileHandle.standardError.write(
                    Data(
                        """
                        stopped after step \(step) of stage \(stage); the checkpoint is in \(out)/checkpoints
                        resume with: \(command)

                        """.utf8))
            }
            throw ExitCode(SignalStop.stoppedExitStatus)
        }
    }
}

enum Preset: String, ExpressibleByArgument, CaseIterable {
    case quick, paper
}

enum RecipeName: String, ExpressibleByArgument, CaseIterable {
    case layerwise, paper
}

enum ObjectiveName: String, ExpressibleByArgument, CaseIterable {
    case triplet, infonce, exemplar
}
