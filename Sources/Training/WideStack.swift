import Datasets
import Layers
import Optimizers
import TensorCore

/// One stage of a wide convolutional stack in SoftHebb's block form:
/// non-affine ``BatchNorm`` → ``ReflectionPad2D`` → bias-free ``Conv2D`` →
/// ``TriangleActivation`` → pooling, with the stage's own SoftHebb hyper-parameters.
public struct WideStageSpec: Sendable, Equatable {
    /// Pooling after the activation.
    public enum Pooling: Sendable, Equatable {
        case max(kernel: Int, stride: Int, padding: Int)
        case average(kernel: Int, stride: Int, padding: Int)
    }

    public var width: Int
    public var kernel: Int
    /// Reflection padding before the convolution.
    public var padding: Int
    public var pooling: Pooling
    public var trianglePower: Float
    /// SoftHebb's softmax temperature (1 / `t_invert`).
    public var temperature: Float
    public var learningRate: Float
    public var learningRatePower: Float

    public init(
        width: Int, kernel: Int, padding: Int, pooling: Pooling, trianglePower: Float, temperature: Float,
        learningRate: Float, learningRatePower: Float = 0.5
    ) {
        self.width = width
        self.kernel = kernel
        self.padding = padding
        self.pooling = pooling
        self.trianglePower = trianglePower
        self.temperature = temperature
        self.learningRate = learningRate
        self.learningRatePower = learningRatePower
    }
}

/// Builders of wide, deep stacks and their SoftHebb stages.
public enum WideStack {
    /// SoftHebb's three-stage CIFAR-10 network (`4SoftHebbCnnCIFAR`): 96 (5x5) → 384 (3x3)
    /// → 1,536 (3x3), max pooling 4x4 s2 p1 after stages 1 and 2, 2x2 average pooling last,
    /// so a 32x32 image gives 1,536 x 4 x 4 = 24,576 features.
    public static let softHebbCIFAR: [WideStageSpec] = [
        WideStageSpec(
            width: 96, kernel: 5, padding: 2, pooling: .max(kernel: 4, stride: 2, padding: 1),
            trianglePower: 0.7, temperature: 1, learningRate: 0.08),
        WideStageSpec(
            width: 384, kernel: 3, padding: 1, pooling: .max(kernel: 4, stride: 2, padding: 1),
            trianglePower: 1.4, temperature: 1 / 0.65, learningRate: 0.005),
        WideStageSpec(
            width: 1536, kernel: 3, padding: 1, pooling: .average(kernel: 2, stride: 2, padding: 0),
            trianglePower: 1, temperature: 1 / 0.25, learningRate: 0.01),
    ]

    /// SoftHebb's initial filter norm: weights are N(0, 1) · radius / √fan-in.
    public static let initialRadius: Float = 25

    /// The layers of every stage, weights drawn from `generator` (N(0, 1)·radius/√fan-in).
    ///
    /// - Throws: ``LayerError`` for sizes a layer rejects.
    public static func layers(
        _ specs: [WideStageSpec], inputChannels: Int, radius: Float = initialRadius,
        using generator: inout SeededGenerator
    ) throws -> [[any Layer]] {
        var channels = inputChannels
        return try specs.map { spec in
            defer { channels = spec.width }
            return try stageLayers(spec, inputChannels: channels, radius: radius, using: &generator)
        }
    }

    /// One stage's layers.
    public static func stageLayers(
        _ spec: WideStageSpec, inputChannels: Int, radius: Float = initialRadius, using generator: inout SeededGenerator
    ) throws -> [any Layer] {
        let conv = try Conv2D(
            inputChannels: inputChannels, outputChannels: spec.width, kernelSize: spec.kernel,
            bias: false, using: &generator)
        let fanIn = Float(inputChannels * spec.kernel * spec.kernel)
        conv.weight.value = .normal(
            conv.weight.value.shape, standardDeviation: radius / fanIn.squareRoot(), using: &generator)
        let pool: any Layer
        switch spec.pooling {
        case let .max(k, s, p): pool = try MaxPool2D(kernelSize: k, stride: s, padding: p)
        case let .average(k, s, p): pool = try AvgPool2D(kernelSize: k, stride: s, padding: p)
        }
        return [
            try BatchNorm(features: inputChannels, affine: false), try ReflectionPad2D(padding: spec.padding), conv,
            try TriangleActivation(power: spec.trianglePower), pool,
        ]
    }

    /// The convolution of a stage built by ``stageLayers(_:inputChannels:radius:using:)``.
    public static func convolution(of layers: [any Layer]) -> Conv2D? {
        layers.lazy.compactMap { $0 as? Conv2D }.first
    }

    /// The fraction of a convolution's filters (`[O, C, k, k]`) whose norm is within
    /// `tolerance` of 1 — how many of them SoftHebb's norm-adaptive rate has converged.
    public static func fractionNearUnitNorm(_ weight: Tensor, tolerance: Float) -> Float {
        let o = weight.shape.first ?? 0, l = weight.count / max(1, o)
        guard o > 0 else { return 0 }
        var near = 0
        weight.withUnsafeBufferPointer { w in
            for i in 0..<o {
                var sq = 0.0
                for j in 0..<l { sq += Double(w[i * l + j]) * Double(w[i * l + j]) }
                if abs(sq.squareRoot() - 1) <= Double(tolerance) { near += 1 }
            }
        }
        return Float(near) / Float(o)
    }

    /// SoftHebb stages over `layers`: `epochs` shuffled passes over `dataset` per stage in
    /// batches of `batchSize` whole images (SoftHebb: one epoch, batch 10).
    public static func softHebbStages(
        layers: [[any Layer]], specs: [WideStageSpec], dataset: any ImageDataset,
        normalization: ChannelNormalization? = nil, batchSize: Int = 10, epochs: Int = 1
    ) throws -> [Stage] {
        guard layers.count == specs.count else {
            throw TrainerError.invalidOption(
                stage: nil, option: "WideStack.specs", value: "\(specs.count)",
                reason: "one spec per stage (\(layers.count))")
        }
        let steps = max(1, (dataset.count + batchSize - 1) / batchSize)
        return try zip(layers, specs).enumerated().map { k, pair in
            guard let conv = convolution(of: pair.0) else {
                throw TrainerError.invalidOption(
                    stage: k + 1, option: "layers", value: "no Conv2D", reason: "SoftHebb trains a Conv2D")
            }
            let objective = try SoftHebbObjective(
                conv: conv, dataset: dataset, normalization: normalization, temperature: pair.1.temperature,
                learningRate: pair.1.learningRate, learningRatePower: pair.1.learningRatePower)
            return Stage(
                layers: pair.0, objective: objective, optimizer: SoftHebbObjective.makeOptimizer(),
                schedule: ConstantSchedule(1), batchSize: batchSize, budget: .epochs(epochs, stepsPerEpoch: steps))
        }
    }
}

/// Fits the normalisation statistics of an untrained stage the way training would: one
/// shuffled pass over the images in batches, the frozen stages below in inference mode
/// and the stage's layers up to its last ``BatchNorm`` in training mode (so their
/// running statistics update exactly as during SoftHebb training), with no weight change.
///
/// This is the fair untrained control: random weights with calibrated statistics.
public enum StatisticsCalibration {
    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` for a batch size
    ///   below 1 or an empty dataset; dataset errors.
    public static func calibrate(
        _ layers: [any Layer], below: FrozenStack, dataset: any ImageDataset,
        normalization: ChannelNormalization? = nil,
        batchSize: Int = 10, using generator: inout SeededGenerator
    ) throws {
        guard batchSize >= 1, dataset.count > 0 else {
            throw TrainerError.invalidOption(
                stage: nil, option: "StatisticsCalibration", value: "batch \(batchSize), \(dataset.count) images",
                reason: "needs a batch size ≥ 1 and images")
        }
        guard let last = layers.lastIndex(where: { $0 is BatchNorm }) else { return }
        var order = Array(0..<dataset.count)
        order.shuffle(using: &generator)
        for first in stride(from: 0, to: order.count, by: batchSize) {
            let indices = order[first..<min(order.count, first + batchSize)]
            var x = try makeBatch(from: dataset, indices: indices, normalization: normalization, using: &generator)
                .images
            x = below(x)
            for layer in layers[...last] { x = layer.forward(x, mode: .training) }
        }
    }
}
