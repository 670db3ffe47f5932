import Layerwise
import XCTest

// Test-local conforming types, so the trainer is tested against the protocols alone.
// (They also prove that user-written layers, losses and samplers plug in unchanged.)

/// Convolution by im2col + one GEMM per image.
final class TestConv: Layer {
    let weight: Parameter  // [O, C·k·k]
    let bias: Parameter  // [O]
    let inputChannels: Int, outputChannels: Int, kernel: Int, stride: Int
    private var cachedColumns: [Tensor] = []
    private var cachedInputShape: [Int] = []

    init(_ inputChannels: Int, _ outputChannels: Int, kernel: Int, stride: Int = 1, seed: UInt64) {
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernel = kernel
        self.stride = stride
        var g = SeededGenerator(seed: seed)
        let fanIn = Float(inputChannels * kernel * kernel)
        let bound = (6 / fanIn).squareRoot()
        weight = Parameter(name: "weight", value: Tensor.uniform([outputChannels, inputChannels * kernel * kernel], low: -bound, high: bound, using: &g))
        bias = Parameter(name: "bias", value: Tensor.zeros([outputChannels]))
    }

    var parameters: [Parameter] { [weight, bias] }

    func geometry(_ shape: [Int]) -> ConvGeometry {
        ConvGeometry(channels: shape[1], height: shape[2], width: shape[3], kernel: (kernel, kernel), stride: (stride, stride))
    }

    func outputShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == inputChannels else {
            throw LayerError.incompatibleInput(layer: "TestConv", shape: s, reason: "expected [N, \(inputChannels), H, W]")
        }
        let g = geometry(s)
        guard g.isValid else { throw LayerError.incompatibleInput(layer: "TestConv", shape: s, reason: "kernel \(kernel) larger than input") }
        return [s[0], outputChannels, g.outputHeight, g.outputWidth]
    }

    func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let g = geometry(input.shape)
        let n = input.shape[0], pl = g.patchLength, pos = g.outputPositions
        var out = Tensor.uninitialized(shape: [n, outputChannels, g.outputHeight, g.outputWidth])
        if mode == .training { cachedColumns = []; cachedInputShape = input.shape }
        for i in 0..<n {
            var cols = Tensor.uninitialized(shape: [pl, pos])
            input.withUnsafeBufferPointer { x in
                cols.withUnsafeMutableBufferPointer { c in
                    Im2Col.im2col(x.baseAddress! + i * g.channels * g.height * g.width, geometry: g, columns: c.baseAddress!)
                }
            }
            out.withUnsafeMutableBufferPointer { o in
                let dst = o.baseAddress! + i * outputChannels * pos
                bias.value.withUnsafeBufferPointer { b in
                    for oc in 0..<outputChannels { for j in 0..<pos { dst[oc * pos + j] = b[oc] } }
                }
                weight.value.withUnsafeBufferPointer { w in
                    cols.withUnsafeBufferPointer { c in
                        BLAS.gemm(transposeA: false, transposeB: false, m: outputChannels, n: pos, k: pl, alpha: 1,
                                  a: w.baseAddress!, lda: pl, b: c.baseAddress!, ldb: pos, beta: 1, c: dst, ldc: pos)
                    }
                }
            }
            if mode == .training { cachedColumns.append(cols) }
        }
        return out
    }

    func backward(_ gradOut: Tensor) -> Tensor {
        let g = geometry(cachedInputShape)
        let n = cachedInputShape[0], pl = g.patchLength, pos = g.outputPositions
        var gradIn = Tensor.zeros(cachedInputShape)
        var dcols = Tensor.uninitialized(shape: [pl, pos])
        for i in 0..<n {
            gradOut.withUnsafeBufferPointer { go in
                let src = go.baseAddress! + i * outputChannels * pos
                if !weight.isFrozen {
                    weight.gradient.withUnsafeMutableBufferPointer { dw in
                        cachedColumns[i].withUnsafeBufferPointer { c in
                            BLAS.gemm(transposeA: false, transposeB: true, m: outputChannels, n: pl, k: pos, alpha: 1,
                                      a: src, lda: pos, b: c.baseAddress!, ldb: pos, beta: 1, c: dw.baseAddress!, ldc: pl)
                        }
                    }
                    bias.gradient.withUnsafeMutableBufferPointer { db in
                        for oc in 0..<outputChannels { for j in 0..<pos { db[oc] += src[oc * pos + j] } }
                    }
                }
                weight.value.withUnsafeBufferPointer { w in
                    dcols.withUnsafeMutableBufferPointer { d in
                        BLAS.gemm(transposeA: true, transposeB: false, m: pl, n: pos, k: outputChannels, alpha: 1,
                                  a: w.baseAddress!, lda: pl, b: src, ldb: pos, beta: 0, c: d.baseAddress!, ldc: pos)
                    }
                }
            }
            gradIn.withUnsafeMutableBufferPointer { gi in
                dcols.withUnsafeBufferPointer { d in
                    Im2Col.col2imAdd(d.baseAddress!, geometry: g, image: gi.baseAddress! + i * g.channels * g.height * g.width)
                }
            }
        }
        return gradIn
    }
}

/// Max pooling, kernel = stride.
final class TestPool: Layer {
    let size: Int
    private var argmax: [Int] = []
    private var inputShape: [Int] = []
    init(_ size: Int) { self.size = size }
    var parameters: [Parameter] { [] }
    func outputShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[2] >= size, s[3] >= size else {
            throw LayerError.incompatibleInput(layer: "TestPool", shape: s, reason: "smaller than the window \(size)")
        }
        return [s[0], s[1], (s[2] - size) / size + 1, (s[3] - size) / size + 1]
    }
    func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        let oh = (s[2] - size) / size + 1, ow = (s[3] - size) / size + 1
        var out = Tensor.uninitialized(shape: [s[0], s[1], oh, ow])
        var arg = [Int](repeating: 0, count: out.count)
        input.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                var idx = 0
                for plane in 0..<(s[0] * s[1]) {
                    let base = plane * s[2] * s[3]
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var best = -Float.infinity, bi = 0
                            for ky in 0..<size {
                                for kx in 0..<size {
                                    let j = base + (oy * size + ky) * s[3] + ox * size + kx
                                    if x[j] > best { best = x[j]; bi = j }
                                }
                            }
                            o[idx] = best; arg[idx] = bi; idx += 1
                        }
                    }
                }
            }
        }
        if mode == .training { argmax = arg; inputShape = s }
        return out
    }
    func backward(_ g: Tensor) -> Tensor {
        var gi = Tensor.zeros(inputShape)
        gi.withUnsafeMutableBufferPointer { d in
            g.withUnsafeBufferPointer { s in for i in 0..<s.count { d[argmax[i]] += s[i] } }
        }
        return gi
    }
}

final class TestReLU: Layer {
    private var mask: Tensor?
    var parameters: [Parameter] { [] }
    func outputShape(for s: [Int]) throws -> [Int] { s }
    func forward(_ input: Tensor, mode: Mode) -> Tensor {
        var y = input
        y.withUnsafeMutableBufferPointer { b in for i in b.indices where b[i] < 0 { b[i] = 0 } }
        if mode == .training { mask = y }
        return y
    }
    func backward(_ g: Tensor) -> Tensor {
        var out = g
        let m = mask!
        out.withUnsafeMutableBufferPointer { o in
            m.withUnsafeBufferPointer { mb in for i in o.indices where mb[i] <= 0 { o[i] = 0 } }
        }
        return out
    }
}

/// A fully connected layer on [N, F].
final class TestLinear: Layer {
    let weight: Parameter  // [O, F]
    let bias: Parameter
    let inFeatures: Int, outFeatures: Int
    private var input: Tensor?
    init(_ i: Int, _ o: Int, seed: UInt64) {
        inFeatures = i; outFeatures = o
        var g = SeededGenerator(seed: seed)
        let bound = (6 / Float(i)).squareRoot()
        weight = Parameter(name: "weight", value: Tensor.uniform([o, i], low: -bound, high: bound, using: &g))
        bias = Parameter(name: "bias", value: Tensor.zeros([o]))
    }
    var parameters: [Parameter] { [weight, bias] }
    func outputShape(for s: [Int]) throws -> [Int] {
        guard s.count >= 2, s.dropFirst().reduce(1, *) == inFeatures else {
            throw LayerError.incompatibleInput(layer: "TestLinear", shape: s, reason: "expected \(inFeatures) features")
        }
        return [s[0], outFeatures]
    }
    func forward(_ x: Tensor, mode: Mode) -> Tensor {
        let flat = x.unsafeReshaped([x.shape[0], inFeatures])
        if mode == .training { input = flat }
        var y = try! BLAS.matmul(flat, weight.value, transposeB: true)
        y.withUnsafeMutableBufferPointer { yb in
            bias.value.withUnsafeBufferPointer { b in
                for r in 0..<x.shape[0] { for j in 0..<outFeatures { yb[r * outFeatures + j] += b[j] } }
            }
        }
        return y
    }
    func backward(_ g: Tensor) -> Tensor {
        let x = input!
        if !weight.isFrozen {
            let dw = try! BLAS.matmul(g, x, transposeA: true)
            weight.gradient.withUnsafeMutableBufferPointer { d in
                dw.withUnsafeBufferPointer { s in for i in d.indices { d[i] += s[i] } }
            }
            bias.gradient.withUnsafeMutableBufferPointer { d in
                g.withUnsafeBufferPointer { s in
                    for r in 0..<g.shape[0] { for j in 0..<outFeatures { d[j] += s[r * outFeatures + j] } }
                }
            }
        }
        return try! BLAS.matmul(g, weight.value)
    }
}

/// Plain SGD with optional momentum (state slot 0 = velocity).
final class TestSGD: Optimizer {
    var learningRate: Float
    var momentum: Float
    var slots: [ObjectIdentifier: [Tensor]] = [:]
    var stepCount = 0
    init(learningRate: Float, momentum: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
    }
    func apply(to p: Parameter, state: inout [Tensor]) {
        if momentum > 0 {
            if state.isEmpty { state = [Tensor.zeros(p.value.shape)] }
            state[0].withUnsafeMutableBufferPointer { v in
                p.gradient.withUnsafeBufferPointer { g in for i in v.indices { v[i] = momentum * v[i] + g[i] } }
            }
            let v = state[0]
            p.value.withUnsafeMutableBufferPointer { w in
                v.withUnsafeBufferPointer { vb in for i in w.indices { w[i] -= learningRate * vb[i] } }
            }
        } else {
            p.value.withUnsafeMutableBufferPointer { w in
                p.gradient.withUnsafeBufferPointer { g in for i in w.indices { w[i] -= learningRate * g[i] } }
            }
        }
    }
}

struct TestConstantSchedule: LearningRateSchedule {
    var rate: Float
    func learningRate(atStep step: Int, totalSteps: Int) -> Float { rate }
}

struct TestLossError: Error, CustomStringConvertible {
    var description: String
}

/// Triplet loss on cosine distance, one negative per anchor, mean over triplets.
struct TestTripletCosine: ContrastiveLoss {
    var margin: Float
    func validate() throws {
        guard margin >= 0 else { throw TestLossError(description: "margin = \(margin) must be ≥ 0") }
    }
    func evaluate(_ batch: TripletEmbeddings) throws -> LossResult {
        let e = batch.embeddings, l = batch.layout, d = e.shape[1], b = l.batchSize
        var grad = Tensor.zeros(e.shape)
        var total: Float = 0, active = 0, sumP: Float = 0, sumN: Float = 0
        let x = e.scalars
        func row(_ r: Int) -> ArraySlice<Float> { x[(r * d)..<((r + 1) * d)] }
        func cosine(_ a: Int, _ c: Int) -> (dist: Float, ga: [Float], gc: [Float]) {
            let ra = Array(row(a)), rc = Array(row(c))
            var dot: Float = 0, na: Float = 0, nc: Float = 0
            for i in 0..<d { dot += ra[i] * rc[i]; na += ra[i] * ra[i]; nc += rc[i] * rc[i] }
            let la = max(na.squareRoot(), 1e-8), lc = max(nc.squareRoot(), 1e-8)
            let cos = dot / (la * lc)
            // d(1 - cos)/da = -(c/(|a||c|) - cos·a/|a|²)
            let ga = (0..<d).map { -(rc[$0] / (la * lc) - cos * ra[$0] / (la * la)) }
            let gc = (0..<d).map { -(ra[$0] / (la * lc) - cos * rc[$0] / (lc * lc)) }
            return (1 - cos, ga, gc)
        }
        for i in 0..<b {
            let (a, p, n) = (l.anchorRow(i), l.positiveRow(i), l.negativeRow(i, 0))
            let ap = cosine(a, p), an = cosine(a, n)
            sumP += ap.dist; sumN += an.dist
            let v = ap.dist - an.dist + margin
            if !(v <= 0) {  // NaN propagates, as a real loss's would
                total += v; active += 1
                let s = 1 / Float(b)
                grad.withUnsafeMutableBufferPointer { g in
                    for j in 0..<d {
                        g[a * d + j] += s * (ap.ga[j] - an.ga[j])
                        g[p * d + j] += s * ap.gc[j]
                        g[n * d + j] -= s * an.gc[j]
                    }
                }
            }
        }
        return LossResult(
            value: total / Float(b), gradient: grad,
            diagnostics: LossDiagnostics(
                meanPositiveDistance: sumP / Float(b), meanNegativeDistance: sumN / Float(b),
                activeFraction: Float(active) / Float(b), isCollapsed: false))
    }
}

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
                for y in 0..<size { for x in 0..<size {
                    px.append(0.5 + amp * sin(fx * Float(x) + fy * Float(y) + phase))
                } }
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

/// Neighbouring-patch triplets: positive = same image shifted ≤ maxOffset, negative =
/// a random other image.
struct TestNeighborSampler: PatchSampler {
    let data: SyntheticImages
    var maxOffset = 1
    var channels: Int { data.imageShape.channels }

    mutating func sample<G: RandomNumberGenerator>(batchSize: Int, patchSize p: Int, using g: inout G) throws -> PatchTriplets {
        let s = data.imageShape
        guard p <= s.height - 2 * maxOffset else { throw TestLossError(description: "patch \(p) too large") }
        let layout = TripletLayout(batchSize: batchSize, negativesPerAnchor: 1)
        var out = Tensor.uninitialized(shape: [layout.rowCount, s.channels, p, p])
        var sources = [Int](repeating: 0, count: layout.rowCount)
        func copy(image: Int, y: Int, x: Int, row: Int) {
            out.withUnsafeMutableBufferPointer { o in
                for c in 0..<s.channels { for dy in 0..<p { for dx in 0..<p {
                    o[((row * s.channels + c) * p + dy) * p + dx] =
                        data.pixels[((image * s.channels + c) * s.height + y + dy) * s.width + x + dx]
                } } }
            }
            sources[row] = image
        }
        let lo = maxOffset, hi = s.height - p - maxOffset
        for i in 0..<batchSize {
            let img = g.nextInt(below: data.count)
            let y = lo + g.nextInt(below: hi - lo + 1), x = lo + g.nextInt(below: hi - lo + 1)
            copy(image: img, y: y, x: x, row: layout.anchorRow(i))
            let dy = g.nextInt(below: 2 * maxOffset + 1) - maxOffset, dx = g.nextInt(below: 2 * maxOffset + 1) - maxOffset
            copy(image: img, y: y + dy, x: x + dx, row: layout.positiveRow(i))
            var other = g.nextInt(below: data.count - 1)
            if other >= img { other += 1 }
            copy(image: other, y: g.nextInt(below: s.height - p + 1), x: g.nextInt(below: s.width - p + 1),
                 row: layout.negativeRow(i, 0))
        }
        return PatchTriplets(patches: out, layout: layout, sourceImages: sources)
    }
}

/// Identity in the forward pass that keeps a running mean of its input per channel as a
/// buffer, like BatchNorm's running statistics: checkpoints must carry it.
final class TestRunningMean: Layer {
    let runningMean: Parameter
    init(channels: Int) { runningMean = Parameter(name: "running_mean", value: Tensor.zeros([channels]), isFrozen: true) }
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
    var sampler: TestNeighborSampler
    let classes: Int
    var head: TestLinear?
    init(sampler: TestNeighborSampler, classes: Int) {
        self.sampler = sampler
        self.classes = classes
    }
    var inputChannels: Int? { sampler.channels }
    var auxiliaryParameters: [Parameter] { head?.parameters ?? [] }
    func prepare(embeddingFeatures: Int, using generator: inout SeededGenerator) throws {
        head = TestLinear(embeddingFeatures, classes, seed: generator.next())
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
            let label = sampler.data.labels[t.sourceImages[r]]
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
