import Datasets
import Layers
import TensorCore

extension WideStack {
    /// Every stage's parameters and buffers (for the stack's non-affine batch norm, its
    /// running statistics) by the names a ``TransferClassifier`` loads: `"stage<k>.<i>.<path>"`.
    public static func state(of layers: [[any Layer]]) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, stage) in layers.enumerated() {
            for (name, p) in StateKey.state(of: stage, prefix: StateKey.stage(k + 1)) { out[name] = p.value }
        }
        return out
    }

    /// A classifier on a wide stack: fresh stages of `specs`, then `Flatten` and one `Linear`
    /// layer from the last stage's map to `classes` logits.
    ///
    /// Stages and head are drawn from one generator seeded with `seed`, stages first, so a
    /// seed gives every mode the same head. Fresh layers, not the pretrained ones, so training
    /// the classifier never changes the pretrained stack: `.fineTuned` and `.frozen` start
    /// from `pretrained` (see ``state(of:)``; the batch-norm running statistics included),
    /// `.scratch` re-draws the stages with the classifier's scratch initialiser (Kaiming
    /// uniform) and fresh statistics.
    ///
    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` when a frozen or
    ///   fine-tuned classifier gets no `pretrained` state or `classes` < 1;
    ///   ``TrainerError/incompatibleStage(stage:layer:reason:)`` when `inputShape` does not
    ///   pass through the stages; the errors of ``TransferClassifier``.
    public static func classifier(
        _ specs: [WideStageSpec], mode: TransferMode, pretrained: [String: Tensor]?, classes: Int,
        inputShape: ImageShape, seed: UInt64
    ) throws -> TransferClassifier {
        guard mode == .scratch || pretrained != nil else {
            throw TrainerError.invalidOption(
                stage: nil, option: "pretrained", value: "nil",
                reason: "a \(mode.rawValue) classifier starts from the pretrained stages' state")
        }
        guard classes >= 1 else {
            throw TrainerError.invalidOption(stage: nil, option: "classes", value: "\(classes)", reason: "must be ≥ 1")
        }
        var g = SeededGenerator(seed: seed)
        let stages = try layers(specs, inputChannels: inputShape.channels, using: &g)
        let map = try TransferClassifier.outputShape(of: stages, inputShape: inputShape)
        let head: [any Layer] = [
            Flatten(), try Linear(inputFeatures: map.dropFirst().reduce(1, *), outputFeatures: classes, using: &g),
        ]
        return try TransferClassifier(
            stages: stages, mode: mode, head: head, inputShape: inputShape,
            pretrained: mode == .scratch ? nil : pretrained, seed: seed)
    }
}
