/// Errors of the `layerwise` tool; each names the option or file and what is wrong.
public enum CommandLineError: Error, Equatable, CustomStringConvertible {
    case missingFile(path: String, what: String)
    case badRecipe(file: String, reason: String)
    case badOption(name: String, value: String, reason: String)
    case badModel(file: String, reason: String)
    case unknownData(path: String, reason: String)

    public var description: String {
        switch self {
        case let .missingFile(path, what): return "no such \(what) file: \(path)"
        case let .badRecipe(file, reason): return "recipe \(file): \(reason)"
        case let .badOption(name, value, reason): return "invalid \(name) \(value): \(reason)"
        case let .badModel(file, reason): return "model \(file): \(reason)"
        case let .unknownData(path, reason): return "data \(path): \(reason)"
        }
    }
}
