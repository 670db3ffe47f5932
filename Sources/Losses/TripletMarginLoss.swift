import TensorCore

/// How ``TripletMarginLoss`` averages the per-triplet hinge losses.
public enum TripletReduction: Sendable, Equatable {
    /// Sum over all triplets divided by the number of triplets.
    case mean
    /// Sum divided by the number of *active* triplets (non-zero hinge); 0 when none is
    /// active. Keeps the gradient from fading as most triplets become easy.
    case meanOverActive
}

/// The triplet margin loss: reduce over triplets of max(0, d(a, p) − d(a, n) + margin).
///
/// Triplets come from the batch layout: with K stored negatives per anchor, every
/// (aᵢ, pᵢ, nᵢⱼ) is a triplet (B · K in all). With a ``NegativeMiner`` the stored negatives
/// become ordinary candidates: the miner picks one negative per anchor among all rows whose
/// source image differs from the anchor's (see ``TripletEmbeddings/sourceImages``; when it
/// is nil, anchor i, positive i and anchor i's stored negatives count as source i), never
/// the anchor's own positive, and those B triplets are the loss.
///
/// Diagnostics: mean d(a, p) over anchors, mean d(a, n) over triplets, the fraction of
/// triplets with a non-zero hinge, and `isCollapsed` when every triplet is active and the
/// two means differ by less than 1e-4 · max(1, margin) — the loss sits at the margin.
public struct TripletMarginLoss: ContrastiveLoss, Sendable {
    public let distance: any Distance
    public let margin: Float
    public let reduction: TripletReduction
    public let miner: (any NegativeMiner)?

    /// The miner's generator, when it owns one.
    public var ownedGenerators: [(name: String, owner: any GeneratorOwning)] {
        (miner as? any GeneratorOwning).map { [("miner", $0)] } ?? []
    }

    public init(
        distance: any Distance = CosineDistance(), margin: Float = 0.5,
        reduction: TripletReduction = .mean, miner: (any NegativeMiner)? = nil
    ) {
        self.distance = distance
        self.margin = margin
        self.reduction = reduction
        self.miner = miner
    }

    /// - Throws: ``LossError/invalidHyperparameter(name:value:reason:)`` for a negative or
    ///   non-finite margin.
    public func validate() throws {
        guard margin.isFinite, margin >= 0 else {
            throw LossError.invalidHyperparameter(name: "margin", value: margin, reason: "must be finite and ≥ 0")
        }
    }

    public func evaluate(_ batch: TripletEmbeddings) throws -> LossResult {
        try validate()
        let v = try ValidatedBatch(batch)
        let b = v.batchSize, d = v.dimension
        // Triplet t of anchor i uses negative row negatives[i·perAnchor + j].
        let perAnchor: Int
        var negatives: [Int]
        if let miner {
            perAnchor = 1
            negatives = try mine(batch, v, miner)
        } else {
            guard v.negativesPerAnchor > 0 else {
                throw LossError.noNegatives(negativesPerAnchor: v.negativesPerAnchor)
            }
            perAnchor = v.negativesPerAnchor
            negatives = Array(2 * b..<v.rowCount)
        }
        let tripletCount = b * perAnchor
        var gradient = Tensor.zeros(batch.embeddings.shape)
        var hinge = [Float](repeating: 0, count: tripletCount)
        var sumAP = 0.0, sumAN = 0.0, sumLoss = 0.0
        var active = 0
        // Finite embeddings can still overflow a distance (squared Euclidean of 1e20s);
        // the loss then has no meaning, so it throws instead of returning a hinge of NaN.
        var nonFiniteAnchor: Int?

        batch.embeddings.withUnsafeBufferPointer { eb in
            let e = eb.baseAddress!
            hinge.withUnsafeMutableBufferPointer { h in
                negatives.withUnsafeBufferPointer { neg in
                    // Pass 1: values.
                    for i in 0..<b {
                        let a = e + i * d
                        let dap = distance.distance(a, e + (b + i) * d, dimension: d)
                        sumAP += Double(dap)
                        for j in 0..<perAnchor {
                            let t = i * perAnchor + j
                            let dan = distance.distance(a, e + neg[t] * d, dimension: d)
                            sumAN += Double(dan)
                            let x = dap - dan + margin
                            h[t] = x
                            if x > 0 { active += 1; sumLoss += Double(x) }
                            if !x.isFinite && nonFiniteAnchor == nil { nonFiniteAnchor = i }
                        }
                    }
                    if nonFiniteAnchor != nil { return }
                    // Pass 2: gradients of the active hinges; d(a, p) once per anchor.
                    let denominator = reduction == .mean ? tripletCount : active
                    guard active > 0, denominator > 0 else { return }
                    let w = 1 / Float(denominator)
                    gradient.withUnsafeMutableBufferPointer { gb in
                        let g = gb.baseAddress!
                        for i in 0..<b {
                            let a = e + i * d, ga = g + i * d
                            var activeHere = 0
                            for j in 0..<perAnchor where h[i * perAnchor + j] > 0 {
                                let n = neg[i * perAnchor + j]
                                distance.accumulateGradient(
                                    a, e + n * d, dimension: d, upstream: -w, gradA: ga, gradB: g + n * d)
                                activeHere += 1
                            }
                            if activeHere > 0 {
                                distance.accumulateGradient(
                                    a, e + (b + i) * d, dimension: d, upstream: w * Float(activeHere),
                                    gradA: ga, gradB: g + (b + i) * d)
                            }
                        }
                    }
                }
            }
        }

        if let row = nonFiniteAnchor {
            throw LossError.nonFinite(what: "triplet distance (overflow) at anchor", row: row)
        }
        let value: Double
        switch reduction {
        case .mean: value = sumLoss / Double(tripletCount)
        case .meanOverActive: value = active > 0 ? sumLoss / Double(active) : 0
        }
        let meanAP = Float(sumAP / Double(b)), meanAN = Float(sumAN / Double(tripletCount))
        let collapsed = active == tripletCount && abs(meanAP - meanAN) < 1e-4 * Swift.max(1, margin)
        return LossResult(
            value: Float(value), gradient: gradient,
            diagnostics: LossDiagnostics(
                meanPositiveDistance: meanAP, meanNegativeDistance: meanAN,
                activeFraction: Float(active) / Float(tripletCount), isCollapsed: collapsed))
    }

    /// Builds the mining problem (one distance matrix anchors × all rows) and checks the
    /// miner's answer.
    private func mine(_ batch: TripletEmbeddings, _ v: ValidatedBatch, _ miner: any NegativeMiner) throws -> [Int] {
        let b = v.batchSize, r = v.rowCount, d = v.dimension
        var dap = [Float](repeating: 0, count: b)
        var matrix = [Float](repeating: 0, count: b * r)
        var allowed = [Bool](repeating: false, count: b * r)
        let sources = batch.sourceImages
        batch.embeddings.withUnsafeBufferPointer { eb in
            let e = eb.baseAddress!
            for i in 0..<b { dap[i] = distance.distance(e + i * d, e + (b + i) * d, dimension: d) }
            matrix.withUnsafeMutableBufferPointer { m in
                distance.distances(from: e, count: b, to: e, count: r, dimension: d, into: m.baseAddress!)
            }
        }
        var rowSource = [Int](repeating: 0, count: r)
        for c in 0..<r { rowSource[c] = v.source(ofRow: c, sources) }
        let lonely: Int? = rowSource.withUnsafeBufferPointer { src in
            allowed.withUnsafeMutableBufferPointer { ok in
                for i in 0..<b {
                    let s = src[i]
                    var count = 0
                    // The anchor's own row and its positive never serve as its negative, even
                    // when the sampler gives the positive another source image (frame pairs).
                    for c in 0..<r {
                        let differs = src[c] != s && c != i && c != b + i
                        ok[i * r + c] = differs
                        count += differs ? 1 : 0
                    }
                    if count == 0 { return i }
                }
                return nil
            }
        }
        if let i = lonely { throw LossError.noNegativeCandidates(anchor: i) }
        let problem = try MiningProblem(
            anchorPositiveDistances: dap, distances: matrix, allowed: allowed, candidateCount: r, margin: margin)
        let picks = miner.selectNegatives(problem)
        var out = [Int](repeating: 0, count: b)
        for i in 0..<b {
            guard i < picks.count else { throw LossError.invalidMinerChoice(anchor: i, row: -1) }
            guard let c = picks[i] else { throw LossError.noNegativeCandidates(anchor: i) }
            guard c >= 0, c < r, allowed[i * r + c] else { throw LossError.invalidMinerChoice(anchor: i, row: c) }
            out[i] = c
        }
        return out
    }
}
