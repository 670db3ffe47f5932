import Layerwise
import XCTest

// Test-local conforming types: a custom layer with a buffer, a custom objective, synthetic
// data and a neighbour sampler. They also prove that user-written components plug in unchanged.

/// Synthetic images: each image is a smooth oriented sinusoid with its own frequency,
/// orientation and colour, so neighbouring patches of one image look alike and patches
/// of different images do not.
struct SyntheticImages: ImageDataset {
    let count: Int
    let imageShape: ImageShape
    let pixels: [Float]
    let labels: [Int]
    var classCount: Int? { 2 }

    init(count: Int, channels: Int = 3, size: Int = 16, seed: UInt64) {
        self.count = count
        imageShape = ImageShape(channels: channels, height: size, width: size)
        var g = SeededGenerator(seed: seed)
        var px: [Float] = []
        var lab: [Int] = []
        for _ in 0..<count {
            let label = g.nextInt(below: 2)
            lab.append(label)
            // Class 0: horizontal-ish stripes; class 1: vertical-ish stripes.
            let angle = (label == 0 ? 0 : Float.pi / 2) + g.nextUniform(-0.3, 0.3)
            let freq = g.nextUniform(0.3, 0.7)
            let (fx, fy) = (freq * cos(angle), freq * sin(angle))
            for _ in 0..<channels {
                let phase = g.nextUniform(0, 6.28), amp = g.nextUniform(0.2, 0.5)
                for y in 0..<size {
                    for x in 0..<size {
                        px.append(0.5 + amp * sin(fx * Float(x) + fy * Float(y) + phase))
                    }
                }
            }
        }
        pixels = px
        labels = lab
    }

    func label(at index: Int) -> Int? { labels[index] }
    func copyPixels(of index: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        let n = imageShape.elementCount
        pixels.withUnsafeBufferPointer { src in
            buffer.baseAddress!.update(from: src.baseAddress! + index * n, count: n)
        }
    }

    /// All images as one [N, C, H, W] tensor.
    func batch(_ indices: [Int]) -> Tensor {
        let n = imageShape.elementCount
        var t = Tensor.uninitialized(shape: [indices.count, imageShape.channels, imageShape.height, imageShape.width])
        t.withUnsafeMutableBufferPointer { b in
            for (r, i) in indices.enumerated() {
                copyPixels(of: i, into: UnsafeMutableBufferPointer(rebasing: b[(r * n)..<((r + 1) * n)]))
            }
        }
        return t
    }
}

/// Identity in the forward pass that keeps a running mean of its input per channel as a
/// buffer, like BatchNorm's running statistics: checkpoints must carry it.
final class TestRunningMean: Layer {
    let runningMean: Parameter
    init(channels: Int) {
        runningMean = Parameter(name: "running_mean", value: Tensor.zeros([channels]), isFrozen: true)
    }
    var parameters: [Parameter] { [] }
    var buffers: [Parameter] { [runningMean] }
    func outputShape(for s: [Int]) throws -> [Int] { s }
    func forward(_ input: Tensor, mode: Mode) -> Tensor {
        guard mode == .training else { return input }
        let s = input.shape, c = s[1], plane = s[2] * s[3]
        var means = [Float](repeating: 0, count: c)
        input.withUnsafeBufferPointer { x in
            for n in 0..<s[0] { for ch in 0..<c { for j in 0..<plane { means[ch] += x[(n * c + ch) * plane + j] } } }
        }
        runningMean.value.withUnsafeMutableBufferPointer { r in
            for ch in 0..<c { r[ch] = 0.9 * r[ch] + 0.1 * means[ch] / Float(s[0] * plane) }
        }
        return input
    }
    func backward(_ g: Tensor) -> Tensor { g }
}

/// A surrogate-class objective in miniature: a temporary linear classifier (owned by the
/// objective, built in `prepare`) predicts each anchor patch's image label with softmax
/// cross-entropy. It exercises the auxiliary-parameter seam.
final class TestSurrogateObjective: StageObjective {
    var sampler: NeighborPatchSampler
    let classes: Int
    var head: Linear?
    init(sampler: NeighborPatchSampler, classes: Int) {
        self.sampler = sampler
        self.classes = classes
    }
    var inputChannels: Int? { sampler.channels }
    var auxiliaryParameters: [Parameter] { head?.parameters ?? [] }
    func prepare(embeddingFeatures: Int, using generator: inout SeededGenerator) throws {
        head = linear(embeddingFeatures, classes, seed: generator.next())
    }
    func step(_ context: StageStepContext, using generator: inout SeededGenerator) throws -> StepStatistics {
        let head = self.head!
        let t = try sampler.sample(batchSize: context.batchSize, patchSize: context.patchSize, using: &generator)
        let emb = context.trainable.forward(context.frozen(t.patches))
        let logits = head.forward(emb, mode: .training)
        let rows = logits.shape[0]
        var grad = Tensor.zeros(logits.shape)
        var loss: Float = 0, correct = 0
        let l = logits.scalars
        for r in 0..<rows {
            let label = sampler.dataset.label(at: t.sourceImages[r])!
            let row = l[(r * classes)..<((r + 1) * classes)]
            let m = row.max()!
            let e = row.map { exp($0 - m) }
            let z = e.reduce(0, +)
            loss -= log(e[label] / z)
            if row.firstIndex(of: m)! - r * classes == label { correct += 1 }
            for c in 0..<classes { grad[flat: r * classes + c] = (e[c] / z - (c == label ? 1 : 0)) / Float(rows) }
        }
        context.trainable.backward(head.backward(grad))
        return StepStatistics(loss: loss / Float(rows), samples: rows, accuracy: Float(correct) / Float(rows))
    }
}
