import Layers

/// Patch-size arithmetic from the layers' own ``Layer/outputShape(for:)``.
///
/// Nothing here knows about convolutions or pooling: a stack "reduces a patch to 1x1"
/// when the last four-dimensional activation it produces has height and width 1 (a
/// trailing `Flatten`/`Linear` is fine). Because the layers compute their own shapes,
/// any layer a user writes takes part in the arithmetic unchanged.
public enum ReceptiveField {
    /// The largest patch size searched before concluding none works.
    public static let searchLimit = 1024

    /// Where a shape check failed.
    public struct Failure: Error, Equatable {
        /// Index into the `stages` array passed in (0-based).
        public var stageIndex: Int
        /// Index of the layer within that stage.
        public var layerIndex: Int
        public var layerType: String
        public var reason: String
    }

    /// The output shape of `stages` for a `[1, channels, size, size]` input, and the
    /// spatial extent of the last rank-4 activation along the way.
    public static func trace(
        _ stages: [[any Layer]], channels: Int, size: Int
    ) -> Result<(output: [Int], spatial: (Int, Int)?), Failure> {
        var shape = [1, channels, size, size]
        var spatial: (Int, Int)? = (size, size)
        for (s, layers) in stages.enumerated() {
            for (l, layer) in layers.enumerated() {
                do {
                    shape = try layer.outputShape(for: shape)
                } catch {
                    return .failure(
                        Failure(
                            stageIndex: s, layerIndex: l, layerType: String(describing: type(of: layer)),
                            reason: String(describing: error)))
                }
                if shape.count == 4 { spatial = (shape[2], shape[3]) }
            }
        }
        return .success((shape, spatial))
    }

    /// Whether `stages` turn a `size`×`size` patch into a 1x1 map.
    public static func reducesToOne(_ stages: [[any Layer]], channels: Int, size: Int) -> Bool {
        if case let .success(r) = trace(stages, channels: channels, size: size), let s = r.spatial {
            return s.0 == 1 && s.1 == 1
        }
        return false
    }

    /// The smallest patch size (1…``searchLimit``) for which `stages` reduce to 1x1, or nil.
    public static func smallestPatch(_ stages: [[any Layer]], channels: Int) -> Int? {
        (1...searchLimit).first { reducesToOne(stages, channels: channels, size: $0) }
    }

    /// Patch sizes for greedy training: `firstPatchSize` for stage 1 (which must reduce
    /// to 1x1), then for each stage k the smallest patch that stages 1…k reduce to 1x1.
    ///
    /// - Throws: ``TrainerError/incompatibleStage(stage:layer:reason:)`` when a layer
    ///   rejects its input at every size (e.g. a channel mismatch between stages), or
    ///   ``TrainerError/receptiveField(stage:patchSize:reason:)`` when no patch gives 1x1.
    public static func patchSizes(
        stages: [[any Layer]], inputChannels: Int, firstPatchSize: Int
    ) throws -> [Int] {
        var sizes: [Int] = []
        for k in stages.indices {
            let prefix = Array(stages[0...k])
            if k == 0 {
                switch trace(prefix, channels: inputChannels, size: firstPatchSize) {
                case let .failure(f):
                    // Distinguish "the patch is too small" from "the layers do not fit at all".
                    if !anySizeFits(prefix, inputChannels) { throw incompatible(f) }
                    throw TrainerError.receptiveField(
                        stage: 1, patchSize: firstPatchSize,
                        reason:
                            "the patch is too small for the stage: layer \(f.layerIndex) (\(f.layerType)): \(f.reason)"
                            + hint(prefix, inputChannels))
                case let .success(r):
                    guard let s = r.spatial, s == (1, 1) else {
                        let got = r.spatial.map { "\($0.0)x\($0.1)" } ?? "no spatial map"
                        throw TrainerError.receptiveField(
                            stage: 1, patchSize: firstPatchSize,
                            reason: "the stage reduces the patch to \(got) (output \(r.output)), not 1x1"
                                + hint(prefix, inputChannels))
                    }
                }
                sizes.append(firstPatchSize)
            } else {
                if let p = smallestPatch(prefix, channels: inputChannels) {
                    sizes.append(p)
                    continue
                }
                if !anySizeFits(prefix, inputChannels),
                    case let .failure(f) = trace(prefix, channels: inputChannels, size: searchLimit)
                {
                    throw incompatible(f)
                }
                throw TrainerError.receptiveField(
                    stage: k + 1, patchSize: nil,
                    reason: "no patch size up to \(searchLimit) makes stages 1…\(k + 1) produce a 1x1 map")
            }
        }
        return sizes
    }

    private static func anySizeFits(_ stages: [[any Layer]], _ channels: Int) -> Bool {
        (1...searchLimit).contains { size in
            if case .success = trace(stages, channels: channels, size: size) { return true }
            return false
        }
    }

    private static func incompatible(_ f: Failure) -> TrainerError {
        .incompatibleStage(stage: f.stageIndex + 1, layer: "\(f.layerIndex) (\(f.layerType))", reason: f.reason)
    }

    private static func hint(_ stages: [[any Layer]], _ channels: Int) -> String {
        guard let p = smallestPatch(stages, channels: channels) else { return "" }
        return "; the smallest patch that gives 1x1 is \(p)x\(p)"
    }
}
