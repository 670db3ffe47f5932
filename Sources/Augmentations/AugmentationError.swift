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
