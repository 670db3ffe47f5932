import Foundation

/// Per-stage settings written as text, as a command line gives them: one value for every
/// stage (`"0.05"`) or one value per stage, bottom first (`"0.08,0.05,0.05"`).
public enum StageValues {
    /// The value of each of `stages` stages.
    ///
    /// - Parameters:
    ///   - text: one value, or `stages` comma-separated values (spaces around them are ignored).
    ///   - option: the option's name, for errors.
    ///   - requirement: what a valid value is, for errors (e.g. "a positive, finite number").
    ///   - isValid: whether a parsed value is allowed.
    /// - Throws: ``TrainerError/invalidOption(stage:option:value:reason:)`` naming the option,
    ///   and the stage when one value is bad: a count other than 1 or `stages`, a value that
    ///   does not parse, or one `isValid` rejects.
    public static func parse<T: LosslessStringConvertible>(
        _ text: String, option: String, stages: Int, requirement: String, isValid: (T) -> Bool = { _ in true }
    ) throws -> [T] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard items.count == 1 || items.count == stages else {
            throw TrainerError.invalidOption(
                stage: nil, option: option, value: text,
                reason: "give one value for every stage or \(stages) comma-separated values, one per stage")
        }
        let values = try items.enumerated().map { i, item -> T in
            guard let v = T(item), isValid(v) else {
                throw TrainerError.invalidOption(
                    stage: items.count == 1 ? nil : i + 1, option: option, value: item,
                    reason: "expected \(requirement)")
            }
            return v
        }
        return values.count == stages ? values : Array(repeating: values[0], count: stages)
    }
}
