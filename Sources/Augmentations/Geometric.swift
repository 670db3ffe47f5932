import Foundation
import TensorCore

/// What a rotation shows where the rotated image does not cover the output.
public enum RotationFill: Sendable, Equatable {
    /// A constant value in every channel (torchvision's default is 0).
    case constant(Float)
    /// The nearest edge pixel (replicate padding).
    case edge
}

/// Rotation by a fixed angle about the image centre, counter-clockwise for positive degrees
/// (torchvision's convention), with bilinear interpolation. Output shape = input shape.
///
/// Multiples of 90° are exact permutations of the pixels on square images.
public struct Rotation: Augmentation {
    public let degrees: Float
    public let fill: RotationFill

    /// - Throws: ``AugmentationError`` when `degrees` or the fill value is not finite.
    public init(degrees: Float, fill: RotationFill = .constant(0)) throws {
        try AugmentationError.check(degrees.isFinite, "degrees", degrees, "must be finite")
        if case .constant(let v) = fill { try AugmentationError.check(v.isFinite, "fill", v, "must be finite") }
        self.degrees = degrees
        self.fill = fill
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        Self.rotate(image, degrees: degrees, fill: fill)
    }

    static func rotate(_ image: Image, degrees: Float, fill: RotationFill) -> Image {
        let c = image.channels, h = image.height, w = image.width
        let theta = Double(degrees) * Double.pi / 180
        var cosT = Float(cos(theta)), sinT = Float(sin(theta))
        // Snap so that quarter turns are exact.
        if abs(cosT) < 1e-6 { cosT = 0 }
        if abs(sinT) < 1e-6 { sinT = 0 }
        if abs(abs(cosT) - 1) < 1e-6 { cosT = cosT > 0 ? 1 : -1 }
        if abs(abs(sinT) - 1) < 1e-6 { sinT = sinT > 0 ? 1 : -1 }
        let cx = Float(w - 1) / 2, cy = Float(h - 1) / 2
        var out = Tensor.uninitialized(shape: [c, h, w])
        image.tensor.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<h {
                    for ox in 0..<w {
                        // Inverse map (y axis points down): output → source.
                        let dx = Float(ox) - cx, dy = Float(oy) - cy
                        let sx = cx + cosT * dx - sinT * dy
                        let sy = cy + sinT * dx + cosT * dy
                        let x0f = sx.rounded(.down), y0f = sy.rounded(.down)
                        let tx = sx - x0f, ty = sy - y0f
                        let x0 = Int(x0f), y0 = Int(y0f)
                        for ch in 0..<c {
                            let plane = src.baseAddress! + ch * h * w
                            @inline(__always) func at(_ y: Int, _ x: Int) -> Float {
                                if y >= 0 && y < h && x >= 0 && x < w { return plane[y * w + x] }
                                switch fill {
                                case .constant(let v): return v
                                case .edge:
                                    return plane[
                                        Swift.min(Swift.max(y, 0), h - 1) * w + Swift.min(Swift.max(x, 0), w - 1)]
                                }
                            }
                            var v = at(y0, x0) * (1 - tx) * (1 - ty)
                            if tx != 0 { v += at(y0, x0 + 1) * tx * (1 - ty) }
                            if ty != 0 { v += at(y0 + 1, x0) * (1 - tx) * ty }
                            if tx != 0 && ty != 0 { v += at(y0 + 1, x0 + 1) * tx * ty }
                            dst[(ch * h + oy) * w + ox] = v
                        }
                    }
                }
            }
        }
        return try! Image(out)
    }
}

/// Rotation by an angle drawn uniformly from [−maxDegrees, maxDegrees].
public struct RandomRotation: Augmentation {
    public let maxDegrees: Float
    public let fill: RotationFill

    /// - Throws: ``AugmentationError`` unless `0 ≤ maxDegrees ≤ 360` and the fill is finite.
    public init(maxDegrees: Float, fill: RotationFill = .constant(0)) throws {
        try AugmentationError.check(
            maxDegrees >= 0 && maxDegrees <= 360, "maxDegrees", maxDegrees, "must lie in 0...360")
        if case .constant(let v) = fill { try AugmentationError.check(v.isFinite, "fill", v, "must be finite") }
        self.maxDegrees = maxDegrees
        self.fill = fill
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        let angle = generator.nextUniform(-maxDegrees, maxDegrees)
        return Rotation.rotate(image, degrees: angle, fill: fill)
    }
}

/// Bilinear resize to a fixed size (align-corners = false, no antialiasing; like
/// `torch.nn.functional.interpolate(mode: "bilinear")`).
public struct Resize: Augmentation {
    public let height: Int
    public let width: Int

    /// - Throws: ``AugmentationError`` unless both sizes are ≥ 1.
    public init(height: Int, width: Int) throws {
        try AugmentationError.check(height >= 1, "height", height, "must be ≥ 1")
        try AugmentationError.check(width >= 1, "width", width, "must be ≥ 1")
        self.height = height
        self.width = width
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        if image.height == height && image.width == width { return image }
        return Resampling.resizeRegion(
            image, y0: 0, x0: 0, height: image.height, width: image.width, outHeight: height, outWidth: width)
    }
}

/// A random `size` × `size` crop after zero-padding every side by `padding` (the standard
/// CIFAR augmentation with size 32, padding 4). An image still smaller than `size` after
/// padding is padded further with zeros (torchvision's `pad_if_needed`), so the output is
/// always `size` × `size`.
public struct RandomCrop: Augmentation {
    public let size: Int
    public let padding: Int

    /// - Throws: ``AugmentationError`` unless `size ≥ 1` and `padding ≥ 0`.
    public init(size: Int, padding: Int = 0) throws {
        try AugmentationError.check(size >= 1, "size", size, "must be ≥ 1")
        try AugmentationError.check(padding >= 0, "padding", padding, "must be ≥ 0")
        self.size = size
        self.padding = padding
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        let c = image.channels, h = image.height, w = image.width
        let padY = Swift.max(padding, (size - h + 1) / 2), padX = Swift.max(padding, (size - w + 1) / 2)
        let ph = h + 2 * padY, pw = w + 2 * padX
        // Top-left of the crop in padded coordinates.
        let y = generator.nextInt(below: ph - size + 1), x = generator.nextInt(below: pw - size + 1)
        var out = Tensor.zeros([c, size, size])
        image.tensor.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for ch in 0..<c {
                    for oy in 0..<size {
                        let iy = y + oy - padY
                        guard iy >= 0 && iy < h else { continue }
                        for ox in 0..<size {
                            let ix = x + ox - padX
                            if ix >= 0 && ix < w { dst[(ch * size + oy) * size + ox] = src[(ch * h + iy) * w + ix] }
                        }
                    }
                }
            }
        }
        return try! Image(out)
    }
}

/// torchvision's `RandomResizedCrop`: a crop of random area fraction `scale` and aspect
/// ratio `ratio` (log-uniform), resized bilinearly to `size` × `size`. After 10 failed draws
/// it falls back to the largest centred crop within the ratio range, as torchvision does.
public struct RandomResizedCrop: Augmentation {
    public let size: Int
    public let scale: ClosedRange<Float>
    public let ratio: ClosedRange<Float>

    /// - Throws: ``AugmentationError`` unless `size ≥ 1`, `0 < scale ≤ 1` and `0 < ratio`.
    public init(size: Int, scale: ClosedRange<Float> = 0.08...1, ratio: ClosedRange<Float> = 0.75...(4.0 / 3.0)) throws
    {
        try AugmentationError.check(size >= 1, "size", size, "must be ≥ 1")
        try AugmentationError.check(
            scale.lowerBound > 0 && scale.upperBound <= 1, "scale", scale, "must lie within (0, 1]")
        try AugmentationError.check(
            ratio.lowerBound > 0 && ratio.upperBound.isFinite, "ratio", ratio, "must be positive and finite")
        self.size = size
        self.scale = scale
        self.ratio = ratio
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        let (y, x, h, w) = cropBox(height: image.height, width: image.width, using: &generator)
        return Resampling.resizeRegion(image, y0: y, x0: x, height: h, width: w, outHeight: size, outWidth: size)
    }

    /// The crop (top, left, height, width) torchvision's algorithm would choose.
    public func cropBox<G: RandomNumberGenerator>(height: Int, width: Int, using g: inout G) -> (Int, Int, Int, Int) {
        let area = Float(height * width)
        let logLow = log(ratio.lowerBound), logHigh = log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * g.nextUniform(scale.lowerBound, scale.upperBound)
            let aspect = exp(g.nextUniform(logLow, logHigh))
            let w = Int((target * aspect).squareRoot().rounded())
            let h = Int((target / aspect).squareRoot().rounded())
            if w > 0 && w <= width && h > 0 && h <= height {
                return (g.nextInt(below: height - h + 1), g.nextInt(below: width - w + 1), h, w)
            }
        }
        let inRatio = Float(width) / Float(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound {
            h = Swift.max(1, Swift.min(height, Int((Float(w) / ratio.lowerBound).rounded())))
        } else if inRatio > ratio.upperBound {
            w = Swift.max(1, Swift.min(width, Int((Float(h) * ratio.upperBound).rounded())))
        }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }
}

/// Mirrors the image left–right with the given probability.
public struct HorizontalFlip: Augmentation {
    public let probability: Float

    /// - Throws: ``AugmentationError`` unless `0 ≤ probability ≤ 1`.
    public init(probability: Float = 0.5) throws {
        try AugmentationError.check(
            probability >= 0 && probability <= 1, "probability", probability, "must lie in 0...1")
        self.probability = probability
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        guard generator.nextUniform() < probability else { return image }
        var out = image.tensor
        let w = image.width, rows = image.channels * image.height
        out.withUnsafeMutableBufferPointer { b in
            for r in 0..<rows {
                let row = b.baseAddress! + r * w
                var i = 0, j = w - 1
                while i < j { let t = row[i]; row[i] = row[j]; row[j] = t; i += 1; j -= 1 }
            }
        }
        return try! Image(out)
    }
}
