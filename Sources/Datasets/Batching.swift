import Augmentations
import TensorCore

/// Builds one classifier batch: images [N, C, H, W] and their labels.
///
/// Without an augmentation the pixels are copied straight into the batch buffer (no
/// per-image allocation); with one, each image goes through it (the augmentation may
/// change the size, but must give every image the same shape). Normalisation, when given,
/// is applied last, per image in place.
///
/// - Returns: `labels` has one entry per image when the dataset is labelled (−1 for an
///   unlabelled image in a labelled dataset), and is empty for an unlabelled dataset.
/// - Throws: ``DatasetError`` for an empty or out-of-range index list, an augmentation that
///   changes shapes inconsistently, or a normalisation with the wrong channel count.
public func makeBatch<G: RandomNumberGenerator, Indices: Collection<Int>>(
    from dataset: any ImageDataset, indices: Indices,
    augmentation: (any Augmentation)? = nil, normalization: ChannelNormalization? = nil,
    using generator: inout G
) throws -> (images: Tensor, labels: [Int]) {
    let n = indices.count
    guard n > 0 else {
        throw DatasetError.invalidOption(name: "indices", value: "[]", reason: "a batch needs at least one image")
    }
    for i in indices where i < 0 || i >= dataset.count {
        throw DatasetError.invalidOption(name: "batch index", value: "\(i)", reason: "must lie in 0..<\(dataset.count)")
    }
    let s = dataset.imageShape
    if let normalization, normalization.channels != s.channels {
        throw DatasetError.shapeMismatch(
            what: "normalisation channels", expected: "\(s.channels)", got: "\(normalization.channels)")
    }
    var images: Tensor
    if let augmentation {
        var outShape: [Int]? = nil
        images = Tensor.zeros([0])
        var row = 0
        for i in indices {
            let out = augmentation.apply(to: dataset.image(at: i), using: &generator)
            if outShape == nil {
                outShape = out.tensor.shape
                images = Tensor.uninitialized(shape: [n] + out.tensor.shape)
            }
            guard out.tensor.shape == outShape! else {
                throw DatasetError.shapeMismatch(
                    what: "augmented image \(i)", expected: "\(outShape!) like the first image of the batch",
                    got: "\(out.tensor.shape)")
            }
            let per = out.tensor.count
            out.tensor.withUnsafeBufferPointer { src in
                images.withUnsafeMutableBufferPointer { dst in
                    (dst.baseAddress! + row * per).update(from: src.baseAddress!, count: per)
                }
            }
            row += 1
        }
    } else {
        images = Tensor.uninitialized(shape: [n, s.channels, s.height, s.width])
        let per = s.elementCount
        images.withUnsafeMutableBufferPointer { dst in
            for (row, i) in indices.enumerated() {
                dataset.copyPixels(
                    of: i, into: UnsafeMutableBufferPointer(rebasing: dst[(row * per)..<((row + 1) * per)]))
            }
        }
    }
    if let normalization {
        guard images.shape[1] == normalization.channels else {
            throw DatasetError.shapeMismatch(
                what: "normalisation channels after augmentation", expected: "\(normalization.channels)",
                got: "\(images.shape[1])")
        }
        try normalization.apply(to: &images)
    }
    let labels: [Int] = dataset.classCount == nil ? [] : indices.map { dataset.label(at: $0) ?? -1 }
    return (images, labels)
}

/// Random patch extraction, e.g. to fit ``ZCAWhitening`` or k-means on patches.
public enum PatchExtraction {
    /// `count` patches of `size` × `size` from random images at random positions,
    /// flattened as rows of a [count, C · size · size] tensor (C, y, x order).
    /// - Throws: ``DatasetError`` when `count < 1`, `size < 1`, the dataset is empty or
    ///   its images are smaller than `size`.
    public static func extractRandomPatches<G: RandomNumberGenerator>(
        from dataset: any ImageDataset, count: Int, size: Int, using generator: inout G
    ) throws -> Tensor {
        let s = dataset.imageShape
        guard count >= 1 else {
            throw DatasetError.invalidOption(name: "count", value: "\(count)", reason: "must be ≥ 1")
        }
        guard size >= 1, size <= s.height, size <= s.width else {
            throw DatasetError.invalidOption(
                name: "patch size", value: "\(size)",
                reason: "must lie in 1...\(Swift.min(s.height, s.width)) for \(s) images")
        }
        guard dataset.count > 0 else {
            throw DatasetError.invalidOption(
                name: "dataset", value: "0 images", reason: "cannot extract patches from an empty dataset")
        }
        let d = s.channels * size * size
        var out = Tensor.uninitialized(shape: [count, d])
        var scratch = [Float](repeating: 0, count: s.elementCount)
        scratch.withUnsafeMutableBufferPointer { img in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<count {
                    let index = generator.nextInt(below: dataset.count)
                    let y = generator.nextInt(below: s.height - size + 1)
                    let x = generator.nextInt(below: s.width - size + 1)
                    dataset.copyPixels(of: index, into: img)
                    var k = r * d
                    for c in 0..<s.channels {
                        for dy in 0..<size {
                            let row = img.baseAddress! + (c * s.height + y + dy) * s.width + x
                            (dst.baseAddress! + k).update(from: row, count: size)
                            k += size
                        }
                    }
                }
            }
        }
        return out
    }
}
