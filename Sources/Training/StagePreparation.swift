import Datasets
import Layers
import TensorCore

/// Data-dependent set-up of a stage, run by ``LayerwiseTrainer`` once, right before the
/// stage starts training, with the frozen stages below it.
///
/// Greedy training knows what a stage's input looks like only once the stages below it
/// are trained; a preparation is where a stage adapts to that input — fitting a whitening
/// of it (``InputWhitening``), or any other data-dependent initialisation. End to end, each
/// stage is prepared in order on top of the (untrained) stages below it.
public protocol StagePreparation {
    /// Prepares `layers` (the stage's own layers) given the frozen stages `below`.
    /// - Parameters:
    ///   - stage: the stage's number (1-based), for error messages.
    ///   - generator: the trainer's generator; draws here are part of the seeded run.
    func prepare(stage: Int, layers: [any Layer], below: FrozenStack, using generator: inout SeededGenerator) throws
    /// The same in a data-parallel job: every rank calls it with the same generator state and
    /// must end with the same prepared layers. The default runs
    /// ``prepare(stage:layers:below:using:)`` on every rank; a preparation that fits
    /// statistics (``InputWhitening``) splits the work and all-reduces them instead.
    func prepare(
        stage: Int, layers: [any Layer], below: FrozenStack, communicator: any Communicator,
        using generator: inout SeededGenerator
    ) throws
}

extension StagePreparation {
    public func prepare(
        stage: Int, layers: [any Layer], below: FrozenStack, communicator: any Communicator,
        using generator: inout SeededGenerator
    ) throws {
        try prepare(stage: stage, layers: layers, below: below, using: &generator)
    }
}

/// Fits the ZCA whitening of a stage whose first layer is a ``WhitenedConv2D`` to the
/// windows that layer will see: the output of the frozen stages on whole images.
///
/// Why: stage 1 learns useful filters only on whitened input (the recipe study: random
/// whitened filters probe 58.9 %, trained ones 63 %; without whitening the contrastive loss
/// wins on smooth colour). The output of a trained stage is just as correlated across
/// channels and neighbouring positions, so the next stage gets the same treatment.
///
/// ε is relative: Z = V diag(1/√(λ + ε·λ̄)) Vᵀ with λ̄ the mean eigenvalue (the mean
/// variance of a window value), because the scale of learned features is arbitrary.
public struct InputWhitening: StagePreparation {
    /// Images whose stage input is sampled (normalised with ``normalization``).
    public var dataset: any ImageDataset
    /// The per-channel normalisation the stage's patches get during training.
    public var normalization: ChannelNormalization
    /// Images pushed through the frozen stages.
    public var imageCount: Int
    /// Windows sampled from their outputs (spread evenly over the images).
    public var windowCount: Int
    /// ε as a fraction of the mean eigenvalue of the window covariance.
    public var relativeEpsilon: Float

    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` for counts below
    ///   1 or an ε that is not positive and finite.
    public init(
        dataset: any ImageDataset, normalization: ChannelNormalization, imageCount: Int = 2_000,
        windowCount: Int = 100_000, relativeEpsilon: Float = 0.01
    ) throws {
        guard imageCount >= 1 else {
            throw TrainerError.invalidOption(stage: nil, option: "InputWhitening.imageCount", value: "\(imageCount)", reason: "must be ≥ 1")
        }
        guard windowCount >= 2 else {
            throw TrainerError.invalidOption(stage: nil, option: "InputWhitening.windowCount", value: "\(windowCount)", reason: "must be ≥ 2")
        }
        guard relativeEpsilon > 0, relativeEpsilon.isFinite else {
            throw TrainerError.invalidOption(
                stage: nil, option: "InputWhitening.relativeEpsilon", value: "\(relativeEpsilon)", reason: "must be positive and finite")
        }
        self.dataset = dataset
        self.normalization = normalization
        self.imageCount = imageCount
        self.windowCount = windowCount
        self.relativeEpsilon = relativeEpsilon
    }

    public func prepare(stage: Int, layers: [any Layer], below: FrozenStack, using generator: inout SeededGenerator) throws {
        try prepare(
            stage: stage, layers: layers, below: below, communicator: SingleProcessCommunicator(), using: &generator)
    }

    /// Every rank draws the same images and window positions but pushes only its share of
    /// the image chunks through the frozen stages; the window sums and the centred second
    /// moments are all-reduced, so every rank fits the whitening of all `windowCount` windows.
    public func prepare(
        stage: Int, layers: [any Layer], below: FrozenStack, communicator: any Communicator,
        using generator: inout SeededGenerator
    ) throws {
        guard let conv = layers.first as? any WindowWhitening else {
            let found = layers.first.map { String(describing: type(of: $0)) } ?? "no layer"
            throw TrainerError.invalidOption(
                stage: stage, option: "InputWhitening", value: found, reason: "the stage's first layer must be a WhitenedConv2D")
        }
        guard dataset.count > 0 else {
            throw TrainerError.invalidOption(stage: stage, option: "InputWhitening.dataset", value: "0 images", reason: "needs images")
        }
        let windows = try sampleWindows(
            kernel: conv.kernelSize, below: below, stage: stage, communicator: communicator, using: &generator)
        let d = windows.shape[1]
        // Mean variance of a window value = the mean eigenvalue of the covariance.
        // One pass over contiguous rows; each column is still summed in row order.
        let n = windowCount, local = windows.shape[0]
        var moments = [Double](repeating: 0, count: 2 * d)  // Σx, then Σx²
        windows.withUnsafeBufferPointer { x in
            moments.withUnsafeMutableBufferPointer { m in
                for r in 0..<local {
                    let row = x.baseAddress! + r * d
                    for j in 0..<d { let v = Double(row[j]); m[j] += v; m[d + j] += v * v }
                }
            }
        }
        try communicator.allReduce(&moments, .sum)
        var meanVariance = 0.0
        for j in 0..<d {
            meanVariance += moments[d + j] / Double(n) - (moments[j] / Double(n)) * (moments[j] / Double(n))
        }
        meanVariance /= Double(d)
        guard meanVariance > 0, meanVariance.isFinite else {
            throw TrainerError.invalidOption(
                stage: stage, option: "InputWhitening", value: "window variance \(meanVariance)",
                reason: "the frozen stages' output is constant or not finite; nothing to whiten")
        }
        let epsilon = relativeEpsilon * Float(meanVariance)
        let zca: ZCAWhitening
        if communicator.size == 1 {
            zca = try ZCAWhitening.fit(patches: windows, epsilon: epsilon)
        } else {
            let mean = (0..<d).map { Float(moments[$0] / Double(n)) }
            var covariance = ZCAWhitening.centredSecondMoment(of: windows, mean: mean, count: n)
            try communicator.allReduce(&covariance, .sum)
            zca = try ZCAWhitening.fit(mean: Tensor(shape: [d], values: mean), covariance: covariance, epsilon: epsilon)
        }
        try conv.setWhitening(mean: zca.mean, matrix: zca.matrix)
    }

    /// This rank's rows of `windowCount` k×k windows (C·k·k values each, `Conv2D` order) of
    /// the frozen stages' output on `imageCount` random images: chunk `c` of 256 images
    /// belongs to rank `c mod size` (one process: all of them, in order). Also the window
    /// sampler of `DeepKMeansStart`.
    public func sampleWindows(
        kernel k: Int, below: FrozenStack, stage: Int, communicator: any Communicator = SingleProcessCommunicator(),
        using g: inout SeededGenerator
    ) throws -> Tensor {
        let chunk = 256
        // ⌈windowCount / imageCount⌉ windows per image fill exactly windowCount rows.
        let perImage = (windowCount + imageCount - 1) / imageCount
        let s = dataset.imageShape
        let mapShape: [Int]
        do {
            mapShape = try FeatureExtractor(layers: below.layers).outputShape(for: [1, s.channels, s.height, s.width])
        } catch {
            throw TrainerError.incompatibleStage(
                stage: stage, layer: "InputWhitening", reason: "the frozen stages: \(error)")
        }
        guard mapShape.count == 4, mapShape[2] >= k, mapShape[3] >= k else {
            throw TrainerError.incompatibleStage(
                stage: stage, layer: "InputWhitening",
                reason: "the frozen stages turn \(s) images into \(mapShape.dropFirst()) maps, "
                    + "too small for \(k)x\(k) windows")
        }
        let (c, h, w) = (mapShape[1], mapShape[2], mapShape[3])
        let d = c * k * k
        var rows = Tensor.uninitialized(shape: [windowCount, d])
        var filled = 0, local = 0
        var done = 0, chunkIndex = 0
        while done < imageCount {
            let n = min(chunk, imageCount - done)
            let indices = (0..<n).map { _ in g.nextInt(below: dataset.count) }
            let isMine = chunkIndex % communicator.size == communicator.rank
            // Other ranks' chunks: the same draws, no forward pass.
            let maps = isMine
                ? below(try makeBatch(from: dataset, indices: indices, normalization: normalization, using: &g).images)
                : Tensor.zeros([0])
            if isMine, maps.shape != [n, c, h, w] {
                throw TrainerError.incompatibleStage(
                    stage: stage, layer: "InputWhitening",
                    reason: "the frozen stages gave \(maps.shape), expected \([n, c, h, w])")
            }
            maps.withUnsafeBufferPointer { m in
                rows.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<n {
                        for _ in 0..<perImage where filled < windowCount {
                            let y = g.nextInt(below: h - k + 1), x = g.nextInt(below: w - k + 1)
                            filled += 1
                            guard isMine else { continue }
                            var to = dst.baseAddress! + local * d
                            for ch in 0..<c {
                                for dy in 0..<k {
                                    to.update(from: m.baseAddress! + ((i * c + ch) * h + y + dy) * w + x, count: k)
                                    to += k
                                }
                            }
                            local += 1
                        }
                    }
                }
            }
            done += n
            chunkIndex += 1
        }
        guard local < windowCount else { return rows }
        var mine = Tensor.uninitialized(shape: [local, d])
        rows.withUnsafeBufferPointer { src in
            mine.withUnsafeMutableBufferPointer { dst in
                if local > 0 { dst.baseAddress!.update(from: src.baseAddress!, count: local * d) }
            }
        }
        return mine
    }
}
