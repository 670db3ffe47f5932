import Datasets
import Layers
import TensorCore

/// How a pretrained stage enters a classifier.
public enum TransferMode: String, Sendable, Equatable, CaseIterable {
    /// Pretrained weights, never updated; the stage runs in inference mode (BatchNorm uses
    /// its running statistics, which stay untouched).
    case frozen
    /// Pretrained weights as the starting point, trained with the head.
    case fineTuned
    /// The same architecture re-initialised from the classifier's seed and trained with
    /// the head: the random-initialisation baseline.
    case scratch
}

/// A classifier built from (pretrained) feature stages followed by a head.
///
/// Parameter names follow ``LayerwiseTrainer``: `"stage<k>.<layer>.<name>"` for stages and
/// `"head.<layer>.<name>"` for the head, so ``LayerwiseTrainer/stateTensors()`` (or a
/// supervised run's ``stateTensors()``) loads straight in.
///
/// Frozen stages must come first (a frozen stage above a trained one would need
/// gradients through BatchNorm statistics it must not change); they run in inference
/// mode and no gradient flows into them.
public final class TransferClassifier {
    /// The feature stages, bottom first.
    public let stages: [[any Layer]]
    /// How each stage was transferred.
    public let modes: [TransferMode]
    /// The layers after the stages (e.g. `[Flatten(), Linear(…)]`); always trained.
    public let head: [any Layer]
    /// The input image shape the classifier was validated for.
    public let inputShape: ImageShape
    /// Number of classes (the width of the head's output).
    public let classCount: Int

    private let frozenPrefix: [any Layer]
    private let trainedLayers: [any Layer]

    /// Builds the classifier, loading `pretrained` weights into frozen and fine-tuned
    /// stages and re-initialising scratch stages.
    ///
    /// - Parameters:
    ///   - stages: the stage layers (fresh objects of the pretrained architecture, or the
    ///     pretrained layers themselves when `pretrained` is nil).
    ///   - modes: one mode per stage, or a single mode for all.
    ///   - head: layers mapping the last stage's output to `[N, classes]` logits.
    ///   - inputShape: the images the classifier will see.
    ///   - pretrained: weights by name (`"stage<k>.<layer>.<name>"`), e.g.
    ///     ``LayerwiseTrainer/stateTensors()``; nil keeps the layers' current weights.
    ///   - scratchInitializer: how scratch stages' weights are redrawn.
    ///   - seed: seeds the re-initialisation of scratch stages.
    /// - Throws: ``TrainerError`` when the modes do not match the stages, a frozen stage
    ///   follows a trained one, a pretrained tensor is missing or mis-shaped, or the
    ///   layers do not turn `inputShape` into `[N, classes]`.
    public init(
        stages: [[any Layer]], modes: [TransferMode], head: [any Layer], inputShape: ImageShape,
        pretrained: [String: Tensor]? = nil, scratchInitializer: WeightInitializer = .kaimingUniform, seed: UInt64
    ) throws {
        let modes = modes.count == 1 && stages.count > 1 ? Array(repeating: modes[0], count: stages.count) : modes
        guard modes.count == stages.count else {
            throw TrainerError.invalidOption(
                stage: nil, option: "modes", value: "\(modes.count) modes",
                reason: "give one mode per stage (\(stages.count)) or one for all")
        }
        guard !head.isEmpty else {
            throw TrainerError.invalidOption(
                stage: nil, option: "head", value: "[]", reason: "a classifier needs a head producing logits")
        }
        if let firstTrained = modes.firstIndex(where: { $0 != .frozen }),
            let late = modes[firstTrained...].firstIndex(of: .frozen)
        {
            throw TrainerError.invalidOption(
                stage: late + 1, option: "modes",
                value: "frozen after \(modes[firstTrained]) stage \(firstTrained + 1)",
                reason: "frozen stages must come first")
        }
        // Shapes: [1, C, H, W] → [1, classes].
        var shape = try Self.outputShape(of: stages, inputShape: inputShape)
        for (i, l) in head.enumerated() {
            do { shape = try l.outputShape(for: shape) } catch {
                throw TrainerError.incompatibleStage(
                    stage: stages.count + 1, layer: "head \(i) (\(type(of: l)))", reason: "\(error)")
            }
        }
        guard shape.count == 2, shape[1] >= 1 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "head", value: "output shape \(shape)", reason: "must produce logits [N, classes]")
        }
        self.stages = stages
        self.modes = modes
        self.head = head
        self.inputShape = inputShape
        self.classCount = shape[1]

        var generator = SeededGenerator(seed: seed)
        if let pretrained {
            // Check everything before changing anything.
            var assignments: [(Parameter, Tensor)] = []
            for (k, layers) in stages.enumerated() where modes[k] != .scratch {
                for (name, p) in StateKey.state(of: layers, prefix: StateKey.stage(k + 1)) {
                    guard let t = pretrained[name] else {
                        throw TrainerError.checkpoint(path: "pretrained weights", reason: "missing tensor \"\(name)\"")
                    }
                    guard t.shape == p.value.shape else {
                        throw TrainerError.checkpoint(
                            path: "pretrained weights",
                            reason: "tensor \"\(name)\" has shape \(t.shape), expected \(p.value.shape)")
                    }
                    assignments.append((p, t))
                }
            }
            for (p, t) in assignments { p.value = t }
        }
        for (k, layers) in stages.enumerated() {
            if modes[k] == .scratch {
                LayerTree.reinitialize(layers, initializer: scratchInitializer, using: &generator)
            }
            for l in layers { l.setFrozen(modes[k] == .frozen) }
        }
        for l in head { l.setFrozen(false) }
        let frozenCount = modes.prefix { $0 == .frozen }.count
        frozenPrefix = stages.prefix(frozenCount).flatMap { $0 }
        trainedLayers = stages.dropFirst(frozenCount).flatMap { $0 } + head
        // Nothing below the first trained layer learns: it skips its input gradient, and
        // every later layer computes one (whatever an earlier use of the layers set).
        _ = LayerTree.configureInputGradients(trainedLayers)
    }

    /// Convenience: the same mode for every stage.
    public convenience init(
        stages: [[any Layer]], mode: TransferMode, head: [any Layer], inputShape: ImageShape,
        pretrained: [String: Tensor]? = nil, scratchInitializer: WeightInitializer = .kaimingUniform, seed: UInt64
    ) throws {
        try self.init(
            stages: stages, modes: Array(repeating: mode, count: max(1, stages.count)), head: head,
            inputShape: inputShape,
            pretrained: pretrained, scratchInitializer: scratchInitializer, seed: seed)
    }

    /// Every parameter and buffer by name (`"stage<k>.<i>.<name>"`, `"head.<i>.<name>"`).
    public var namedState: [(name: String, parameter: Parameter)] {
        var out: [(name: String, parameter: Parameter)] = []
        for (k, layers) in stages.enumerated() { out += StateKey.state(of: layers, prefix: StateKey.stage(k + 1)) }
        out += StateKey.state(of: head, prefix: StateKey.classifierHead)
        return out
    }

    /// Stage parameters and buffers (not the head) by name: what a supervised run hands
    /// to the next classifier's `pretrained`.
    public func stateTensors() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, layers) in stages.enumerated() {
            for (name, p) in StateKey.state(of: layers, prefix: StateKey.stage(k + 1)) { out[name] = p.value }
        }
        return out
    }

    /// The parameters training updates (fine-tuned and scratch stages, and the head), by name.
    public var trainableParameters: [(name: String, parameter: Parameter)] {
        var out: [(name: String, parameter: Parameter)] = []
        for (k, layers) in stages.enumerated() where modes[k] != .frozen {
            out += StateKey.parameters(of: layers, prefix: StateKey.stage(k + 1))
        }
        out += StateKey.parameters(of: head, prefix: StateKey.classifierHead)
        return out.filter { !$0.parameter.isFrozen }
    }

    /// Logits `[N, classes]`. In `.training` mode only the trained layers cache for
    /// ``backward(_:)``; frozen stages always run in inference mode.
    public func forward(_ images: Tensor, mode: Mode) -> Tensor {
        let features = LayerChain.forward(frozenPrefix, images, mode: .inference)
        return LayerChain.forward(trainedLayers, features, mode: mode)
    }

    /// Back-propagates ∂loss/∂logits into the trained layers' gradients.
    public func backward(_ logitGradient: Tensor) {
        _ = LayerChain.backward(trainedLayers, logitGradient)
    }
}

extension TransferClassifier {
    /// The last stage's output shape `[1, C, H, W]` for one image of `inputShape`; a layer that
    /// cannot take its input is ``TrainerError/incompatibleStage(stage:layer:reason:)``.
    static func outputShape(of stages: [[any Layer]], inputShape: ImageShape) throws -> [Int] {
        var shape = [1, inputShape.channels, inputShape.height, inputShape.width]
        for (k, layers) in stages.enumerated() {
            for (i, l) in layers.enumerated() {
                do { shape = try l.outputShape(for: shape) } catch {
                    throw TrainerError.incompatibleStage(
                        stage: k + 1, layer: "\(i) (\(type(of: l)))", reason: "\(error)")
                }
            }
        }
        return shape
    }
}
