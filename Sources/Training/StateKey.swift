import Layers

/// Builds every name under which the trainers store state: checkpoint and weight
/// tensors, optimizer slots, saved generators and the names ``TransferClassifier``
/// loads. No other code spells these names, so they cannot drift apart.
///
/// | state | name |
/// |---|---|
/// | layer `i` of stage `k` (and anything inside it) | `stage<k>.<i>.<path>` (``layer(stage:index:)``) |
/// | the projection head of stage `k` | `stage<k>.head.<path>` (``head(stage:)``) |
/// | the objective of stage `k` | `stage<k>.objective.<name>` (``objective(stage:)``) |
/// | a classifier's head layers | `head.<i>.<path>` (``classifierHead``) |
/// | optimizer slot `s` of a parameter | `optimizer.<parameter name>.<s>` (``optimizer(_:)``) |
/// | a component's own generator (metadata) | `generator.<owner name>` (``generator(_:)``) |
///
/// Paths inside a layer come from ``LayerTree`` (`"0.weight"` inside a ``Sequential``).
/// Stages are numbered from 1; end-to-end training stores its state under the same names.
public enum StateKey {
    /// `"stage"`: stage names are this followed by the stage number.
    public static let stagePrefix = "stage"
    /// `"stage<k>"`: the prefix of everything stage `k` (1-based) owns.
    public static func stage(_ k: Int) -> String { stagePrefix + String(k) }
    /// `"stage<k>.<i>"`: layer `i` (0-based) of stage `k`.
    public static func layer(stage k: Int, index i: Int) -> String { LayerTree.join(stage(k), String(i)) }
    /// `"stage<k>.head"`: the projection head of stage `k`.
    public static func head(stage k: Int) -> String { LayerTree.join(stage(k), "head") }
    /// `"stage<k>.objective"`: the auxiliary parameters and generators of stage `k`'s objective.
    public static func objective(stage k: Int) -> String { LayerTree.join(stage(k), "objective") }
    /// `"head"`: the head layers of a ``TransferClassifier``.
    public static let classifierHead = "head"
    /// `"optimizer.<name>"`: the optimizer state of the parameter named `name`.
    public static func optimizer(_ name: String) -> String { LayerTree.join("optimizer", name) }
    /// Whether `name` is optimizer state.
    public static func isOptimizerState(_ name: String) -> Bool { name.hasPrefix("optimizer.") }
    /// Whether `name` belongs to some stage's objective.
    public static func isObjectiveState(_ name: String) -> Bool { name.contains(".objective.") }
    /// `"generator.<name>"`: the metadata field holding the generator of the component `name`.
    public static func generator(_ name: String) -> String { LayerTree.join("generator", name) }

    /// Every parameter of a list of layers named `"<prefix>.<index>.<path>"`.
    public static func parameters(of layers: [any Layer], prefix: String) -> [(name: String, parameter: Parameter)] {
        LayerTree.namedParameters(LayerTree.indexed(layers), prefix: prefix)
    }

    /// Every buffer of a list of layers named `"<prefix>.<index>.<path>"`.
    public static func buffers(of layers: [any Layer], prefix: String) -> [(name: String, parameter: Parameter)] {
        LayerTree.namedBuffers(LayerTree.indexed(layers), prefix: prefix)
    }

    /// Parameters, then buffers, of a list of layers under `prefix`.
    public static func state(of layers: [any Layer], prefix: String) -> [(name: String, parameter: Parameter)] {
        parameters(of: layers, prefix: prefix) + buffers(of: layers, prefix: prefix)
    }

    /// Parameters, then buffers, of one layer tree (a head) under `prefix`.
    public static func state(of layer: any Layer, prefix: String) -> [(name: String, parameter: Parameter)] {
        layer.namedParameters(prefix: prefix) + layer.namedBuffers(prefix: prefix)
    }

    /// Named parameters (an objective's auxiliary ones) under `prefix`.
    public static func prefixed(
        _ parameters: [Parameter], prefix: String
    ) -> [(name: String, parameter: Parameter)] {
        parameters.map { (LayerTree.join(prefix, $0.name), $0) }
    }
}
