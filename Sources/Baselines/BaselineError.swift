/// Errors of the classical baselines (k-means, the Coates et al. pipeline), thrown before
/// any work is done.
public enum BaselineError: Error, Equatable, CustomStringConvertible {
    /// An option has a value that cannot work.
    case invalidOption(name: String, value: String, reason: String)
    /// Fewer data rows than clusters.
    case tooFewRows(rows: Int, clusters: Int)
    /// The data holds NaN or infinity at (`row`, `column`).
    case nonFiniteData(what: String, row: Int, column: Int)
    /// Sizes that must agree do not.
    case shapeMismatch(what: String, expected: String, got: String)

    public var description: String {
        switch self {
        case let .invalidOption(name, value, reason):
            return "invalid \(name) = \(value): \(reason)"
        case let .tooFewRows(rows, clusters):
            return "k-means needs at least as many rows as clusters: \(rows) rows for \(clusters) clusters"
        case let .nonFiniteData(what, row, column):
            return "\(what) holds a non-finite value at row \(row), column \(column)"
        case let .shapeMismatch(what, expected, got):
            return "\(what): expected \(expected), got \(got)"
        }
    }
}
