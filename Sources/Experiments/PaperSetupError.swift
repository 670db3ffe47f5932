/// A choice of the paper's experiment that cannot be made as asked.
public enum PaperSetupError: Error, Equatable, CustomStringConvertible {
    /// `value` names no `kind` (e.g. "transfer arm", "distance"); `valid` lists the names that do.
    case unknownName(kind: String, value: String, valid: [String])
    /// An option outside its range.
    case invalidOption(name: String, value: String, reason: String)
    /// An arm that transfers weights was given none.
    case missingPretrainedWeights(arm: String)

    public var description: String {
        switch self {
        case let .unknownName(kind, value, valid):
            return "unknown \(kind) \"\(value)\"; valid: \(valid.joined(separator: ", "))"
        case let .invalidOption(name, value, reason):
            return "\(name) = \(value): \(reason)"
        case let .missingPretrainedWeights(arm):
            return "transfer arm \(arm) needs pretrained weights, and none were given"
        }
    }
}

/// A choice made by name: an enum whose raw values are the names users type.
public protocol NamedChoice: RawRepresentable, CaseIterable where RawValue == String {
    /// What the choice is called in error messages ("transfer arm", "distance", …).
    static var kind: String { get }
}

extension NamedChoice {
    /// The case called `name`.
    ///
    /// - Throws: ``PaperSetupError/unknownName(kind:value:valid:)`` naming `name` and
    ///   listing every valid name.
    public init(named name: String) throws(PaperSetupError) {
        guard let value = Self(rawValue: name) else {
            throw .unknownName(kind: Self.kind, value: name, valid: Self.allCases.map(\.rawValue))
        }
        self = value
    }
}
