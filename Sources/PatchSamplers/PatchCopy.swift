import Augmentations
import Datasets
import TensorCore

/// Shared inner loops: copy a p × p window out of a C × H × W image buffer.
enum PatchCopy {
    /// Copies the window at (y, x) of `image` (C × height × width) into `destination` (C × p × p).
    @inline(__always)
    static func copy(
        from image: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
        y: Int, x: Int, size p: Int, to destination: UnsafeMutablePointer<Float>
    ) {
        var d = destination
        for c in 0..<channels {
            var src = image + (c * height + y) * width + x
            for _ in 0..<p {
                d.update(from: src, count: p)
                d += p
                src += width
            }
        }
    }

    static func validateCommon(batchSize: Int, patchSize: Int) throws {
        guard batchSize >= 1 else { throw SamplerError.invalidBatchSize(batchSize) }
        guard patchSize >= 1 else { throw SamplerError.invalidPatchSize(patchSize) }
    }

    static func validate(normalization: ChannelNormalization?, channels: Int) throws {
        if let normalization, normalization.channels != channels {
            throw SamplerError.normalizationChannels(expected: channels, got: normalization.channels)
        }
    }

    /// A random index in 0..<count different from `excluded` (count ≥ 2).
    @inline(__always)
    static func otherIndex<G: RandomNumberGenerator>(count: Int, excluding excluded: Int, using g: inout G) -> Int {
        let r = g.nextInt(below: count - 1)
        return r >= excluded ? r + 1 : r
    }

    /// Runs `augmentation` on a C × p × p patch stored at `pointer`, writes the result back.
    /// Fills the K negatives of every anchor with p × p patches at random locations of random
    /// images other than the anchor's (read from `sources`), each then optionally mirrored
    /// (probability ½) and augmented like any other view. `scratch` holds one image.
    static func fillNegativesFromOtherImages<G: RandomNumberGenerator>(
        dataset: any ImageDataset, layout: TripletLayout, patchSize p: Int,
        scratch img: UnsafeMutableBufferPointer<Float>, output base: UnsafeMutablePointer<Float>,
        sources: inout [Int], flips: Bool = false, views: (any Augmentation)? = nil, using generator: inout G
    ) throws {
        let s = dataset.imageShape, c = s.channels, per = c * p * p
        let image = UnsafePointer(img.baseAddress!)
        for i in 0..<layout.batchSize {
            let anchorImage = sources[layout.anchorRow(i)]
            for j in 0..<layout.negativesPerAnchor {
                let other = otherIndex(count: dataset.count, excluding: anchorImage, using: &generator)
                dataset.copyPixels(of: other, into: img)
                let ny = generator.nextInt(below: s.height - p + 1)
                let nx = generator.nextInt(below: s.width - p + 1)
                let row = layout.negativeRow(i, j)
                copy(
                    from: image, channels: c, height: s.height, width: s.width, y: ny, x: nx, size: p,
                    to: base + row * per)
                sources[row] = other
                try finishView(base + row * per, channels: c, size: p, flips: flips, views: views, using: &generator)
            }
        }
    }

    /// A view's last touches: its own mirror (probability ½, when `flips`) and augmentation.
    static func finishView<G: RandomNumberGenerator>(
        _ patch: UnsafeMutablePointer<Float>, channels c: Int, size p: Int, flips: Bool,
        views: (any Augmentation)?, using generator: inout G
    ) throws {
        if flips, generator.nextUniform() < 0.5 { flipHorizontally(patch, channels: c, size: p) }
        if let views { try augmentInPlace(patch, channels: c, size: p, augmentation: views, using: &generator) }
    }

    /// Mirrors a C × p × p patch left–right in place.
    static func flipHorizontally(_ patch: UnsafeMutablePointer<Float>, channels: Int, size p: Int) {
        for row in 0..<(channels * p) {
            let line = patch + row * p
            var (i, j) = (0, p - 1)
            while i < j {
                let t = line[i]
                line[i] = line[j]
                line[j] = t
                i += 1
                j -= 1
            }
        }
    }

    static func augmentInPlace<G: RandomNumberGenerator>(
        _ pointer: UnsafeMutablePointer<Float>, channels: Int, size p: Int,
        augmentation: any Augmentation, using g: inout G
    ) throws {
        let n = channels * p * p
        var t = Tensor.uninitialized(shape: [channels, p, p])
        t.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: pointer, count: n) }
        let out = augmentation.apply(to: try Image(t), using: &g)
        guard out.tensor.shape == [channels, p, p] else {
            throw SamplerError.augmentationShape(expected: [channels, p, p], got: out.tensor.shape)
        }
        out.tensor.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: n) }
    }

    /// Bilinear resize (align-corners = false) of a C × h × w image to C × p × p.
    static func resize(
        _ src: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int,
        to p: Int, destination dst: UnsafeMutablePointer<Float>
    ) {
        let sy = Float(h) / Float(p), sx = Float(w) / Float(p)
        for c in 0..<channels {
            let plane = src + c * h * w
            for oy in 0..<p {
                let fy = Swift.max(0, (Float(oy) + 0.5) * sy - 0.5)
                let y0 = Swift.min(Int(fy), h - 1), y1 = Swift.min(y0 + 1, h - 1), wy = fy - Float(y0)
                for ox in 0..<p {
                    let fx = Swift.max(0, (Float(ox) + 0.5) * sx - 0.5)
                    let x0 = Swift.min(Int(fx), w - 1), x1 = Swift.min(x0 + 1, w - 1), wx = fx - Float(x0)
                    let top = plane[y0 * w + x0] * (1 - wx) + plane[y0 * w + x1] * wx
                    let bottom = plane[y1 * w + x0] * (1 - wx) + plane[y1 * w + x1] * wx
                    dst[(c * p + oy) * p + ox] = top * (1 - wy) + bottom * wy
                }
            }
        }
    }
}
