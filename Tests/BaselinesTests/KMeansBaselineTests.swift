import Foundation
import Layerwise
import LayerwiseTestSupport
import XCTest

/// `clusters` Gaussian blobs (σ = 0.1) around centres 10 apart, `perCluster` rows each,
/// rows shuffled; returns the data and each row's true blob.
private func blobs(clusters: Int, perCluster: Int, dimension: Int, seed: UInt64) -> (data: Tensor, labels: [Int]) {
    var rng = SeededGenerator(seed: seed)
    var centres = [[Float]]()
    for c in 0..<clusters {
        var v = [Float](repeating: 0, count: dimension)
        v[c % dimension] = 10 * Float(c / dimension + 1)
        if c >= dimension { v[(c + 1) % dimension] = -10 }
        centres.append(v)
    }
    var order = Array(0..<(clusters * perCluster))
    order.shuffle(using: &rng)
    var values = [Float](), labels = [Int]()
    for i in order {
        let c = i / perCluster
        labels.append(c)
        for j in 0..<dimension { values.append(centres[c][j] + rng.nextNormal(standardDeviation: 0.1)) }
    }
    return (try! Tensor(shape: [clusters * perCluster, dimension], values: values), labels)
}

/// Every found cluster holds rows of one true blob only, and every blob is one cluster.
private func purity(_ assignments: [Int], _ labels: [Int]) -> (pure: Bool, clustersUsed: Int) {
    var blobOf = [Int: Int](), clusterOf = [Int: Int]()
    for (a, l) in zip(assignments, labels) {
        if let b = blobOf[a], b != l { return (false, 0) }
        if let c = clusterOf[l], c != a { return (false, 0) }
        blobOf[a] = l
        clusterOf[l] = a
    }
    return (true, blobOf.count)
}

/// Small random RGB dataset with smooth structure (blurred noise), values 0…255.
private func syntheticDataset(count: Int, size: Int, seed: UInt64) throws -> InMemoryImageDataset {
    var rng = SeededGenerator(seed: seed)
    var pixels = [UInt8]()
    for _ in 0..<count {
        let fx = rng.nextUniform(0.2, 1.5), fy = rng.nextUniform(0.2, 1.5), phase = rng.nextUniform(0, 6)
        for c in 0..<3 {
            for y in 0..<size {
                for x in 0..<size {
                    let v =
                        0.5 + 0.4 * sin(fx * Float(x) + fy * Float(y) + phase + Float(c)) + rng.nextUniform(-0.1, 0.1)
                    pixels.append(UInt8(max(0, min(255, v * 255))))
                }
            }
        }
    }
    return try InMemoryImageDataset(pixels: pixels, shape: ImageShape(channels: 3, height: size, width: size))
}

final class KMeansBaselineTests: XCTestCase {
    // MARK: - KMeans

    func testRecoversWellSeparatedClustersWithBothInitialisations() throws {
        let (data, labels) = blobs(clusters: 6, perCluster: 40, dimension: 5, seed: 1)
        for initialization in KMeans.Initialization.allCases {
            var rng = SeededGenerator(seed: 2)
            // Lloyd from random rows can merge blobs; a few restarts are the standard remedy,
            // and the lowest inertia must then be the true partition.
            var best: KMeans.Result?
            for _ in 0..<5 {
                let r = try KMeans(clusters: 6, iterations: 20, initialization: initialization).fit(data, using: &rng)
                if best == nil || r.inertia < best!.inertia { best = r }
            }
            let result = try XCTUnwrap(best)
            let (pure, used) = purity(result.assignments, labels)
            XCTAssertTrue(pure, "\(initialization): clusters mix blobs")
            XCTAssertEqual(used, 6, "\(initialization)")
            XCTAssertEqual(result.counts, [Int](repeating: 40, count: 6), "\(initialization)")
            XCTAssertTrue(result.converged, "\(initialization)")
            // 240 rows × 5 dims × σ² = 0.01 ⇒ inertia ≈ 12.
            XCTAssertLessThan(result.inertia, 20, "\(initialization)")
            XCTAssertEqual(result.centroids.shape, [6, 5])
        }
    }

    func testPlusPlusFindsSeparatedClustersInOneRun() throws {
        // k-means++ spreads the seeds: with blobs this far apart one run suffices.
        let (data, labels) = blobs(clusters: 4, perCluster: 50, dimension: 3, seed: 3)
        var rng = SeededGenerator(seed: 4)
        let result = try KMeans(clusters: 4, initialization: .plusPlus).fit(data, using: &rng)
        XCTAssertEqual(purity(result.assignments, labels).pure, true)
        XCTAssertEqual(purity(result.assignments, labels).clustersUsed, 4)
    }

    func testCentroidsAreClusterMeansAndAssignmentsNearest() throws {
        let (data, _) = blobs(clusters: 3, perCluster: 30, dimension: 4, seed: 5)
        var rng = SeededGenerator(seed: 6)
        let r = try KMeans(clusters: 3, iterations: 30, initialization: .plusPlus).fit(data, using: &rng)
        XCTAssertTrue(r.converged)
        let d = 4
        for j in 0..<3 {
            let members = (0..<90).filter { r.assignments[$0] == j }
            for i in 0..<d {
                let mean = members.reduce(0.0) { $0 + Double(data[flat: $1 * d + i]) } / Double(members.count)
                XCTAssertEqual(Double(r.centroids[flat: j * d + i]), mean, accuracy: 1e-4)
            }
        }
        // Brute-force nearest centroid and inertia.
        var inertia = 0.0
        for row in 0..<90 {
            let dist = (0..<3).map { j in
                (0..<d).reduce(0.0) { acc, i in
                    let t = Double(data[flat: row * d + i] - r.centroids[flat: j * d + i]); return acc + t * t
                }
            }
            XCTAssertEqual(r.assignments[row], dist.firstIndex(of: dist.min()!)!)
            inertia += dist.min()!
        }
        XCTAssertEqual(r.inertia, inertia, accuracy: 1e-3 * inertia)
        let (again, sq) = try KMeans.assign(data, to: r.centroids)
        XCTAssertEqual(again, r.assignments)
        XCTAssertEqual(sq.count, 90)
    }

    func testBlockedDistancesMatchOneBlock() throws {
        let (data, _) = blobs(clusters: 5, perCluster: 20, dimension: 3, seed: 7)
        var a = SeededGenerator(seed: 8), b = SeededGenerator(seed: 8)
        let whole = try KMeans(clusters: 5).fit(data, using: &a)
        var blocked = try KMeans(clusters: 5)
        blocked.rowsPerBlock = 7
        let small = try blocked.fit(data, using: &b)
        XCTAssertEqual(whole.assignments, small.assignments)
        XCTAssertTrue(whole.centroids.isBitIdentical(to: small.centroids))
    }

    func testDeterministicWithASeed() throws {
        let (data, _) = blobs(clusters: 8, perCluster: 25, dimension: 6, seed: 9)
        for initialization in KMeans.Initialization.allCases {
            var a = SeededGenerator(seed: 10), b = SeededGenerator(seed: 10), c = SeededGenerator(seed: 11)
            let km = try KMeans(clusters: 8, iterations: 3, initialization: initialization)
            let r1 = try km.fit(data, using: &a), r2 = try km.fit(data, using: &b), r3 = try km.fit(data, using: &c)
            XCTAssertTrue(r1.centroids.isBitIdentical(to: r2.centroids))
            XCTAssertEqual(r1.assignments, r2.assignments)
            XCTAssertEqual(a, b, "generators advanced identically")
            XCTAssertFalse(r1.centroids.isBitIdentical(to: r3.centroids), "another seed gives another start")
        }
    }

    func testEmptyClustersAreReseeded() throws {
        // 100 copies of A and one each of B and C: random initial rows are (almost surely)
        // all copies of A, so two clusters start empty. Re-seeding must find B and C.
        let a: [Float] = [0, 0], b: [Float] = [5, 0], c: [Float] = [0, 5]
        var values = [Float]()
        for _ in 0..<100 { values += a }
        values += b + c
        let data = try Tensor(shape: [102, 2], values: values)
        var rng = SeededGenerator(seed: 12)
        let r = try KMeans(clusters: 3, iterations: 10).fit(data, using: &rng)
        XCTAssertGreaterThan(r.reseeded, 0)
        XCTAssertTrue(r.centroids.isFinite)
        XCTAssertEqual(r.counts.sorted(), [1, 1, 100])
        XCTAssertEqual(r.inertia, 0, accuracy: 1e-6)
        let found = Set((0..<3).map { [r.centroids[flat: 2 * $0], r.centroids[flat: 2 * $0 + 1]] })
        XCTAssertEqual(found, Set([a, b, c]))
    }

    func testFewerDistinctRowsThanClustersStaysFinite() throws {
        // Only 2 distinct values for 3 clusters: one cluster must stay empty, without NaN.
        let data = try Tensor(shape: [6, 1], values: [1, 1, 1, 2, 2, 2])
        var rng = SeededGenerator(seed: 13)
        let r = try KMeans(clusters: 3, iterations: 5).fit(data, using: &rng)
        XCTAssertTrue(r.centroids.isFinite)
        XCTAssertEqual(r.counts.reduce(0, +), 6)
        XCTAssertEqual(r.inertia, 0, accuracy: 1e-6)
    }

    func testErrors() throws {
        XCTAssertThrowsError(try KMeans(clusters: 0)) { error in
            XCTAssertEqual(
                error as? BaselineError, .invalidOption(name: "k-means clusters", value: "0", reason: "must be ≥ 1"))
        }
        XCTAssertThrowsError(try KMeans(clusters: 2, iterations: 0)) { error in
            guard case BaselineError.invalidOption(name: "k-means iterations", _, _) = error else {
                return XCTFail("\(error)")
            }
        }
        var rng = SeededGenerator(seed: 14)
        let three = try Tensor(shape: [3, 2], values: [0, 0, 1, 1, 2, 2])
        XCTAssertThrowsError(try KMeans(clusters: 4).fit(three, using: &rng)) { error in
            XCTAssertEqual(error as? BaselineError, .tooFewRows(rows: 3, clusters: 4))
        }
        var nan = three
        nan[flat: 3] = .nan
        XCTAssertThrowsError(try KMeans(clusters: 2).fit(nan, using: &rng)) { error in
            XCTAssertEqual(error as? BaselineError, .nonFiniteData(what: "k-means data", row: 1, column: 1))
            XCTAssertTrue("\(error)".contains("row 1, column 1"))
        }
        XCTAssertThrowsError(try KMeans(clusters: 1).fit(Tensor.zeros([6]), using: &rng)) { error in
            guard case BaselineError.shapeMismatch = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try KMeans.assign(three, to: .zeros([2, 3]))) { error in
            guard case BaselineError.shapeMismatch = error else { return XCTFail("\(error)") }
        }
    }

    // MARK: - KMeansBaseline

    func testFitOnSyntheticDatasetAndBothEncoders() throws {
        let dataset = try syntheticDataset(count: 30, size: 10, seed: 15)
        for normalization in [nil, ChannelNormalization.fit(dataset)] {
            var rng = SeededGenerator(seed: 16)
            let baseline = try KMeansBaseline.fit(
                dataset: dataset, filters: 8, kernelSize: 4, patches: 2_000, iterations: 5,
                normalization: normalization, using: &rng)
            XCTAssertEqual(baseline.centroids.shape, [8, 48])
            XCTAssertEqual(baseline.whitening.dimension, 48)
            XCTAssertTrue(baseline.centroids.isFinite)
            XCTAssertNotNil(baseline.inertia)
            XCTAssertEqual(
                baseline.contrastEpsilon,
                KMeansBaseline.effectiveContrastEpsilon(10, normalization: normalization))
            let batch = try makeBatch(from: dataset, indices: 0..<3, normalization: normalization, using: &rng)
            let encoder = try baseline.encoder()
            let features = encoder.forward(batch.images, mode: .inference)
            XCTAssertEqual(features.shape, [3, 8, 7, 7])
            XCTAssertTrue(features.isFinite)
            XCTAssertTrue(features.scalars.contains { $0 > 0 })
            let conv = try baseline.convolution()
            XCTAssertEqual(conv.forward(batch.images, mode: .inference).shape, [3, 8, 7, 7])
            XCTAssertEqual(baseline.convolutionState()["stage1.0.weight"]?.shape, [8, 3, 4, 4])
            XCTAssertEqual(baseline.convolutionState(prefix: "stage2.1")["stage2.1.bias"]?.shape, [8])
        }
        // Determinism of the whole pipeline.
        var a = SeededGenerator(seed: 17), b = SeededGenerator(seed: 17)
        let f1 = try KMeansBaseline.fit(dataset: dataset, filters: 4, kernelSize: 3, patches: 500, using: &a)
        let f2 = try KMeansBaseline.fit(dataset: dataset, filters: 4, kernelSize: 3, patches: 500, using: &b)
        XCTAssertTrue(f1.centroids.isBitIdentical(to: f2.centroids))
    }

    func testCentroidsHaveTheScaleOfWhitenedPatches() throws {
        // The fitted centroids live in whitened space: their scale is that of whitened
        // contrast-normalised patches (per-dimension variance ≈ 1), not of raw pixels.
        let dataset = try syntheticDataset(count: 40, size: 8, seed: 18)
        var rng = SeededGenerator(seed: 19)
        let baseline = try KMeansBaseline.fit(dataset: dataset, filters: 6, kernelSize: 3, patches: 3_000, using: &rng)
        var meanNorm: Float = 0
        for j in 0..<6 {
            var s: Float = 0
            for i in 0..<27 { s += baseline.centroids[flat: j * 27 + i] * baseline.centroids[flat: j * 27 + i] }
            meanNorm += s.squareRoot() / 6
        }
        XCTAssertGreaterThan(meanNorm, 0.5)
        XCTAssertLessThan(meanNorm, 4 * Float(27).squareRoot())
    }

    func testFoldedConvolutionIsTheDotProductEncoding() throws {
        let dataset = try syntheticDataset(count: 20, size: 9, seed: 20)
        var rng = SeededGenerator(seed: 21)
        let baseline = try KMeansBaseline.fit(dataset: dataset, filters: 5, kernelSize: 3, patches: 1_000, using: &rng)
        let conv = try baseline.convolution()
        XCTAssertEqual(conv.weight.value.shape, [5, 3, 3, 3])
        let x = try makeBatch(from: dataset, indices: [2, 7], using: &rng).images
        let y = conv.forward(x, mode: .inference)
        XCTAssertEqual(y.shape, [2, 5, 7, 7])
        let d = 27, mu = baseline.whitening.mean, w = baseline.whitening.matrix
        for (n, oy, ox) in [(0, 0, 0), (0, 3, 5), (1, 6, 6), (1, 2, 1)] {
            // c_k · ((x − μ) · W), computed naively in Double.
            var patch = [Double]()
            for c in 0..<3 {
                for ky in 0..<3 {
                    for kx in 0..<3 { patch.append(Double(x[flat: ((n * 3 + c) * 9 + oy + ky) * 9 + ox + kx])) }
                }
            }
            let white = (0..<d).map { j in
                (0..<d).reduce(0.0) { $0 + (patch[$1] - Double(mu[flat: $1])) * Double(w[flat: $1 * d + j]) }
            }
            for k in 0..<5 {
                let expected = (0..<d).reduce(0.0) { $0 + white[$1] * Double(baseline.centroids[flat: k * d + $1]) }
                let got = Double(y[flat: ((n * 5 + k) * 7 + oy) * 7 + ox])
                XCTAssertEqual(
                    got, expected, accuracy: 1e-3 * max(1, abs(expected)), "window (\(n), \(oy), \(ox)), filter \(k)")
            }
        }
    }

    func testWhitenedConvolutionComputesTheKMeansConvolutionUnderAnotherWhitening() throws {
        // The k-means initialisation of a contrastive WhitenedConv2D: expressed in the
        // coordinates of a different ZCA (fitted on other patches, another ε), the layer must
        // compute exactly the folded k-means convolution on any input.
        let dataset = try syntheticDataset(count: 20, size: 9, seed: 22)
        var rng = SeededGenerator(seed: 23)
        let baseline = try KMeansBaseline.fit(dataset: dataset, filters: 6, kernelSize: 3, patches: 1_000, using: &rng)
        let other = try ZCAWhitening.fit(
            patches: try PatchExtraction.extractRandomPatches(from: dataset, count: 800, size: 3, using: &rng),
            epsilon: 0.05)
        let conv = try baseline.convolution()
        let x = Tensor.uniform([2, 3, 9, 8], low: -2, high: 2, using: &rng)
        let expected = conv.forward(x, mode: .inference)
        let scale = Swift.max(1, expected.scalars.map(abs).max() ?? 1)
        for s: Float in [1, 0.25] {
            let layer = try baseline.whitenedConvolution(
                whiteningMean: other.mean, whiteningMatrix: other.matrix, scale: s)
            let y = layer.forward(x, mode: .inference)
            XCTAssertEqual(y.shape, expected.shape)
            for i in 0..<y.count {
                XCTAssertEqual(y[flat: i], s * expected[flat: i], accuracy: 1e-3 * scale, "scale \(s), index \(i)")
            }
            // The learnable weight lives in the other whitening's coordinates, not k-means'.
            XCTAssertFalse(layer.weight.value.isBitIdentical(to: conv.weight.value))
        }
        XCTAssertThrowsError(
            try baseline.whitenedConvolution(whiteningMean: other.mean, whiteningMatrix: other.matrix, scale: 0))
        XCTAssertThrowsError(
            try baseline.whitenedConvolution(whiteningMean: Tensor.zeros([5]), whiteningMatrix: Tensor.zeros([5, 5])))
        // A whitening that is not positive definite cannot express the filters.
        var singular = other.matrix
        for i in 0..<27 { singular[flat: i * 27 + i] = -1 }
        XCTAssertThrowsError(try baseline.whitenedConvolution(whiteningMean: other.mean, whiteningMatrix: singular))
    }

    func testEncoderMatchesThePipelineOnAWindow() throws {
        // The TriangleEncoder applies exactly the fit's preprocessing: contrast normalisation
        // with the same ε, then the whitening, then distances to the centroids.
        let dataset = try syntheticDataset(count: 20, size: 4, seed: 22)
        var rng = SeededGenerator(seed: 23)
        let baseline = try KMeansBaseline.fit(dataset: dataset, filters: 4, kernelSize: 4, patches: 500, using: &rng)
        let x = try makeBatch(from: dataset, indices: [5], using: &rng).images  // one 4x4 window
        let encoded = try baseline.encoder().forward(x, mode: .inference)
        XCTAssertEqual(encoded.shape, [1, 4, 1, 1])
        var patch = try x.reshaped([1, 48])
        PatchContrastNormalization.apply(to: &patch, epsilon: baseline.contrastEpsilon)
        try baseline.whitening.apply(to: &patch)
        let z = (0..<4).map { k in
            (0..<48).reduce(Float(0)) { acc, i in
                let t = patch[flat: i] - baseline.centroids[flat: k * 48 + i]; return acc + t * t
            }.squareRoot()
        }
        let mean = z.reduce(0, +) / 4
        for k in 0..<4 { XCTAssertEqual(encoded[flat: k], max(0, mean - z[k]), accuracy: 1e-3) }
    }

    func testPlugsIntoTransferClassifierLikeAPretrainedStage() throws {
        let dataset = try syntheticDataset(count: 12, size: 8, seed: 26)
        var rng = SeededGenerator(seed: 27)
        let baseline = try KMeansBaseline.fit(dataset: dataset, filters: 4, kernelSize: 3, patches: 400, using: &rng)
        let shape = ImageShape(channels: 3, height: 8, width: 8)
        let batch = try makeBatch(from: dataset, indices: 0..<4, using: &rng).images

        // (a) The folded filters load by name into a fresh conv stage, frozen or fine-tuned.
        for mode in [TransferMode.frozen, .fineTuned] {
            let fresh = try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, using: &rng)
            let classifier = try TransferClassifier(
                stages: [[fresh, try MaxPool2D(kernelSize: 2), ReLU()]], mode: mode,
                head: [Flatten(), try Linear(inputFeatures: 4 * 3 * 3, outputFeatures: 2, using: &rng)],
                inputShape: shape, pretrained: baseline.convolutionState(), seed: 1)
            XCTAssertTrue(fresh.weight.value.isBitIdentical(to: baseline.foldedFilters().weight))
            XCTAssertEqual(fresh.weight.isFrozen, mode == .frozen)
            XCTAssertEqual(classifier.forward(batch, mode: .inference).shape, [4, 2])
        }

        // (b) The triangle encoder is a stage of its own (no trainable parameters).
        for mode in [TransferMode.frozen, .fineTuned] {
            let head = try Linear(inputFeatures: 4 * 3 * 3, outputFeatures: 2, using: &rng)
            let classifier = try TransferClassifier(
                stages: [[try baseline.encoder(), try MaxPool2D(kernelSize: 2)]], mode: mode,
                head: [Flatten(), head], inputShape: shape, seed: 1)
            let logits = classifier.forward(batch, mode: .training)
            XCTAssertEqual(logits.shape, [4, 2])
            head.zeroGradients()
            classifier.backward(Tensor(shape: [4, 2], repeating: 1))
            XCTAssertTrue(head.weight.gradient.scalars.contains { $0 != 0 })
            XCTAssertEqual(classifier.trainableParameters.count, 2, "only the head trains")
        }
    }

    func testFitErrors() throws {
        let dataset = try syntheticDataset(count: 5, size: 6, seed: 24)
        var rng = SeededGenerator(seed: 25)
        XCTAssertThrowsError(
            try KMeansBaseline.fit(dataset: dataset, filters: 0, kernelSize: 3, patches: 100, using: &rng)
        ) {
            guard case BaselineError.invalidOption(name: "k-means clusters", _, _) = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(
            try KMeansBaseline.fit(dataset: dataset, filters: 8, kernelSize: 3, patches: 4, using: &rng)
        ) {
            guard case BaselineError.invalidOption(name: "patches", _, _) = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(
            try KMeansBaseline.fit(dataset: dataset, filters: 2, kernelSize: 7, patches: 100, using: &rng)
        ) {
            guard case DatasetError.invalidOption(name: "patch size", _, _) = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(
            try KMeansBaseline.fit(
                dataset: dataset, filters: 2, kernelSize: 3, patches: 100, contrastEpsilon: 0, using: &rng)
        ) {
            guard case BaselineError.invalidOption(name: "contrastEpsilon", _, _) = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(
            try KMeansBaseline.fit(
                dataset: dataset, filters: 2, kernelSize: 3, patches: 100, whiteningEpsilon: -1, using: &rng)
        ) {
            guard case BaselineError.invalidOption(name: "whiteningEpsilon", _, _) = $0 else { return XCTFail("\($0)") }
        }
        let gray = try ChannelNormalization(mean: [0.5], std: [0.2])
        XCTAssertThrowsError(
            try KMeansBaseline.fit(
                dataset: dataset, filters: 2, kernelSize: 3, patches: 100, normalization: gray, using: &rng)
        ) {
            guard case BaselineError.shapeMismatch = $0 else { return XCTFail("\($0)") }
        }
        let zca = try ZCAWhitening(mean: .zeros([27]), matrix: .zeros([27, 27]))
        XCTAssertThrowsError(
            try KMeansBaseline(
                centroids: .zeros([4, 26]), whitening: zca, channels: 3, kernelSize: 3, contrastEpsilon: 0.1))
        XCTAssertThrowsError(
            try KMeansBaseline(
                centroids: .zeros([4, 27]), whitening: zca, channels: 3, kernelSize: 2, contrastEpsilon: 0.1))
        XCTAssertNoThrow(
            try KMeansBaseline(
                centroids: .zeros([4, 27]), whitening: zca, channels: 3, kernelSize: 3, contrastEpsilon: 0.1))
    }

    func testEffectiveContrastEpsilon() throws {
        XCTAssertEqual(
            KMeansBaseline.effectiveContrastEpsilon(10, normalization: nil), PatchContrastNormalization.defaultEpsilon,
            accuracy: 1e-12)
        let n = try ChannelNormalization(mean: [0, 0, 0], std: [0.5, 0.5, 0.25])
        // mean(1/σ²) = (4 + 4 + 16) / 3 = 8.
        XCTAssertEqual(KMeansBaseline.effectiveContrastEpsilon(10, normalization: n), 8 * 10 / 65_025, accuracy: 1e-9)
    }
}

/// The k-means baseline measured on the real data (not part of the normal suite).
///
/// Run (release build; about five minutes on one busy core):
///
///     LAYERWISE_EXPERIMENTS=1 OPENBLAS_NUM_THREADS=1 swift test -c release -Xswiftc -enable-testing \
///         --filter KMeansBaselineExperiment
///
/// Data directory: `LAYERWISE_DATA` (default `shared/data` beside the repository), holding
/// `cifar-100-binary/train.bin` and `cifar-10-batches-bin/data_batch_{1,2}.bin`.
///
/// Protocol: fit on CIFAR-100 train (50,000 random 6x6 patches, K = 64, seed 0); features of
/// CIFAR-10 data_batch_1+2 with the last 4,000 images held out (16,000 train); the probe's
/// settings (epochs, learning rate) are chosen on the last 3,200 of the 16,000 training images,
/// then the probe is refit on all 16,000 and scored once on the held-out 4,000.
final class KMeansBaselineExperiment: XCTestCase {
    private static let probeGrid: [LinearProbe] = [
        LinearProbe(epochs: 10), LinearProbe(epochs: 50), LinearProbe(epochs: 200), LinearProbe(epochs: 500),
        LinearProbe(epochs: 50, learningRate: 1e-2), LinearProbe(epochs: 200, learningRate: 1e-2, weightDecay: 1e-4),
    ]

    private static func rows(_ x: Tensor, _ range: Range<Int>) -> Tensor {
        let d = x.shape[1]
        return try! Tensor(
            shape: [range.count, d], values: Array(x.scalars[(range.lowerBound * d)..<(range.upperBound * d)]))
    }

    /// Selects the probe on a validation split of `train`, refits on all of it, scores `test`.
    private static func probe(
        _ name: String, train: (features: Tensor, labels: [Int]), test: (features: Tensor, labels: [Int])
    ) throws -> Float {
        let n = train.labels.count, fit = n - n / 5
        var best: (probe: LinearProbe, accuracy: Float)?
        for p in probeGrid {
            let r = try p.evaluate(
                train: rows(train.features, 0..<fit), trainLabels: Array(train.labels[..<fit]),
                test: rows(train.features, fit..<n), testLabels: Array(train.labels[fit...]), classCount: 10)
            print(
                "[kmeans] \(name): probe epochs \(p.epochs), lr \(p.learningRate), wd \(p.weightDecay)"
                    + ": fit \(r.trainAccuracy), validation \(r.testAccuracy)"
            )
            if best == nil || r.testAccuracy > best!.accuracy { best = (p, r.testAccuracy) }
        }
        let chosen = best!.probe
        let r = try chosen.evaluate(
            train: train.features, trainLabels: train.labels, test: test.features, testLabels: test.labels,
            classCount: 10)
        print(
            "[kmeans] \(name): chosen probe epochs \(chosen.epochs)"
                + ", lr \(chosen.learningRate), wd \(chosen.weightDecay)"
                + ": train \(r.trainAccuracy), HELD-OUT TEST \(r.testAccuracy) (\(r.featureCount) features)"
        )
        return r.testAccuracy
    }

    func testLinearProbeOnCIFAR10() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["LAYERWISE_EXPERIMENTS"] == "1" else {
            throw XCTSkip("experiment: set LAYERWISE_EXPERIMENTS=1 to fit k-means on CIFAR-100 and probe CIFAR-10")
        }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let root = env["LAYERWISE_DATA"] ?? repository.deletingLastPathComponent().path + "/shared/data"
        let clock = ContinuousClock()
        var start = clock.now
        func lap() -> String { let t = clock.now - start; start = clock.now; return "\(t)" }

        let cifar100 = try CIFAR.loadCIFAR100(file: root + "/cifar-100-binary/train.bin")
        let cifar10 = try CIFAR.loadCIFAR10(files: [
            root + "/cifar-10-batches-bin/data_batch_1.bin", root + "/cifar-10-batches-bin/data_batch_2.bin",
        ])
        let (train, test) = try cifar10.split(validationCount: 4_000)
        XCTAssertEqual(train.count, 16_000)

        for normalization in [nil, ChannelNormalization.fit(cifar100)] {
            let input = normalization == nil ? "raw [0,1] pixels" : "per-channel normalised (CIFAR-100 statistics)"
            var rng = SeededGenerator(seed: 0)
            let baseline = try KMeansBaseline.fit(
                dataset: cifar100, filters: 64, kernelSize: 6, patches: 50_000, whiteningEpsilon: 0.1,
                contrastEpsilon: 10,
                iterations: 10, normalization: normalization, using: &rng)
            print(
                "[kmeans] \(input): fit on CIFAR-100 (\(cifar100.count) images, 50,000 patches, K = 64)"
                    + ", inertia \(baseline.inertia ?? .nan), \(lap())"
            )

            // Coates' exact encoder (contrast normalisation + whitening + triangle).
            let triangle = FeatureExtractor(layers: [try baseline.encoder()])
            let tr = try Evaluation.pooledFeatures(triangle, of: train, normalization: normalization)
            let te = try Evaluation.pooledFeatures(triangle, of: test, normalization: normalization)
            XCTAssertEqual(tr.features.shape, [16_000, 256])
            print("[kmeans] \(input): triangle features \(lap())")
            let a = try Self.probe("triangle encoder, \(input)", train: tr, test: te)
            XCTAssertGreaterThan(a, 0.3)
            print("[kmeans] probes \(lap())")

            // The folded linear form (no contrast normalisation) → ReLU, as a pretrained conv stage gives.
            let linear = FeatureExtractor(layers: [try baseline.convolution()])
            let ltr = try Evaluation.pooledFeatures(linear, of: train, normalization: normalization)
            let lte = try Evaluation.pooledFeatures(linear, of: test, normalization: normalization)
            print("[kmeans] \(input): folded conv features \(lap())")
            _ = try Self.probe("folded Conv2D + ReLU, \(input)", train: ltr, test: lte)
            print("[kmeans] probes \(lap())")
        }
    }
}
