import TensorCore

/// Random brightness, contrast, saturation and hue changes with torchvision's semantics
/// (`transforms.ColorJitter`), for images with values in [0, 1].
///
/// - brightness b: multiply by a factor from [max(0, 1 − b), 1 + b];
/// - contrast c: blend with the mean grey level, factor from [max(0, 1 − c), 1 + c];
/// - saturation s: blend with the per-pixel grey image, factor from [max(0, 1 − s), 1 + s];
/// - hue h ≤ 0.5: shift the HSV hue by a value from [−h, h] (in turns).
///
/// The four operations run in a random order (as torchvision does); each clamps to [0, 1].
/// A strength of 0 skips that operation entirely, so all zeros is the identity. Saturation
/// and hue need RGB: images with other than 3 channels skip them (contrast then uses the
/// mean over all channels).
public struct ColorJitter: Augmentation {
    public let brightness: Float
    public let contrast: Float
    public let saturation: Float
    public let hue: Float

    /// - Throws: ``AugmentationError`` when a strength is negative or not finite, or `hue > 0.5`.
    public init(brightness: Float = 0, contrast: Float = 0, saturation: Float = 0, hue: Float = 0) throws {
        for (name, v) in [("brightness", brightness), ("contrast", contrast), ("saturation", saturation)] {
            try AugmentationError.check(v >= 0 && v.isFinite, name, v, "must be ≥ 0 and finite")
        }
        try AugmentationError.check(hue >= 0 && hue <= 0.5, "hue", hue, "must lie in 0...0.5")
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        var order = [0, 1, 2, 3]
        order.shuffle(using: &generator)
        var t = image.tensor
        let c = image.channels, plane = image.height * image.width
        let rgb = c == 3
        t.withUnsafeMutableBufferPointer { b in
            let p = b.baseAddress!
            for op in order {
                switch op {
                case 0 where brightness > 0:
                    let f = generator.nextUniform(Swift.max(0, 1 - brightness), 1 + brightness)
                    for i in 0..<b.count { p[i] = clamp01(p[i] * f) }
                case 1 where contrast > 0:
                    let f = generator.nextUniform(Swift.max(0, 1 - contrast), 1 + contrast)
                    var sum: Float = 0
                    if rgb {
                        for i in 0..<plane { sum += gray(p[i], p[plane + i], p[2 * plane + i]) }
                        sum /= Float(plane)
                    } else {
                        for i in 0..<b.count { sum += p[i] }
                        sum /= Float(b.count)
                    }
                    let mean = sum
                    for i in 0..<b.count { p[i] = clamp01(f * p[i] + (1 - f) * mean) }
                case 2 where saturation > 0 && rgb:
                    let f = generator.nextUniform(Swift.max(0, 1 - saturation), 1 + saturation)
                    for i in 0..<plane {
                        let g = gray(p[i], p[plane + i], p[2 * plane + i])
                        for ch in 0..<3 { p[ch * plane + i] = clamp01(f * p[ch * plane + i] + (1 - f) * g) }
                    }
                case 3 where hue > 0 && rgb:
                    let shift = generator.nextUniform(-hue, hue)
                    for i in 0..<plane {
                        var (h, s, v) = rgbToHSV(p[i], p[plane + i], p[2 * plane + i])
                        h = (h + shift).truncatingRemainder(dividingBy: 1)
                        if h < 0 { h += 1 }
                        let (r, g, bl) = hsvToRGB(h, s, v)
                        p[i] = clamp01(r); p[plane + i] = clamp01(g); p[2 * plane + i] = clamp01(bl)
                    }
                default:
                    break
                }
            }
        }
        return try! Image(t)
    }
}

@inline(__always) func clamp01(_ v: Float) -> Float { Swift.min(Swift.max(v, 0), 1) }

/// ITU-R 601-2 luma, as torchvision's `rgb_to_grayscale`.
@inline(__always) func gray(_ r: Float, _ g: Float, _ b: Float) -> Float { 0.299 * r + 0.587 * g + 0.114 * b }

/// RGB → HSV with all components in [0, 1] (torchvision's `_rgb2hsv`).
func rgbToHSV(_ r: Float, _ g: Float, _ b: Float) -> (Float, Float, Float) {
    let maxc = Swift.max(r, g, b), minc = Swift.min(r, g, b)
    let cr = maxc - minc
    let s = maxc > 0 ? cr / maxc : 0
    guard cr > 0 else { return (0, s, maxc) }
    let rc = (maxc - r) / cr, gc = (maxc - g) / cr, bc = (maxc - b) / cr
    var h: Float
    if maxc == r { h = bc - gc } else if maxc == g { h = 2 + rc - bc } else { h = 4 + gc - rc }
    h = (h / 6).truncatingRemainder(dividingBy: 1)
    if h < 0 { h += 1 }
    return (h, s, maxc)
}

/// HSV → RGB (torchvision's `_hsv2rgb`).
func hsvToRGB(_ h: Float, _ s: Float, _ v: Float) -> (Float, Float, Float) {
    let h6 = h * 6
    let i = Int(h6.rounded(.down))
    let f = h6 - Float(i)
    let p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f))
    switch ((i % 6) + 6) % 6 {
    case 0: return (v, t, p)
    case 1: return (q, v, p)
    case 2: return (p, v, t)
    case 3: return (p, q, v)
    case 4: return (t, p, v)
    default: return (v, p, q)
    }
}

/// Converts RGB images to grey (replicated into 3 channels, luma weights 0.299/0.587/0.114)
/// with the given probability. Images with other than 3 channels are returned unchanged.
public struct RandomGrayscale: Augmentation {
    public let probability: Float

    /// - Throws: ``AugmentationError`` unless `0 ≤ probability ≤ 1`.
    public init(probability: Float = 0.1) throws {
        try AugmentationError.check(
            probability >= 0 && probability <= 1, "probability", probability, "must lie in 0...1")
        self.probability = probability
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        guard generator.nextUniform() < probability, image.channels == 3 else { return image }
        var t = image.tensor
        let plane = image.height * image.width
        t.withUnsafeMutableBufferPointer { b in
            let p = b.baseAddress!
            for i in 0..<plane {
                let g = gray(p[i], p[plane + i], p[2 * plane + i])
                p[i] = g; p[plane + i] = g; p[2 * plane + i] = g
            }
        }
        return try! Image(t)
    }
}

/// Adds independent Gaussian noise N(0, σ²) to every pixel. Values are not clamped, so the
/// noise stays zero-mean even near 0 and 1.
public struct GaussianNoise: Augmentation {
    public let standardDeviation: Float

    /// - Throws: ``AugmentationError`` unless σ ≥ 0 and finite.
    public init(standardDeviation: Float) throws {
        try AugmentationError.check(
            standardDeviation >= 0 && standardDeviation.isFinite, "standardDeviation", standardDeviation,
            "must be ≥ 0 and finite")
        self.standardDeviation = standardDeviation
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        guard standardDeviation > 0 else { return image }
        var t = image.tensor
        t.withUnsafeMutableBufferPointer { b in
            for i in b.indices { b[i] += generator.nextNormal(mean: 0, standardDeviation: standardDeviation) }
        }
        return try! Image(t)
    }
}
