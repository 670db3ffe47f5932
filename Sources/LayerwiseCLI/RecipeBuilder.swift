import Foundation
import Layerwise

/// Builds the library's stages and trainer from a ``PretrainRecipe``.
public enum RecipeBuilder {
    /// The trainer for `recipe` on `dataset` (images for neighbour positives, and for
    /// fitting the normalisation, whitening and k-means start); `sampler` replaces the
    /// neighbour sampler (e.g. frame pairs of clips).
    public static func trainer(
        recipe: PretrainRecipe, dataset: any ImageDataset, normalization: ChannelNormalization,
        sampler: (any PatchSampler)? = nil
    ) throws -> LayerwiseTrainer {
        try recipe.validate()
        var g = SeededGenerator(seed: recipe.seed)
        var stages: [Stage] = []
        var channels = dataset.imageShape.channels
        for (i, s) in recipe.stages.enumerated() {
            let (conv, preparation) = try convolution(
                s, index: i, inputChannels: channels, dataset: dataset, normalization: normalization, using: &g)
            var layers: [any Layer] = [conv]
            if s.pool > 1 { layers.append(try MaxPool2D(kernelSize: s.pool)) }
            layers.append(ReLU())
            let objective = ContrastiveObjective(
                sampler: try sampler
                    ?? neighborSampler(recipe.objective, dataset: dataset, normalization: normalization),
                loss: try loss(recipe.objective))
            stages.append(
                Stage(
                    name: "stage\(i + 1)", layers: layers, objective: objective,
                    optimizer: Adam(learningRate: s.learningRate), schedule: ConstantSchedule(s.learningRate),
                    batchSize: s.batchSize, budget: .epochs(s.epochs, stepsPerEpoch: s.steps(forImages: dataset.count)),
                    preparation: preparation))
            channels = s.filters
        }
        return try LayerwiseTrainer(
            stages: stages, inputChannels: dataset.imageShape.channels,
            firstPatchSize: recipe.stages[0].firstPatchSize, seed: recipe.seed)
    }

    /// Stage `index`'s convolution and the preparation it needs before training.
    static func convolution<G: RandomNumberGenerator>(
        _ s: StageRecipe, index: Int, inputChannels: Int, dataset: any ImageDataset,
        normalization: ChannelNormalization, using g: inout G
    ) throws -> (any Layer, (any StagePreparation)?) {
        guard let epsilon = s.whitening else {
            return (
                try Conv2D(
                    inputChannels: inputChannels, outputChannels: s.filters, kernelSize: s.kernelSize, using: &g), nil
            )
        }
        if index > 0 {
            let conv = try WhitenedConv2D(
                inputChannels: inputChannels, outputChannels: s.filters, kernelSize: s.kernelSize,
                initializer: .fanInUniform, using: &g)
            let count = dataset.count
            return (
                conv,
                try InputWhitening(
                    dataset: dataset, normalization: normalization, imageCount: min(2_000, count),
                    relativeEpsilon: epsilon)
            )
        }
        let whitening = try fitWhitening(
            dataset, kernelSize: s.kernelSize, normalization: normalization, epsilon: epsilon,
            using: &g)
        let conv = try WhitenedConv2D(
            inputChannels: inputChannels, outputChannels: s.filters, kernelSize: s.kernelSize,
            whiteningMean: whitening.mean, whiteningMatrix: whitening.matrix, initializer: .fanInUniform, using: &g)
        if s.start == .kmeans {
            let baseline = try KMeansBaseline.fit(
                dataset: dataset, filters: s.filters, kernelSize: s.kernelSize,
                patches: min(50_000, max(2 * s.filters, dataset.count * 20)), normalization: normalization, using: &g)
            var unused = SeededGenerator(seed: 0)  // KMeansStart draws nothing
            try KMeansStart(baseline: baseline).prepare(
                stage: 1, layers: [conv], below: FrozenStack(layers: []),
                using: &unused)
        }
        return (conv, nil)
    }

    /// ZCA whitening of standardised `k`×`k` windows of the images.
    static func fitWhitening<G: RandomNumberGenerator>(
        _ dataset: any ImageDataset, kernelSize k: Int, normalization: ChannelNormalization, epsilon: Float,
        using g: inout G
    ) throws -> ZCAWhitening {
        var patches = try PatchExtraction.extractRandomPatches(
            from: dataset, count: min(100_000, max(1_000, dataset.count * 40)), size: k, using: &g)
        let (n, c, plane) = (patches.shape[0], dataset.imageShape.channels, k * k)
        patches.withUnsafeMutableBufferPointer { b in
            for r in 0..<n {
                for ch in 0..<c {
                    let base = (r * c + ch) * plane
                    for j in 0..<plane { b[base + j] = (b[base + j] - normalization.mean[ch]) / normalization.std[ch] }
                }
            }
        }
        return try ZCAWhitening.fit(patches: patches, epsilon: epsilon)
    }

    static func neighborSampler(
        _ o: ObjectiveRecipe, dataset: any ImageDataset, normalization: ChannelNormalization
    ) throws -> NeighborPatchSampler {
        var parts: [any Augmentation] = []
        if o.viewJitter > 0 && o.viewJitterProbability > 0 {
            let jitter = try ColorJitter(
                brightness: o.viewJitter, contrast: o.viewJitter, saturation: o.viewJitter, hue: 0)
            parts.append(try RandomApply(jitter, probability: o.viewJitterProbability))
        }
        if o.viewGrayscale > 0 { parts.append(try RandomGrayscale(probability: o.viewGrayscale)) }
        return try NeighborPatchSampler(
            dataset: dataset, maxOffset: o.maxOffset, viewAugmentation: parts.isEmpty ? nil : Compose(parts),
            flipsImages: o.flips, normalization: normalization)
    }

    static func loss(_ o: ObjectiveRecipe) throws -> any ContrastiveLoss {
        switch o.loss {
        case .infonce:
            let l = InfoNCELoss(temperature: o.temperature)
            try l.validate()
            return l
        case .triplet:
            let l = TripletMarginLoss(distance: CosineDistance(), margin: o.margin)
            try l.validate()
            return l
        }
    }
}
