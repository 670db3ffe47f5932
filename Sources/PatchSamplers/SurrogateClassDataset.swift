import Augmentations
import Datasets
import TensorCore

/// How ``SurrogateClassDataset`` picks the seed region of each surrogate class.
public enum SeedSelection: Sendable, Equatable {
    /// A uniformly random region (image and location).
    case random
    /// Among `candidatesPerSeed` random regions keep the one with the largest mean squared
    /// gradient magnitude, as Exemplar-CNN does: flat sky or wall patches make poor
    /// classes because every distortion of them looks the same.
    case highGradient(candidatesPerSeed: Int)
}

/// How an augmented seed region becomes a p × p training patch.
public enum SurrogatePatchFit: Sendable, Equatable {
    /// The central p × p window of the augmented region (the rest of the region is
    /// context that rotations and crops draw real pixels from). An augmented region
    /// smaller than p is bilinearly resized instead.
    case centerCrop
    /// The whole augmented region, bilinearly resized to p × p (Exemplar-CNN feeds the
    /// network the whole distorted seed).
    case resize
}

/// Where one seed region lies: image `image`, top-left corner (`y`, `x`).
public struct SurrogateSeed: Sendable, Equatable, Hashable {
    public var image: Int
    public var y: Int
    public var x: Int
    public init(image: Int, y: Int, x: Int) {
        self.image = image
        self.y = y
        self.x = x
    }
}

/// Exemplar-CNN surrogate classes (Dosovitskiy et al. 2014): `classCount` seed regions
/// drawn once from unlabelled images; class `i` is "any distortion of seed `i`".
///
/// The seeds are fixed when the dataset is built (the classes must not change while a
/// classifier learns them). Seeds come from distinct images while there are unused images
/// left; once every image has given a seed, images are reused at other locations.
/// ``sample(classes:copiesPerClass:patchSize:using:)`` returns `K` freshly augmented copies
/// of each requested seed: the augmentation runs on the whole seed region (so rotations
/// and crops see real pixels), then the result is fitted to p × p (``SurrogatePatchFit``)
/// and optionally normalised.
///
/// Seed regions are stored contiguously (`classCount · C · R · R` floats), so drawing
/// a copy reads no image; the augmentation itself allocates (it works on ``Image``).
public struct SurrogateClassDataset: Sendable {
    /// Where the seeds came from.
    public let dataset: any ImageDataset
    /// Number of surrogate classes N (= number of seeds).
    public let classCount: Int
    /// Side R of the square seed (context) regions.
    public let seedPatchSize: Int
    /// How the seeds were chosen.
    public let selection: SeedSelection
    /// The distortion applied to each copy.
    public let augmentation: any Augmentation
    /// Applied to the output patches.
    public let normalization: ChannelNormalization?
    /// How an augmented region becomes a p × p patch.
    public let fit: SurrogatePatchFit
    /// Image and location of every seed, class order.
    public let seeds: [SurrogateSeed]
    /// The mean squared gradient magnitude of every seed region, class order.
    public let seedGradientEnergy: [Float]
    /// Seed regions, class after class, each C × R × R.
    let regions: [Float]
    /// Scratch permutation for drawing distinct classes (reset before every draw so a draw
    /// depends only on the generator).
    var order: [Int]

    /// Channels of the patches.
    public var channels: Int { dataset.imageShape.channels }

    /// Draws the seed regions.
    ///
    /// - Parameters:
    ///   - dataset: unlabelled images (labels, if any, are ignored).
    ///   - classCount: number of surrogate classes N (≥ 2).
    ///   - seedPatchSize: side R of each seed region: the training patch plus a context
    ///     margin (e.g. p + p/2), at most the image size.
    ///   - selection: random regions, or the highest-gradient of several candidates.
    ///   - augmentation: the distortion that makes copies of a seed differ.
    ///   - normalization: per-channel standardisation of the output patches.
    ///   - fit: centre-crop (default) or resize the augmented region to the patch size.
    ///   - generator: seeds the choice of regions.
    /// - Throws: ``SamplerError`` when `classCount < 2`, `seedPatchSize < 1`, the seed
    ///   region exceeds the images, `candidatesPerSeed < 1`, the data holds fewer than 2
    ///   images, or the normalisation's channel count differs.
    public init<G: RandomNumberGenerator>(
        dataset: any ImageDataset, classCount: Int, seedPatchSize: Int,
        selection: SeedSelection = .highGradient(candidatesPerSeed: 8), augmentation: any Augmentation,
        normalization: ChannelNormalization? = nil, fit: SurrogatePatchFit = .centerCrop,
        using generator: inout G
    ) throws {
        guard classCount >= 2 else {
            throw SamplerError.invalidOption(
                name: "classCount", value: "\(classCount)", reason: "surrogate classification needs at least 2 classes")
        }
        guard seedPatchSize >= 1 else {
            throw SamplerError.invalidOption(name: "seedPatchSize", value: "\(seedPatchSize)", reason: "must be ≥ 1")
        }
        let s = dataset.imageShape
        guard seedPatchSize <= s.height, seedPatchSize <= s.width else {
            throw SamplerError.patchLargerThanImage(
                patchSize: seedPatchSize, needed: seedPatchSize, imageHeight: s.height, imageWidth: s.width,
                reason: "the seed region (seedPatchSize)")
        }
        let candidates: Int
        switch selection {
        case .random: candidates = 1
        case let .highGradient(m):
            guard m >= 1 else {
                throw SamplerError.invalidOption(name: "candidatesPerSeed", value: "\(m)", reason: "must be ≥ 1")
            }
            candidates = m
        }
        // One image would make every class a crop of the same picture.
        guard dataset.count >= 2 else { throw SamplerError.tooFewImages(count: dataset.count, required: 2) }
        try PatchCopy.validate(normalization: normalization, channels: s.channels)

        let r = seedPatchSize, c = s.channels, per = c * r * r
        var regions = [Float](repeating: 0, count: classCount * per)
        var seeds: [SurrogateSeed] = []
        seeds.reserveCapacity(classCount)
        var energies: [Float] = []
        energies.reserveCapacity(classCount)
        // Images not yet used by a seed; refilled when exhausted.
        var pool: [Int] = []
        var image = [Float](repeating: 0, count: s.elementCount)
        image.withUnsafeMutableBufferPointer { img in
            regions.withUnsafeMutableBufferPointer { out in
                let pixels = UnsafePointer(img.baseAddress!)
                for seedIndex in 0..<classCount {
                    if pool.isEmpty { pool = Array(0..<dataset.count) }
                    var best = (poolIndex: 0, y: 0, x: 0, energy: -Float.infinity)
                    for candidate in 0..<candidates {
                        let poolIndex = generator.nextInt(below: pool.count)
                        let y = generator.nextInt(below: s.height - r + 1)
                        let x = generator.nextInt(below: s.width - r + 1)
                        dataset.copyPixels(of: pool[poolIndex], into: img)
                        let e = Self.gradientEnergy(
                            pixels, channels: c, height: s.height, width: s.width, y: y, x: x, size: r)
                        if candidate == 0 || e > best.energy { best = (poolIndex, y, x, e) }
                    }
                    let chosen = pool[best.poolIndex]
                    pool.swapAt(best.poolIndex, pool.count - 1)
                    pool.removeLast()
                    dataset.copyPixels(of: chosen, into: img)
                    PatchCopy.copy(
                        from: pixels, channels: c, height: s.height, width: s.width,
                        y: best.y, x: best.x, size: r, to: out.baseAddress! + seedIndex * per)
                    seeds.append(SurrogateSeed(image: chosen, y: best.y, x: best.x))
                    energies.append(best.energy)
                }
            }
        }
        self.dataset = dataset
        self.classCount = classCount
        self.seedPatchSize = seedPatchSize
        self.selection = selection
        self.augmentation = augmentation
        self.normalization = normalization
        self.fit = fit
        self.seeds = seeds
        self.seedGradientEnergy = energies
        self.regions = regions
        self.order = Array(0..<classCount)
    }

    /// Mean over the region of Σ_c (∂x² + ∂y²), with forward differences inside the region.
    static func gradientEnergy(
        _ image: UnsafePointer<Float>, channels: Int, height: Int, width: Int, y: Int, x: Int, size r: Int
    ) -> Float {
        guard r >= 2 else { return 0 }
        var sum: Double = 0
        for c in 0..<channels {
            for dy in 0..<r {
                let row = image + (c * height + y + dy) * width + x
                let below = row + width
                var acc: Float = 0
                for dx in 0..<r {
                    if dx + 1 < r { let g = row[dx + 1] - row[dx]; acc += g * g }
                    if dy + 1 < r { let g = below[dx] - row[dx]; acc += g * g }
                }
                sum += Double(acc)
            }
        }
        return Float(sum / Double(r * r))
    }

    /// The unaugmented seed region of class `index`, `[C, R, R]`.
    /// - Throws: ``SamplerError/invalidOption(name:value:reason:)`` for an index outside `0..<classCount`.
    public func seedRegion(of index: Int) throws -> Tensor {
        guard index >= 0, index < classCount else {
            throw SamplerError.invalidOption(name: "class", value: "\(index)", reason: "must lie in 0..<\(classCount)")
        }
        let c = channels, r = seedPatchSize, per = c * r * r
        var t = Tensor.uninitialized(shape: [c, r, r])
        t.withUnsafeMutableBufferPointer { b in
            regions.withUnsafeBufferPointer { b.baseAddress!.update(from: $0.baseAddress! + index * per, count: per) }
        }
        return t
    }

    /// `copiesPerClass` freshly augmented p × p copies of each class in `classes`.
    ///
    /// Rows are grouped by class: row `j·K + k` is copy `k` of `classes[j]`, and
    /// `labels[row]` is that class index (in `0..<classCount`, ready for a classifier over
    /// all N classes).
    ///
    /// - Throws: ``SamplerError`` when `classes` is empty or holds an index outside
    ///   `0..<classCount`, `copiesPerClass < 1`, `patchSize < 1` or larger than
    ///   ``seedPatchSize``, or the augmentation changes the channel count or rank.
    public func sample<G: RandomNumberGenerator>(
        classes: [Int], copiesPerClass k: Int, patchSize p: Int, using generator: inout G
    ) throws -> (patches: Tensor, labels: [Int]) {
        guard !classes.isEmpty else {
            throw SamplerError.invalidOption(name: "classes", value: "[]", reason: "request at least one class")
        }
        for (i, cls) in classes.enumerated() where cls < 0 || cls >= classCount {
            throw SamplerError.invalidOption(
                name: "classes[\(i)]", value: "\(cls)", reason: "must lie in 0..<\(classCount)")
        }
        try validate(copiesPerClass: k, patchSize: p)
        let c = channels, r = seedPatchSize, regionSize = c * r * r, per = c * p * p
        let rows = classes.count * k
        var patches = Tensor.uninitialized(shape: [rows, c, p, p])
        var labels = [Int](repeating: 0, count: rows)
        let augmentation = self.augmentation, fit = self.fit
        try regions.withUnsafeBufferPointer { seedsBuffer in
            try patches.withUnsafeMutableBufferPointer { out in
                for (j, cls) in classes.enumerated() {
                    let seed = seedsBuffer.baseAddress! + cls * regionSize
                    for copy in 0..<k {
                        let row = j * k + copy
                        labels[row] = cls
                        // The augmentation works on Images, so each copy allocates its region.
                        var region = Tensor.uninitialized(shape: [c, r, r])
                        region.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: seed, count: regionSize) }
                        let augmented = augmentation.apply(to: try Image(region), using: &generator).tensor
                        let shape = augmented.shape
                        guard shape.count == 3, shape[0] == c, shape[1] >= 1, shape[2] >= 1 else {
                            throw SamplerError.augmentationShape(expected: [c, r, r], got: shape)
                        }
                        let ah = shape[1], aw = shape[2], destination = out.baseAddress! + row * per
                        augmented.withUnsafeBufferPointer { a in
                            if fit == .centerCrop, ah >= p, aw >= p {
                                PatchCopy.copy(
                                    from: a.baseAddress!, channels: c, height: ah, width: aw,
                                    y: (ah - p) / 2, x: (aw - p) / 2, size: p, to: destination)
                            } else if ah == p, aw == p {
                                destination.update(from: a.baseAddress!, count: per)
                            } else {
                                PatchCopy.resize(
                                    a.baseAddress!, channels: c, height: ah, width: aw,
                                    to: p, destination: destination)
                            }
                        }
                    }
                }
            }
        }
        if let normalization { try normalization.apply(to: &patches) }
        return (patches, labels)
    }

    /// `copiesPerClass` augmented copies of each of `count` distinct classes drawn
    /// uniformly at random (see ``sample(classes:copiesPerClass:patchSize:using:)``).
    ///
    /// - Throws: ``SamplerError`` when `count` is not in `1...classCount`, and the errors of
    ///   ``sample(classes:copiesPerClass:patchSize:using:)``.
    public mutating func sample<G: RandomNumberGenerator>(
        count: Int, copiesPerClass k: Int, patchSize p: Int, using generator: inout G
    ) throws -> (patches: Tensor, labels: [Int]) {
        guard count >= 1, count <= classCount else {
            throw SamplerError.invalidOption(
                name: "count", value: "\(count)",
                reason: "must lie in 1...\(classCount) (the number of surrogate classes)")
        }
        try validate(copiesPerClass: k, patchSize: p)
        // Partial Fisher–Yates over a reset permutation: no allocation, and the draw
        // depends on the generator alone (so a resumed run draws what the original did).
        let n = classCount
        let drawn: [Int] = order.withUnsafeMutableBufferPointer { o in
            for i in 0..<n { o[i] = i }
            for i in 0..<count {
                let j = i + generator.nextInt(below: n - i)
                o.swapAt(i, j)
            }
            return Array(o[0..<count])
        }
        return try sample(classes: drawn, copiesPerClass: k, patchSize: p, using: &generator)
    }

    func validate(copiesPerClass k: Int, patchSize p: Int) throws {
        guard k >= 1 else {
            throw SamplerError.invalidOption(name: "copiesPerClass", value: "\(k)", reason: "must be ≥ 1")
        }
        guard p >= 1 else { throw SamplerError.invalidPatchSize(p) }
        guard p <= seedPatchSize else {
            throw SamplerError.invalidOption(
                name: "patchSize", value: "\(p)",
                reason:
                    "larger than the seed regions (seedPatchSize = \(seedPatchSize))"
                    + "; build the dataset with seedPatchSize ≥ \(p)"
            )
        }
    }
}
