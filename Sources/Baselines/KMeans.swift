import TensorCore
import Training

/// Lloyd's k-means on the rows of an `[N, D]` tensor.
///
/// Each iteration assigns every row to its nearest centroid, with the squared distances
/// `‖x‖² − 2 x·c + ‖c‖²` from **one** SGEMM per block of rows (blocks of
/// ``rowsPerBlock`` bound the `[rows, K]` product's memory), then moves each centroid to
/// the mean of its rows (sums in Double). It stops early when no assignment changes.
///
/// Empty clusters: Coates' reference code zeroes them; here an empty cluster is re-seeded
/// with a data row drawn with probability proportional to its squared distance to its current
/// centroid (k-means++-style), so it moves to an under-served region and never lands on a
/// row its centroid already covers exactly. Only when every row already coincides with a
/// centroid (fewer distinct rows than clusters) does it fall back to a uniform random row.
/// All random choices use the generator passed in.
public struct KMeans: Sendable {
    /// How the initial centroids are chosen.
    public enum Initialization: String, Sendable, Equatable, CaseIterable {
        /// `K` distinct rows drawn uniformly (Forgy).
        case randomRows
        /// k-means++ (Arthur & Vassilvitskii 2007): each next centroid is a row drawn with
        /// probability proportional to its squared distance to the nearest chosen one.
        case plusPlus
    }

    /// The fitted clustering.
    public struct Result: Sendable {
        /// `[K, D]` centroids.
        public var centroids: Tensor
        /// The nearest centroid of every row (for the final centroids).
        public var assignments: [Int]
        /// Rows per centroid (for the final centroids).
        public var counts: [Int]
        /// Σ of squared distances of every row to its nearest final centroid.
        public var inertia: Double
        /// Lloyd iterations (assign + update) that ran.
        public var iterationsRun: Int
        /// Whether the assignments stopped changing before the iteration limit.
        public var converged: Bool
        /// How many times an empty cluster was re-seeded.
        public var reseeded: Int
    }

    /// Number of clusters K.
    public let clusters: Int
    /// Maximum Lloyd iterations.
    public let iterations: Int
    public let initialization: Initialization
    /// Rows per distance GEMM (memory bound: `rowsPerBlock · K` floats).
    public var rowsPerBlock = 4096

    /// - Throws: ``BaselineError/invalidOption(name:value:reason:)`` when `clusters < 1` or
    ///   `iterations < 1`.
    public init(clusters: Int, iterations: Int = 10, initialization: Initialization = .randomRows) throws {
        guard clusters >= 1 else {
            throw BaselineError.invalidOption(name: "k-means clusters", value: "\(clusters)", reason: "must be ≥ 1")
        }
        guard iterations >= 1 else {
            throw BaselineError.invalidOption(name: "k-means iterations", value: "\(iterations)", reason: "must be ≥ 1")
        }
        self.clusters = clusters
        self.iterations = iterations
        self.initialization = initialization
    }

    /// Clusters the rows of `data` `[N, D]`.
    ///
    /// With a `communicator` of several ranks, every rank passes the same `data` and the
    /// same generator state; each assigns its own contiguous block of rows, and the
    /// per-cluster sums and counts are all-reduced, so every rank ends with the same centroids
    /// (those of one process up to the order of the sums).
    ///
    /// - Throws: ``BaselineError`` when `data` is not rank 2 with D ≥ 1, has fewer rows than
    ///   clusters, or holds a non-finite value (named by row and column); ``CommunicatorError``.
    public func fit<G: RandomNumberGenerator>(
        _ data: Tensor, communicator: any Communicator = SingleProcessCommunicator(), using generator: inout G
    ) throws -> Result {
        try Self.validate(data, what: "k-means data")
        let n = data.shape[0], d = data.shape[1], k = clusters
        guard n >= k else { throw BaselineError.tooFewRows(rows: n, clusters: k) }
        let rowNorms = Self.squaredNorms(data)
        var centroids = initialCentroids(data, rowNorms: rowNorms, using: &generator)
        let mine = communicator.share(of: n)
        var assignments = [Int](repeating: -1, count: n)
        var distances = [Float](repeating: 0, count: n)
        var reseeded = 0, iterationsRun = 0, converged = false
        var sums = [Double](repeating: 0, count: k * d)
        var counts = [Double](repeating: 0, count: k)
        for _ in 0..<iterations {
            var changed = [
                Double(assign(
                    data, rows: mine, rowNorms: rowNorms, centroids: centroids, assignments: &assignments,
                    distances: &distances))
            ]
            try communicator.allReduce(&changed, .sum)
            if changed[0] == 0 && iterationsRun > 0 { converged = true; break }
            iterationsRun += 1
            // Update: every centroid to the mean of its rows.
            for i in sums.indices { sums[i] = 0 }
            for j in 0..<k { counts[j] = 0 }
            data.withUnsafeBufferPointer { x in
                sums.withUnsafeMutableBufferPointer { s in
                    for r in mine {
                        let a = assignments[r]
                        counts[a] += 1
                        let src = x.baseAddress! + r * d, dst = s.baseAddress! + a * d
                        for i in 0..<d { dst[i] += Double(src[i]) }
                    }
                }
            }
            try communicator.allReduce(&sums, .sum)
            try communicator.allReduce(&counts, .sum)
            centroids.withUnsafeMutableBufferPointer { c in
                for j in 0..<k where counts[j] > 0 {
                    let inv = 1 / counts[j]
                    for i in 0..<d { c[j * d + i] = Float(sums[j * d + i] * inv) }
                }
            }
            guard counts.contains(0) else { continue }
            // Re-seed empty clusters from rows far from their centroid (every rank needs
            // every row's distance to draw the same rows).
            try Self.gather(&distances, mine: mine, communicator)
            for j in 0..<k where counts[j] == 0 {
                let r = Self.sampleProportional(distances, using: &generator)
                data.withUnsafeBufferPointer { x in
                    centroids.withUnsafeMutableBufferPointer { c in
                        (c.baseAddress! + j * d).update(from: x.baseAddress! + r * d, count: d)
                    }
                }
                distances[r] = 0  // do not hand the same row to two empty clusters
                reseeded += 1
            }
        }
        if !converged {
            _ = assign(data, rows: mine, rowNorms: rowNorms, centroids: centroids, assignments: &assignments,
                       distances: &distances)
        }
        try Self.gather(&distances, mine: mine, communicator)
        if communicator.size > 1 {
            var gathered = assignments.enumerated().map { mine.contains($0.offset) ? Double($0.element) : 0 }
            try communicator.allReduce(&gathered, .sum)
            assignments = gathered.map { Int($0) }
        }
        var finalCounts = [Int](repeating: 0, count: k)
        for a in assignments { finalCounts[a] += 1 }
        let inertia = distances.reduce(0.0) { $0 + Double($1) }
        return Result(
            centroids: centroids, assignments: assignments, counts: finalCounts, inertia: inertia,
            iterationsRun: iterationsRun, converged: converged, reseeded: reseeded)
    }

    /// Every rank's entries of `values` (rank r owns the rows of its share) on every rank.
    static func gather(_ values: inout [Float], mine: Range<Int>, _ communicator: any Communicator) throws {
        guard communicator.size > 1 else { return }
        for i in values.indices where !mine.contains(i) { values[i] = 0 }
        try communicator.allReduce(&values, .sum)
    }

    /// The nearest centroid of every row of `data` `[N, D]` and its squared distance.
    /// - Throws: ``BaselineError`` for non-finite data or mismatched widths.
    public static func assign(
        _ data: Tensor, to centroids: Tensor
    ) throws -> (assignments: [Int], squaredDistances: [Float]) {
        try validate(data, what: "k-means data")
        try validate(centroids, what: "centroids")
        guard centroids.shape[1] == data.shape[1] else {
            throw BaselineError.shapeMismatch(
                what: "centroid width", expected: "\(data.shape[1]) (the data's)", got: "\(centroids.shape[1])")
        }
        let n = data.shape[0]
        var assignments = [Int](repeating: -1, count: n), distances = [Float](repeating: 0, count: n)
        let kmeans = try KMeans(clusters: centroids.shape[0])
        _ = kmeans.assign(
            data, rows: 0..<n, rowNorms: squaredNorms(data), centroids: centroids, assignments: &assignments,
            distances: &distances)
        return (assignments, distances)
    }

    // MARK: - Internals

    static func validate(_ data: Tensor, what: String) throws {
        guard data.shape.count == 2, data.shape[0] >= 1, data.shape[1] >= 1 else {
            throw BaselineError.shapeMismatch(what: what, expected: "[N ≥ 1, D ≥ 1]", got: "\(data.shape)")
        }
        let d = data.shape[1]
        let bad: Int? = data.withUnsafeBufferPointer { b in
            for i in 0..<b.count where !b[i].isFinite { return i }
            return nil
        }
        if let bad { throw BaselineError.nonFiniteData(what: what, row: bad / d, column: bad % d) }
    }

    static func squaredNorms(_ data: Tensor) -> [Float] {
        let n = data.shape[0], d = data.shape[1]
        var out = [Float](repeating: 0, count: n)
        data.withUnsafeBufferPointer { x in
            for r in 0..<n {
                var s: Float = 0
                for i in 0..<d { let v = x[r * d + i]; s += v * v }
                out[r] = s
            }
        }
        return out
    }

    /// Assigns `rows` of `data` to their nearest centroid; returns how many assignments changed.
    func assign(
        _ data: Tensor, rows range: Range<Int>, rowNorms: [Float], centroids: Tensor, assignments: inout [Int],
        distances: inout [Float]
    ) -> Int {
        let n = range.upperBound, d = data.shape[1], k = centroids.shape[0]
        guard !range.isEmpty else { return 0 }
        let centroidNorms = Self.squaredNorms(centroids)
        let block = Swift.max(1, Swift.min(rowsPerBlock, range.count))
        var product = [Float](repeating: 0, count: block * k)
        var changed = 0
        data.withUnsafeBufferPointer { x in
            centroids.withUnsafeBufferPointer { c in
                product.withUnsafeMutableBufferPointer { p in
                    var start = range.lowerBound
                    while start < n {
                        let rows = Swift.min(block, n - start)
                        // [rows, D] × [K, D]ᵀ = [rows, K] dot products.
                        BLAS.gemm(
                            transposeA: false, transposeB: true, m: rows, n: k, k: d, alpha: 1,
                            a: x.baseAddress! + start * d, lda: d, b: c.baseAddress!, ldb: d,
                            beta: 0, c: p.baseAddress!, ldc: k)
                        for r in 0..<rows {
                            let dots = p.baseAddress! + r * k
                            var best = 0
                            var bestValue = centroidNorms[0] - 2 * dots[0]
                            for j in 1..<k {
                                let v = centroidNorms[j] - 2 * dots[j]
                                if v < bestValue { bestValue = v; best = j }
                            }
                            let row = start + r
                            if assignments[row] != best { changed += 1; assignments[row] = best }
                            distances[row] = Swift.max(0, rowNorms[row] + bestValue)
                        }
                        start += rows
                    }
                }
            }
        }
        return changed
    }

    func initialCentroids<G: RandomNumberGenerator>(
        _ data: Tensor, rowNorms: [Float], using generator: inout G
    ) -> Tensor {
        let n = data.shape[0], d = data.shape[1], k = clusters
        var chosen: [Int] = []
        chosen.reserveCapacity(k)
        switch initialization {
        case .randomRows:
            // Partial Fisher–Yates over the row indices: K distinct rows.
            var indices = Array(0..<n)
            for i in 0..<k {
                let j = i + generator.nextInt(below: n - i)
                indices.swapAt(i, j)
                chosen.append(indices[i])
            }
        case .plusPlus:
            chosen.append(generator.nextInt(below: n))
            var nearest = [Float](repeating: .infinity, count: n)
            data.withUnsafeBufferPointer { x in
                for _ in 1..<Swift.max(k, 1) {
                    let c = x.baseAddress! + chosen[chosen.count - 1] * d
                    for r in 0..<n {
                        let row = x.baseAddress! + r * d
                        var s: Float = 0
                        for i in 0..<d { let v = row[i] - c[i]; s += v * v }
                        if s < nearest[r] { nearest[r] = s }
                    }
                    for r in chosen { nearest[r] = 0 }
                    chosen.append(Self.sampleProportional(nearest, using: &generator))
                }
            }
        }
        var centroids = Tensor.uninitialized(shape: [k, d])
        data.withUnsafeBufferPointer { x in
            centroids.withUnsafeMutableBufferPointer { c in
                for (j, r) in chosen.enumerated() {
                    (c.baseAddress! + j * d).update(from: x.baseAddress! + r * d, count: d)
                }
            }
        }
        return centroids
    }

    /// A row index drawn with probability ∝ `weights` (uniform when they sum to zero).
    static func sampleProportional<G: RandomNumberGenerator>(_ weights: [Float], using generator: inout G) -> Int {
        var total = 0.0
        for w in weights { total += Double(w) }
        guard total > 0 else { return generator.nextInt(below: weights.count) }
        let target = Double(generator.nextUniform()) * total
        var acc = 0.0
        var last = 0
        for (i, w) in weights.enumerated() where w > 0 {
            acc += Double(w)
            last = i
            if acc > target { return i }
        }
        return last
    }
}
