// custom-components: your own Layer, composite layer, ContrastiveLoss, PatchSampler and Augmentation,
// defined outside the library and trained by LayerwiseTrainer unchanged. It imports only
// `Layerwise`, so this file also builds as a separate package that depends on Layerwise
// by path (see Docs/Extending.md). Data is synthetic: oriented stripe patches.
import Foundation
import Layerwise

/// A layer: leaky ReLU, y = x for x > 0 and αx otherwise.
final class LeakyReLU: Layer {
    let slope: Float
    private var input = Tensor.zeros([0])
    init(slope: Float = 0.1) { self.slope = slope }

    var parameters: [Parameter] { [] }
    func outputShape(for inputShape: [Int]) throws -> [Int] { inputShape }

    func forward(_ x: Tensor, mode: Mode) -> Tensor {
        if mode == .training { input = x }
        var y = x
        y.withUnsafeMutableBufferPointer { b in for i in b.indices where b[i] < 0 { b[i] *= slope } }
        return y
    }

    func backward(_ g: Tensor) -> Tensor {
        var out = g
        out.withUnsafeMutableBufferPointer { gb in
            input.withUnsafeBufferPointer { xb in for i in gb.indices where xb[i] < 0 { gb[i] *= slope } }
        }
        return out
    }
}

/// A composite layer: a convolution followed by dropout. It only lists its parts as
/// `children`; the library's tree walk then names their parameters (`"stage1.0.conv.weight"`),
/// saves and restores the dropout's generator in checkpoints and lets the trainer skip the
/// convolution's input gradient. Nothing in the library knows this type.
final class ConvDropoutBlock: Layer {
    let conv: Conv2D
    let dropout: Dropout

    init(conv: Conv2D, dropout: Dropout) {
        self.conv = conv
        self.dropout = dropout
    }

    var children: [(name: String, layer: any Layer)] { [("conv", conv), ("dropout", dropout)] }
    var parameters: [Parameter] { conv.parameters }
    func outputShape(for inputShape: [Int]) throws -> [Int] { try conv.outputShape(for: inputShape) }
    func forward(_ x: Tensor, mode: Mode) -> Tensor { dropout.forward(conv.forward(x, mode: mode), mode: mode) }
    func backward(_ g: Tensor) -> Tensor { conv.backward(dropout.backward(g)) }
}

/// A loss: the classic contrastive pair loss (Hadsell et al. 2006) on Euclidean distance,
/// d(a,p)² + max(0, m − d(a,n))², averaged over anchors (first negative of each anchor).
struct PairContrastiveLoss: ContrastiveLoss {
    var margin: Float = 1

    func validate() throws {
        guard margin > 0 else {
            throw LossError.invalidHyperparameter(name: "margin", value: margin, reason: "must be > 0")
        }
    }

    func evaluate(_ batch: TripletEmbeddings) throws -> LossResult {
        let layout = batch.layout, e = batch.embeddings
        let d = e.shape[1], b = layout.batchSize
        guard e.shape[0] == layout.rowCount, b > 0 else { throw LossError.emptyBatch }
        var gradient = Tensor.zeros(e.shape)
        var loss: Float = 0, dPos: Float = 0, dNeg: Float = 0, active = 0
        e.withUnsafeBufferPointer { x in
            gradient.withUnsafeMutableBufferPointer { g in
                for i in 0..<b {
                    let a = layout.anchorRow(i) * d, p = layout.positiveRow(i) * d, n = layout.negativeRow(i, 0) * d
                    var sp: Float = 0, sn: Float = 0
                    for j in 0..<d {
                        sp += (x[a + j] - x[p + j]) * (x[a + j] - x[p + j])
                        sn += (x[a + j] - x[n + j]) * (x[a + j] - x[n + j])
                    }
                    let dn = sn.squareRoot(), hinge = max(0, margin - dn)
                    loss += sp + hinge * hinge
                    dPos += sp.squareRoot()
                    dNeg += dn
                    if hinge > 0 { active += 1 }
                    let scale = 1 / Float(b)
                    for j in 0..<d {
                        let gp = 2 * (x[a + j] - x[p + j]) * scale
                        g[a + j] += gp
                        g[p + j] -= gp
                        if hinge > 0, dn > 1e-12 {
                            let gn = -2 * hinge * (x[a + j] - x[n + j]) / dn * scale
                            g[a + j] += gn
                            g[n + j] -= gn
                        }
                    }
                }
            }
        }
        let diagnostics = LossDiagnostics(
            meanPositiveDistance: dPos / Float(b), meanNegativeDistance: dNeg / Float(b),
            activeFraction: Float(active) / Float(b), isCollapsed: false)
        return LossResult(value: loss / Float(b), gradient: gradient, diagnostics: diagnostics)
    }
}

/// An augmentation: inverts the image (1 − x) with probability p.
struct RandomInvert: Augmentation {
    var probability: Float = 0.5
    func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        guard generator.nextUniform() < probability else { return image }
        var out = image
        out.tensor.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] = 1 - b[i] } }
        return out
    }
}

/// A sampler: synthetic stripe patches. Anchor and positive share an orientation (the
/// positive with another phase, maybe inverted); the negative has another orientation.
struct StripeSampler: PatchSampler {
    var channels: Int { 3 }
    var augmentation: any Augmentation = RandomInvert()

    func stripes(size: Int, angle: Float, phase: Float) -> Image {
        var image = Image(channels: 3, height: size, width: size)
        let (c, s) = (cos(angle), sin(angle))
        for y in 0..<size {
            for x in 0..<size {
                let v = 0.5 + 0.5 * sin(2.2 * (c * Float(x) + s * Float(y)) + phase)
                for ch in 0..<3 { image[ch, y, x] = v }
            }
        }
        return image
    }

    mutating func sample<G: RandomNumberGenerator>(
        batchSize: Int, patchSize: Int, using g: inout G
    ) throws -> PatchTriplets {
        guard batchSize > 0 else { throw SamplerError.invalidBatchSize(batchSize) }
        let layout = TripletLayout(batchSize: batchSize, negativesPerAnchor: 1)
        let plane = 3 * patchSize * patchSize
        var patches = Tensor.zeros([layout.rowCount, 3, patchSize, patchSize])
        var sources = [Int](repeating: 0, count: layout.rowCount)
        for i in 0..<batchSize {
            let orientation = g.nextInt(below: 4), other = (orientation + 1 + g.nextInt(below: 3)) % 4
            let rows: [(Int, Image)] = [
                (
                    layout.anchorRow(i),
                    stripes(size: patchSize, angle: Float(orientation) * .pi / 4, phase: g.nextUniform(0, 6.28))
                ),
                (
                    layout.positiveRow(i),
                    augmentation.apply(
                        to: stripes(
                            size: patchSize, angle: Float(orientation) * .pi / 4, phase: g.nextUniform(0, 6.28)),
                        using: &g)
                ),
                (
                    layout.negativeRow(i, 0),
                    stripes(size: patchSize, angle: Float(other) * .pi / 4, phase: g.nextUniform(0, 6.28))
                ),
            ]
            for (row, image) in rows {
                patches.withUnsafeMutableBufferPointer { dst in
                    image.tensor.withUnsafeBufferPointer { src in
                        for k in 0..<plane { dst[row * plane + k] = src[k] }
                    }
                }
            }
            sources[layout.anchorRow(i)] = 2 * i
            sources[layout.positiveRow(i)] = 2 * i
            sources[layout.negativeRow(i, 0)] = 2 * i + 1
        }
        return PatchTriplets(patches: patches, layout: layout, sourceImages: sources)
    }
}

// Train one stage with all the custom pieces through the library's trainer.
var rng = SeededGenerator(seed: 11)
let block = ConvDropoutBlock(
    conv: try Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 6, using: &rng),
    dropout: try Dropout(probability: 0.1, seed: 12))
let stage = Stage(
    layers: [block, LeakyReLU(), try MaxPool2D(kernelSize: 2)],
    objective: ContrastiveObjective(sampler: StripeSampler(), loss: PairContrastiveLoss(margin: 1)),
    optimizer: SGD(learningRate: 0.05, momentum: 0.9), schedule: ConstantSchedule(0.05),
    batchSize: 64, budget: .epochs(5, stepsPerEpoch: 40))
let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 7, seed: 11)
print("checkpoint names: \(trainer.namedState().map(\.name).joined(separator: ", "))")
let report = try trainer.pretrain { event in
    if case let .epochEnded(_, epoch, meanLoss, _) = event { print("epoch \(epoch): mean loss \(meanLoss)") }
}
let losses = report.stages[0].epochLosses
print("custom components trained: loss \(losses.first ?? .nan) → \(losses.last ?? .nan)")
