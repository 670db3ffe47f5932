import Layers
import Losses
import PatchSamplers
import TensorCore

/// The Siamese triplet step: sample patch triplets, embed all `3·B` (or `B·(2+K)`) rows
/// in one forward pass through shared weights, score them with a contrastive loss and
/// back-propagate.
///
/// ```
/// triplets   = sampler.sample(batchSize, patchSize)
/// features   = frozen stages (inference)
/// embeddings = stage (+ head) forward (training), flattened to [rows, D]
/// result     = loss.evaluate(embeddings)
/// backward(result.gradient)
/// ```
public final class ContrastiveObjective: StageObjective {
    /// Where triplets come from. The sampler owns its dataset.
    public var sampler: any PatchSampler
    /// The training signal on the embeddings.
    public let loss: any ContrastiveLoss

    public init(sampler: any PatchSampler, loss: any ContrastiveLoss) {
        self.sampler = sampler
        self.loss = loss
    }

    public var inputChannels: Int? { sampler.channels }

    /// Throughput counts triplets (`"trip/s"`).
    public var sampleUnit: String { "trip" }

    public func validate() throws { try loss.validate() }

    /// The loss's own generators (e.g. a random miner's), as `"loss.<name>"`.
    public var ownedGenerators: [(name: String, owner: any GeneratorOwning)] {
        loss.ownedGenerators.map { ("loss.\($0.name)", $0.owner) }
    }

    /// Draws one triplet (two for a batch of two or more: a sampler may need that many,
    /// as ``TwoViewImageSampler`` does) from a copy of the sampler with a throwaway
    /// generator: the sampler's own checks (patch plus offsets larger than the images …)
    /// run before training, and neither the sampler nor the trainer's generator changes.
    public func validate(patchSize: Int, batchSize: Int) throws {
        var probe = sampler
        var throwaway = SeededGenerator(seed: 0)
        _ = try probe.sample(batchSize: min(batchSize, 2), patchSize: patchSize, using: &throwaway)
    }

    public func step(_ context: StageStepContext, using generator: inout SeededGenerator) throws -> StepStatistics {
        let triplets = try sampler.sample(batchSize: context.batchSize, patchSize: context.patchSize, using: &generator)
        let features = context.frozen(triplets.patches)
        let embeddings = context.trainable.forward(features)
        guard embeddings.isFinite else { throw NonFiniteValue(what: "embeddings") }
        let result: LossResult
        do {
            result = try loss.evaluate(
                TripletEmbeddings(embeddings, layout: triplets.layout, sourceImages: triplets.sourceImages))
        } catch let LossError.nonFinite(what, row) {
            throw NonFiniteValue(what: "\(what) (row \(row))")
        }
        guard result.value.isFinite else { throw NonFiniteValue(what: "loss") }
        guard result.gradient.isFinite else { throw NonFiniteValue(what: "loss gradient") }
        context.trainable.backward(result.gradient)
        return StepStatistics(loss: result.value, diagnostics: result.diagnostics, samples: triplets.layout.batchSize)
    }
}
