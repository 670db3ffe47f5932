import TensorCore

/// Applies augmentations in order, threading the same generator through all of them.
public struct Compose: Augmentation {
    public let augmentations: [any Augmentation]

    public init(_ augmentations: [any Augmentation]) {
        self.augmentations = augmentations
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        var out = image
        for a in augmentations { out = a.apply(to: out, using: &generator) }
        return out
    }
}

/// Applies an augmentation with probability `probability`, otherwise passes the image through
/// (torchvision's `RandomApply`).
public struct RandomApply: Augmentation {
    public let augmentation: any Augmentation
    public let probability: Float

    /// - Throws: ``AugmentationError/invalidOption(name:value:reason:)`` unless 0 ≤ probability ≤ 1.
    public init(_ augmentation: any Augmentation, probability: Float) throws {
        guard probability >= 0, probability <= 1 else {
            throw AugmentationError.invalidOption(
                name: "probability", value: "\(probability)", reason: "must be in [0, 1]")
        }
        self.augmentation = augmentation
        self.probability = probability
    }

    public func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        generator.nextUniform() < probability ? augmentation.apply(to: image, using: &generator) : image
    }
}
