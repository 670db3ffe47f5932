import TensorCore

/// A bad augmentation option, named, with the value given and what would work.
public enum AugmentationError: Error, Equatable, CustomStringConvertible {
    case invalidOption(name: String, value: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidOption(name, value, reason):
            return "invalid \(name) = \(value): \(reason)"
        }
    }

    static func check(_ ok: Bool, _ name: String, _ value: Any, _ reason: String) throws {
        if !ok { throw AugmentationError.invalidOption(name: name, value: "\(value)", reason: reason) }
    }
}

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
