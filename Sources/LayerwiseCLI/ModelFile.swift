import Foundation
import Layerwise

/// A pretrained stack as the `layerwise` tool saves it: one safetensors file with each
/// stage's plain convolution (`stage<k>.weight` [O, C, k, k], `stage<k>.bias` [O]; a
/// whitened conv is saved folded, so the file loads straight into `torch.nn.Conv2d`) and,
/// in the metadata, the recipe, the input normalisation and what training saw.
public struct ModelFile {
    public static let format = "layerwise-model-v1"

    public var recipe: PretrainRecipe
    public var normalization: ChannelNormalization
    public var inputChannels: Int
    /// Per stage: folded weight and bias.
    public var weights: [(weight: Tensor, bias: Tensor)]
    /// Free-form training facts (images, seconds, final losses, data).
    public var training: [String: String]

    public init(
        recipe: PretrainRecipe, normalization: ChannelNormalization, inputChannels: Int,
        weights: [(weight: Tensor, bias: Tensor)], training: [String: String]
    ) {
        self.recipe = recipe
        self.normalization = normalization
        self.inputChannels = inputChannels
        self.weights = weights
        self.training = training
    }

    /// The trained stack of `trainer`, built from `recipe`.
    public init(
        trainer: LayerwiseTrainer, recipe: PretrainRecipe, normalization: ChannelNormalization,
        training: [String: String]
    ) throws {
        var weights: [(Tensor, Tensor)] = []
        for stage in trainer.stages {
            if let w = stage.layers.first as? WhitenedConv2D {
                weights.append(w.foldedParameters())
            } else if let c = stage.layers.first as? Conv2D {
                weights.append((c.weight.value, c.bias?.value ?? Tensor.zeros([c.outputChannels])))
            } else {
                throw CommandLineError.badModel(file: "<trainer>", reason: "a stage does not start with a convolution")
            }
        }
        self.init(
            recipe: recipe, normalization: normalization, inputChannels: trainer.inputChannels,
            weights: weights, training: training)
    }

    /// Writes the file atomically.
    public func write(to path: String) throws {
        var tensors: [String: Tensor] = [:]
        for (k, w) in weights.enumerated() {
            tensors["stage\(k + 1).weight"] = w.weight
            tensors["stage\(k + 1).bias"] = w.bias
        }
        var metadata = training
        metadata["format"] = Self.format
        metadata["recipe"] = try recipe.json()
        metadata["normalization.mean"] = normalization.mean.map { "\($0)" }.joined(separator: ",")
        metadata["normalization.std"] = normalization.std.map { "\($0)" }.joined(separator: ",")
        metadata["inputChannels"] = "\(inputChannels)"
        metadata["stages"] = describeStages()
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }

    /// Reads a file written by ``write(to:)``.
    /// - Throws: ``CommandLineError/badModel(file:reason:)`` naming what is missing or wrong.
    public static func read(path: String) throws -> ModelFile {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CommandLineError.missingFile(path: path, what: "model")
        }
        let file = try SafeTensors.read(path: path)
        let m = file.metadata
        guard m["format"] == format else {
            let found = m["format"].map { "format \($0)" } ?? "no format"
            throw CommandLineError.badModel(
                file: path, reason: "not a layerwise model (\(found)); models come from `layerwise pretrain`")
        }
        guard let json = m["recipe"]?.data(using: .utf8),
            let recipe = try? JSONDecoder().decode(PretrainRecipe.self, from: json)
        else { throw CommandLineError.badModel(file: path, reason: "missing or unreadable recipe metadata") }
        func floats(_ key: String) throws -> [Float] {
            guard let v = m[key].map({ $0.split(separator: ",").compactMap { Float($0) } }), !v.isEmpty else {
                throw CommandLineError.badModel(file: path, reason: "missing \(key)")
            }
            return v
        }
        let normalization: ChannelNormalization
        do {
            normalization = try ChannelNormalization(
                mean: try floats("normalization.mean"), std: try floats("normalization.std"))
        } catch let error as CommandLineError {
            throw error
        } catch {
            throw CommandLineError.badModel(file: path, reason: "bad normalization: \(error)")
        }
        guard let channels = m["inputChannels"].flatMap(Int.init), channels == normalization.channels else {
            throw CommandLineError.badModel(file: path, reason: "missing or inconsistent inputChannels")
        }
        var weights: [(Tensor, Tensor)] = []
        var inputs = channels
        for (k, s) in recipe.stages.enumerated() {
            guard let w = file.tensors["stage\(k + 1).weight"], let b = file.tensors["stage\(k + 1).bias"] else {
                throw CommandLineError.badModel(file: path, reason: "missing stage\(k + 1).weight or .bias")
            }
            guard w.shape == [s.filters, inputs, s.kernelSize, s.kernelSize], b.shape == [s.filters] else {
                throw CommandLineError.badModel(
                    file: path,
                    reason: "stage\(k + 1): weight \(w.shape), bias \(b.shape) do not match the recipe "
                        + "([\(s.filters), \(inputs), \(s.kernelSize), \(s.kernelSize)], [\(s.filters)])")
            }
            weights.append((w, b))
            inputs = s.filters
        }
        let training = m.filter {
            !["format", "recipe", "normalization.mean", "normalization.std", "inputChannels"].contains($0.key)
        }
        return ModelFile(
            recipe: recipe, normalization: normalization, inputChannels: channels, weights: weights,
            training: training)
    }

    /// The inference stack: per stage conv → max-pool → ReLU with the saved weights.
    public func featureExtractor() throws -> FeatureExtractor {
        var layers: [any Layer] = []
        var g = SeededGenerator(seed: 0)  // weights are overwritten
        var inputs = inputChannels
        for (s, w) in zip(recipe.stages, weights) {
            let conv = try Conv2D(inputChannels: inputs, outputChannels: s.filters, kernelSize: s.kernelSize, using: &g)
            conv.weight.value = w.weight
            conv.bias?.value = w.bias
            layers.append(conv)
            if s.pool > 1 { layers.append(try MaxPool2D(kernelSize: s.pool)) }
            layers.append(ReLU())
            inputs = s.filters
        }
        return FeatureExtractor(layers: layers)
    }

    /// "stage1: conv 3→64 6x6, max-pool 2, ReLU | …".
    func describeStages() -> String {
        var inputs = inputChannels
        return recipe.stages.enumerated().map { k, s in
            defer { inputs = s.filters }
            let pool = s.pool > 1 ? ", max-pool \(s.pool)" : ""
            return "stage\(k + 1): conv \(inputs)→\(s.filters) \(s.kernelSize)x\(s.kernelSize)\(pool), ReLU"
        }.joined(separator: " | ")
    }
}
