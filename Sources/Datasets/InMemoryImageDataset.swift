import TensorCore

/// A dataset held in memory as 8-bit pixels: every image is stored contiguously as
/// C × H × W planes (CIFAR's own layout), so ``copyPixels(of:into:)`` is one linear pass.
///
/// Pixels convert to Float as `value / 255` through a lookup table, with no allocation.
public struct InMemoryImageDataset: ImageDataset {
    /// Shape of every image.
    public let imageShape: ImageShape
    /// All pixels, image after image, each image C·H·W bytes.
    public let pixels: [UInt8]
    /// One label per image, or nil for unlabelled data.
    public let labels: [Int]?
    /// Optional human-readable class names (index = label).
    public let classNames: [String]?
    /// Number of classes when labelled.
    public let classCount: Int?

    /// Number of images.
    public var count: Int { imageShape.elementCount == 0 ? 0 : pixels.count / imageShape.elementCount }

    /// Builds a dataset from raw CHW pixels.
    ///
    /// - Parameters:
    ///   - pixels: `count · C · H · W` bytes, each image as C planes of H rows.
    ///   - shape: the shape of one image (all dimensions > 0).
    ///   - labels: one label per image, each in `0..<classCount`; nil for unlabelled data.
    ///   - classCount: the number of classes; defaults to `classNames.count`, else max label + 1.
    ///   - classNames: optional names, one per class.
    /// - Throws: ``DatasetError`` when the sizes disagree or a label is out of range.
    public init(
        pixels: [UInt8], shape: ImageShape, labels: [Int]? = nil,
        classCount: Int? = nil, classNames: [String]? = nil
    ) throws {
        guard shape.channels > 0, shape.height > 0, shape.width > 0 else {
            throw DatasetError.invalidOption(
                name: "image shape", value: "\(shape)", reason: "all dimensions must be > 0")
        }
        let per = shape.elementCount
        guard pixels.count % per == 0 else {
            throw DatasetError.shapeMismatch(
                what: "pixel count for images of shape \(shape)", expected: "a multiple of \(per)",
                got: "\(pixels.count)")
        }
        let n = pixels.count / per
        var resolvedClassCount = classCount
        if let names = classNames {
            if let c = classCount, c != names.count {
                throw DatasetError.shapeMismatch(what: "class names", expected: "\(c) names", got: "\(names.count)")
            }
            resolvedClassCount = names.count
        }
        if let labels {
            guard labels.count == n else {
                throw DatasetError.shapeMismatch(
                    what: "label count", expected: "\(n) (one per image)", got: "\(labels.count)")
            }
            // max + 1 would overflow (a trap) for a label of Int.max, e.g. from a corrupt .npy file.
            if resolvedClassCount == nil, let i = labels.firstIndex(of: Int.max) {
                throw DatasetError.invalidOption(
                    name: "labels[\(i)]", value: "\(Int.max)", reason: "labels must be < Int.max")
            }
            let limit = resolvedClassCount ?? ((labels.max() ?? -1) + 1)
            for (i, l) in labels.enumerated() where l < 0 || l >= limit {
                throw DatasetError.invalidOption(
                    name: "labels[\(i)]", value: "\(l)", reason: "labels must lie in 0..<\(limit)")
            }
            resolvedClassCount = limit
        } else if classNames == nil {
            resolvedClassCount = nil
        }
        if let c = resolvedClassCount, c < 1, labels != nil || classNames != nil {
            throw DatasetError.invalidOption(name: "classCount", value: "\(c)", reason: "must be at least 1")
        }
        self.imageShape = shape
        self.pixels = pixels
        self.labels = labels
        self.classNames = classNames
        self.classCount = labels == nil && classNames == nil ? nil : resolvedClassCount
    }

    /// Internal initialiser for data already validated (subsets, loaders).
    init(validatedPixels: [UInt8], shape: ImageShape, labels: [Int]?, classCount: Int?, classNames: [String]?) {
        imageShape = shape
        pixels = validatedPixels
        self.labels = labels
        self.classCount = classCount
        self.classNames = classNames
    }

    public func label(at index: Int) -> Int? { labels?[index] }

    /// The 8-bit → [0, 1] conversion table (exactly `Float(i) / 255`).
    static let byteToUnit: [Float] = (0..<256).map { Float($0) / 255 }

    public func copyPixels(of index: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        let per = imageShape.elementCount
        precondition(index >= 0 && index < count, "image index \(index) out of range 0..<\(count)")
        precondition(buffer.count >= per, "buffer of \(buffer.count) floats is smaller than an image (\(per))")
        Self.byteToUnit.withUnsafeBufferPointer { table in
            pixels.withUnsafeBufferPointer { src in
                let base = src.baseAddress! + index * per
                let dst = buffer.baseAddress!
                for i in 0..<per { dst[i] = table[Int(base[i])] }
            }
        }
    }

    /// The raw bytes of image `index` (C·H·W).
    public func bytes(of index: Int) -> ArraySlice<UInt8> {
        let per = imageShape.elementCount
        return pixels[(index * per)..<((index + 1) * per)]
    }

    /// The images at `indices`, in that order (indices may repeat).
    /// - Throws: ``DatasetError/invalidOption(name:value:reason:)`` for an index out of range.
    public func subset(_ indices: [Int]) throws -> InMemoryImageDataset {
        let per = imageShape.elementCount
        var out = [UInt8]()
        out.reserveCapacity(indices.count * per)
        var outLabels: [Int]? = labels == nil ? nil : []
        outLabels?.reserveCapacity(indices.count)
        for i in indices {
            guard i >= 0 && i < count else {
                throw DatasetError.invalidOption(
                    name: "subset index", value: "\(i)", reason: "must lie in 0..<\(count)")
            }
            out.append(contentsOf: pixels[(i * per)..<((i + 1) * per)])
            if let labels { outLabels!.append(labels[i]) }
        }
        return InMemoryImageDataset(
            validatedPixels: out, shape: imageShape, labels: outLabels, classCount: classCount, classNames: classNames)
    }

    /// The first `n` images (all of them when `n ≥ count`).
    public func prefix(_ n: Int) -> InMemoryImageDataset {
        let k = Swift.max(0, Swift.min(n, count))
        let per = imageShape.elementCount
        return InMemoryImageDataset(
            validatedPixels: Array(pixels[0..<(k * per)]), shape: imageShape,
            labels: labels.map { Array($0[0..<k]) }, classCount: classCount, classNames: classNames)
    }

    /// The same images without labels or class names: what unsupervised pretraining sees,
    /// and the form in which datasets with different classes can be concatenated.
    public func withoutLabels() -> InMemoryImageDataset {
        InMemoryImageDataset(validatedPixels: pixels, shape: imageShape, labels: nil, classCount: nil, classNames: nil)
    }

    /// Splits off the **last** `validationCount` images as a validation set.
    ///
    /// CIFAR files are shuffled, so the tail is as class-balanced as the head.
    /// - Throws: ``DatasetError/invalidOption(name:value:reason:)`` unless `0 ≤ validationCount ≤ count`.
    public func split(validationCount: Int) throws -> (train: InMemoryImageDataset, validation: InMemoryImageDataset) {
        guard validationCount >= 0 && validationCount <= count else {
            throw DatasetError.invalidOption(
                name: "validationCount", value: "\(validationCount)",
                reason: "must lie in 0...\(count) (the dataset holds \(count) images)")
        }
        let cut = count - validationCount
        let per = imageShape.elementCount
        let train = InMemoryImageDataset(
            validatedPixels: Array(pixels[0..<(cut * per)]), shape: imageShape,
            labels: labels.map { Array($0[0..<cut]) }, classCount: classCount, classNames: classNames)
        let validation = InMemoryImageDataset(
            validatedPixels: Array(pixels[(cut * per)...]), shape: imageShape,
            labels: labels.map { Array($0[cut...]) }, classCount: classCount, classNames: classNames)
        return (train, validation)
    }

    /// Concatenates datasets of the same image shape and class count.
    public static func concatenate(_ parts: [InMemoryImageDataset]) throws -> InMemoryImageDataset {
        guard let first = parts.first else {
            throw DatasetError.invalidOption(name: "parts", value: "[]", reason: "need at least one dataset")
        }
        var pixels = [UInt8]()
        pixels.reserveCapacity(parts.reduce(0) { $0 + $1.pixels.count })
        var labels: [Int]? = first.labels == nil ? nil : []
        for p in parts {
            guard p.imageShape == first.imageShape else {
                throw DatasetError.shapeMismatch(
                    what: "image shape", expected: "\(first.imageShape)", got: "\(p.imageShape)")
            }
            guard (p.labels == nil) == (first.labels == nil), p.classCount == first.classCount else {
                throw DatasetError.shapeMismatch(
                    what: "labelling", expected: "classCount \(String(describing: first.classCount))",
                    got: "classCount \(String(describing: p.classCount))")
            }
            pixels.append(contentsOf: p.pixels)
            if let l = p.labels { labels!.append(contentsOf: l) }
        }
        return InMemoryImageDataset(
            validatedPixels: pixels, shape: first.imageShape, labels: labels,
            classCount: first.classCount, classNames: first.classNames)
    }
}
