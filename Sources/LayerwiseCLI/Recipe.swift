import Foundation

/// A pretraining recipe as a JSON file: the stages, the objective and the budget.
///
/// Every key is optional (the default recipe fills the gaps) and unknown keys are errors, so
/// a typo cannot silently fall back to a default. `layerwise recipe --print default` writes
/// the default in full.
public struct PretrainRecipe: Codable, Equatable, Sendable {
    /// Side of the square input images (image folders are resized and cropped to it).
    public var inputSize = 32
    /// The seed of every random choice (initial weights, sampling, k-means).
    public var seed: UInt64 = 7
    /// Where positives come from: `neighbor` (a second patch of the same image) or
    /// `framePair` (the same place in another frame of a clip; needs clip data).
    public var positives = Positives.neighbor
    /// The contrastive objective shared by all stages.
    public var objective = ObjectiveRecipe()
    /// The stages, trained one after the other, bottom first.
    public var stages = [StageRecipe()]

    public enum Positives: String, Codable, Sendable, CaseIterable {
        case neighbor, framePair
    }

    public init() {}

    /// The library's default recipe: one ZCA-whitened 6x6 stage of 64 filters started from
    /// the k-means filters and refined with InfoNCE on neighbouring patches (Docs/RecipeStudy.md).
    public static let `default` = PretrainRecipe()

    /// The default with a second, input-whitened 3x3 stage of 128 filters on top.
    public static let twoStage: PretrainRecipe = {
        var r = PretrainRecipe()
        r.stages.append(StageRecipe(filters: 128, kernelSize: 3, whitening: 0.01, start: .random))
        return r
    }()

    /// Named built-in recipes.
    public static let builtIn: [String: PretrainRecipe] = ["default": .default, "two-stage": .twoStage]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case inputSize, seed, positives, objective, stages
    }

    public init(from decoder: any Decoder) throws {
        try RecipeKeys.rejectUnknown(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PretrainRecipe.default
        inputSize = try c.decodeIfPresent(Int.self, forKey: .inputSize) ?? d.inputSize
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        positives = try c.decodeIfPresent(Positives.self, forKey: .positives) ?? d.positives
        objective = try c.decodeIfPresent(ObjectiveRecipe.self, forKey: .objective) ?? d.objective
        stages = try c.decodeIfPresent([StageRecipe].self, forKey: .stages) ?? d.stages
    }

    /// Reads and validates a recipe file.
    /// - Throws: ``CommandLineError`` naming the file and the key that is wrong.
    public static func load(path: String) throws -> PretrainRecipe {
        if let named = builtIn[path], !FileManager.default.fileExists(atPath: path) { return named }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandLineError.missingFile(path: path, what: "recipe")
        }
        let recipe: PretrainRecipe
        do {
            recipe = try JSONDecoder().decode(PretrainRecipe.self, from: data)
        } catch let error as DecodingError {
            throw CommandLineError.badRecipe(file: path, reason: RecipeKeys.describe(error))
        } catch {
            throw CommandLineError.badRecipe(file: path, reason: "\(error)")
        }
        try recipe.validate(file: path)
        return recipe
    }

    /// The recipe as pretty-printed JSON.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Checks every value; `file` names the source in errors.
    public func validate(file: String = "recipe") throws {
        func bad(_ key: String, _ value: Any, _ reason: String) -> CommandLineError {
            .badRecipe(file: file, reason: "\(key) = \(value): \(reason)")
        }
        guard (4...1024).contains(inputSize) else { throw bad("inputSize", inputSize, "must lie in 4...1024") }
        guard !stages.isEmpty else { throw bad("stages", "[]", "needs at least one stage") }
        try objective.validate(bad)
        for (i, s) in stages.enumerated() {
            let key = "stages[\(i)]"
            guard (1...4096).contains(s.filters) else { throw bad("\(key).filters", s.filters, "must lie in 1...4096") }
            guard (1...64).contains(s.kernelSize) else {
                throw bad("\(key).kernelSize", s.kernelSize, "must lie in 1...64")
            }
            guard (1...16).contains(s.pool) else { throw bad("\(key).pool", s.pool, "must lie in 1...16") }
            guard s.learningRate > 0, s.learningRate.isFinite else {
                throw bad("\(key).learningRate", s.learningRate, "must be positive")
            }
            guard (1...65_536).contains(s.batchSize) else {
                throw bad("\(key).batchSize", s.batchSize, "must lie in 1...65536")
            }
            guard s.epochs >= 1 else { throw bad("\(key).epochs", s.epochs, "must be ≥ 1") }
            if let n = s.stepsPerEpoch, n < 1 {
                throw bad("\(key).stepsPerEpoch", n, "must be ≥ 1 (or null: automatic)")
            }
            guard s.minimumStepsPerEpoch >= 1 else {
                throw bad("\(key).minimumStepsPerEpoch", s.minimumStepsPerEpoch, "must be ≥ 1")
            }
            if let e = s.whitening, !(e > 0 && e.isFinite) {
                throw bad("\(key).whitening", e, "must be positive (or null: none)")
            }
            if s.start == .kmeans && (i > 0 || s.whitening == nil) {
                throw bad("\(key).start", "kmeans", "the k-means start needs stage 1 with whitening set")
            }
        }
    }
}

/// The contrastive objective of a recipe.
public struct ObjectiveRecipe: Codable, Equatable, Sendable {
    /// `infonce` (in-batch negatives) or `triplet` (one random negative, cosine distance).
    public var loss = Loss.infonce
    /// InfoNCE temperature.
    public var temperature: Float = 0.1
    /// Triplet margin.
    public var margin: Float = 0.5
    /// Largest anchor–positive offset in pixels (neighbour positives).
    public var maxOffset = 4
    /// Colour jitter strength (brightness, contrast, saturation in 1 ± s) of every view.
    public var viewJitter: Float = 0.8
    /// Probability of that jitter per view.
    public var viewJitterProbability: Float = 0.8
    /// Probability of a grayscale view.
    public var viewGrayscale: Float = 0.5
    /// Mirror each source image (both views alike) with probability ½.
    public var flips = true

    public enum Loss: String, Codable, Sendable, CaseIterable {
        case infonce, triplet
    }

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case loss, temperature, margin, maxOffset, viewJitter, viewJitterProbability, viewGrayscale, flips
    }

    public init(from decoder: any Decoder) throws {
        try RecipeKeys.rejectUnknown(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ObjectiveRecipe()
        loss = try c.decodeIfPresent(Loss.self, forKey: .loss) ?? d.loss
        temperature = try c.decodeIfPresent(Float.self, forKey: .temperature) ?? d.temperature
        margin = try c.decodeIfPresent(Float.self, forKey: .margin) ?? d.margin
        maxOffset = try c.decodeIfPresent(Int.self, forKey: .maxOffset) ?? d.maxOffset
        viewJitter = try c.decodeIfPresent(Float.self, forKey: .viewJitter) ?? d.viewJitter
        viewJitterProbability =
            try c.decodeIfPresent(Float.self, forKey: .viewJitterProbability) ?? d.viewJitterProbability
        viewGrayscale = try c.decodeIfPresent(Float.self, forKey: .viewGrayscale) ?? d.viewGrayscale
        flips = try c.decodeIfPresent(Bool.self, forKey: .flips) ?? d.flips
    }

    func validate(_ bad: (String, Any, String) -> CommandLineError) throws {
        guard temperature > 0, temperature.isFinite else {
            throw bad("objective.temperature", temperature, "must be positive")
        }
        guard margin >= 0, margin.isFinite else { throw bad("objective.margin", margin, "must be ≥ 0") }
        guard maxOffset >= 0 else { throw bad("objective.maxOffset", maxOffset, "must be ≥ 0") }
        guard (0...1).contains(viewJitter) else { throw bad("objective.viewJitter", viewJitter, "must lie in 0...1") }
        for (key, p) in [("viewJitterProbability", viewJitterProbability), ("viewGrayscale", viewGrayscale)] {
            guard (0...1).contains(p) else { throw bad("objective.\(key)", p, "must lie in 0...1") }
        }
    }
}

/// One stage of a recipe: conv (optionally ZCA-whitened) → max-pool → ReLU, and its budget.
public struct StageRecipe: Codable, Equatable, Sendable {
    public var filters = 64
    public var kernelSize = 6
    /// Max-pooling window and stride (1 = none).
    public var pool = 2
    /// ZCA whitening of the conv's input windows with this ε (stage 1: absolute, on
    /// standardised windows; above: relative to the mean window variance); null = none.
    public var whitening: Float? = 0.1
    /// How stage 1's filters start: `kmeans` (the k-means filters of its whitened windows) or `random`.
    public var start = Start.kmeans
    public var learningRate: Float = 1e-3
    public var batchSize = 512
    public var epochs = 10
    /// Steps per epoch; null = ⌈images / batch⌉, at least ``minimumStepsPerEpoch``.
    public var stepsPerEpoch: Int?
    public var minimumStepsPerEpoch = 10

    public enum Start: String, Codable, Sendable, CaseIterable {
        case kmeans, random
    }

    public init(
        filters: Int = 64, kernelSize: Int = 6, pool: Int = 2, whitening: Float? = 0.1, start: Start = .kmeans,
        learningRate: Float = 1e-3, batchSize: Int = 512, epochs: Int = 10, stepsPerEpoch: Int? = nil,
        minimumStepsPerEpoch: Int = 10
    ) {
        self.filters = filters
        self.kernelSize = kernelSize
        self.pool = pool
        self.whitening = whitening
        self.start = start
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.epochs = epochs
        self.stepsPerEpoch = stepsPerEpoch
        self.minimumStepsPerEpoch = minimumStepsPerEpoch
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case filters, kernelSize, pool, whitening, start, learningRate, batchSize, epochs, stepsPerEpoch
        case minimumStepsPerEpoch
    }

    public init(from decoder: any Decoder) throws {
        try RecipeKeys.rejectUnknown(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = StageRecipe()
        filters = try c.decodeIfPresent(Int.self, forKey: .filters) ?? d.filters
        kernelSize = try c.decodeIfPresent(Int.self, forKey: .kernelSize) ?? d.kernelSize
        pool = try c.decodeIfPresent(Int.self, forKey: .pool) ?? d.pool
        whitening = c.contains(.whitening) ? try c.decodeIfPresent(Float.self, forKey: .whitening) : d.whitening
        start = try c.decodeIfPresent(Start.self, forKey: .start) ?? d.start
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        stepsPerEpoch = try c.decodeIfPresent(Int.self, forKey: .stepsPerEpoch)
        minimumStepsPerEpoch = try c.decodeIfPresent(Int.self, forKey: .minimumStepsPerEpoch) ?? d.minimumStepsPerEpoch
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(filters, forKey: .filters)
        try c.encode(kernelSize, forKey: .kernelSize)
        try c.encode(pool, forKey: .pool)
        try c.encode(whitening, forKey: .whitening)  // null, not absent: absent means the default
        try c.encode(start, forKey: .start)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(stepsPerEpoch, forKey: .stepsPerEpoch)
        try c.encode(minimumStepsPerEpoch, forKey: .minimumStepsPerEpoch)
    }

    /// The patch side this stage's stack reduces to one output position (stage 1).
    var firstPatchSize: Int { kernelSize + pool - 1 }

    /// Steps per epoch for `images` training images.
    func steps(forImages images: Int) -> Int {
        stepsPerEpoch ?? max(minimumStepsPerEpoch, (images + batchSize - 1) / batchSize)
    }
}

/// Strict JSON keys.
enum RecipeKeys {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static func rejectUnknown<K: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: K.Type) throws {
        let known = Set(K.allCases.map(\.stringValue))
        let c = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = c.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath + [unknown],
                    debugDescription:
                        "unknown key '\(unknown.stringValue)' (known: \(known.sorted().joined(separator: ", ")))"))
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var s = ""
        for key in codingPath {
            if let i = key.intValue { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + key.stringValue }
        }
        return s.isEmpty ? "the top level" : s
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case let .typeMismatch(type, context):
            return "\(path(context.codingPath)): expected \(type)"
        case let .valueNotFound(type, context):
            return "\(path(context.codingPath)): expected \(type), found null"
        case let .keyNotFound(key, context):
            return "\(path(context.codingPath + [key])): missing"
        case let .dataCorrupted(context):
            let underlying = context.underlyingError.map { " (\($0.localizedDescription))" } ?? ""
            return "\(path(context.codingPath)): \(context.debugDescription)\(underlying)"
        @unknown default:
            return "\(error)"
        }
    }
}
