import TensorCore

/// A composite whose ``Layer/children`` run one after another, each reading the previous
/// one's output, like ``Sequential``. Analyses that follow data through a stack
/// (``InputTrimming``) look inside such layers; any other composite (a residual block,
/// say) is one opaque layer to them.
public protocol ChainedLayer: Layer {}

/// The one walk over trees of layers.
///
/// Every layer is visited with its **path**: the names of the layers above it and its
/// own, joined by dots (`"stage1.0.2"`). Parameter, buffer and generator names are paths
/// too (`"stage1.0.2.weight"`), so a composite that lists its ``Layer/children`` gets
/// checkpoint names, saved generators and input-gradient skipping without extra code.
/// A composite's own parameters (those none of its children holds) are named after the
/// composite (`"<path>.<parameter name>"`).
public enum LayerTree {
    /// A list of layers as roots named by index (`"0"`, `"1"`, …), as in a stage.
    public static func indexed(_ layers: [any Layer]) -> [(name: String, layer: any Layer)] {
        layers.enumerated().map { (String($0.offset), $0.element) }
    }

    /// `prefix.name`, or whichever of the two is not empty.
    public static func join(_ prefix: String, _ name: String) -> String {
        if prefix.isEmpty { return name }
        if name.isEmpty { return prefix }
        return prefix + "." + name
    }

    /// Calls `body` for every layer of the trees under `roots`, a layer before its children,
    /// with its path under `prefix`. Stops descending below layers for which
    /// `descendingInto` is false (they are still visited).
    public static func visit(
        _ roots: [(name: String, layer: any Layer)], prefix: String = "",
        descendingInto: (any Layer) -> Bool = { _ in true },
        _ body: (_ path: String, _ layer: any Layer) throws -> Void
    ) rethrows {
        func walk(_ layer: any Layer, _ path: String) throws {
            try body(path, layer)
            guard descendingInto(layer) else { return }
            for child in layer.children { try walk(child.layer, join(path, child.name)) }
        }
        for root in roots { try walk(root.layer, join(prefix, root.name)) }
    }

    /// Every parameter of the trees under `roots`, named by path.
    public static func namedParameters(
        _ roots: [(name: String, layer: any Layer)], prefix: String = ""
    ) -> [(name: String, parameter: Parameter)] {
        named(roots, prefix: prefix, \.parameters)
    }

    /// Every buffer of the trees under `roots`, named by path.
    public static func namedBuffers(
        _ roots: [(name: String, layer: any Layer)], prefix: String = ""
    ) -> [(name: String, parameter: Parameter)] {
        named(roots, prefix: prefix, \.buffers)
    }

    /// Every layer of the trees that draws from a generator of its own (e.g. ``Dropout``),
    /// named by its path: their generators are part of a run's state.
    public static func generatorOwners(
        _ roots: [(name: String, layer: any Layer)], prefix: String = ""
    ) -> [(name: String, owner: any GeneratorOwning)] {
        var out: [(name: String, owner: any GeneratorOwning)] = []
        visit(roots, prefix: prefix) { path, layer in
            if let owner = layer as? any GeneratorOwning { out.append((path, owner)) }
        }
        return out
    }

    /// The layers without children under `layers`, in order (descending only where
    /// `descendingInto` allows; a layer it stops at counts as a leaf).
    public static func leaves(
        _ layers: [any Layer], descendingInto: (any Layer) -> Bool = { _ in true }
    ) -> [any Layer] {
        var out: [any Layer] = []
        visit(indexed(layers), descendingInto: descendingInto) { _, layer in
            if layer.children.isEmpty || !descendingInto(layer) { out.append(layer) }
        }
        return out
    }

    /// The parameters of `layer` that none of its children holds (all of them for a leaf).
    public static func ownParameters(of layer: any Layer) -> [Parameter] {
        own(layer, \.parameters)
    }

    private static func own(_ layer: any Layer, _ state: KeyPath<any Layer, [Parameter]>) -> [Parameter] {
        let children = layer.children
        guard !children.isEmpty else { return layer[keyPath: state] }
        let held = Set(children.flatMap { $0.layer[keyPath: state] }.map(ObjectIdentifier.init))
        return layer[keyPath: state].filter { !held.contains(ObjectIdentifier($0)) }
    }

    private static func named(
        _ roots: [(name: String, layer: any Layer)], prefix: String, _ state: KeyPath<any Layer, [Parameter]>
    ) -> [(name: String, parameter: Parameter)] {
        var out: [(name: String, parameter: Parameter)] = []
        visit(roots, prefix: prefix) { path, layer in
            for p in own(layer, state) { out.append((join(path, p.name), p)) }
        }
        return out
    }
}

extension Layer {
    /// Every parameter of this layer and the layers inside it, named by path under
    /// `prefix` (`"0.weight"` for the first child of a ``Sequential``).
    public func namedParameters(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        LayerTree.namedParameters([("", self)], prefix: prefix)
    }

    /// Every buffer of this layer and the layers inside it, named by path under `prefix`.
    public func namedBuffers(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        LayerTree.namedBuffers([("", self)], prefix: prefix)
    }
}

/// A layer whose freshly constructed state is not the default rule of
/// ``LayerTree/reinitialize(_:initializer:using:)`` (e.g. ``BatchNorm``: γ = 1, β = 0
/// and fresh running statistics).
public protocol Reinitializable: Layer {
    /// Restores the state of a freshly constructed layer, drawing any randomness from
    /// `generator`.
    func reinitialize(initializer: WeightInitializer, using generator: inout SeededGenerator)
}

extension LayerTree {
    /// Redraws the parameters of every layer under `layers`, in order: a ``Reinitializable``
    /// layer does it itself; any other layer's weights of rank ≥ 2 come from `initializer`
    /// and the rest (biases) are zeroed — the library layers' own construction rule.
    public static func reinitialize(
        _ layers: [any Layer], initializer: WeightInitializer, using generator: inout SeededGenerator
    ) {
        var nodes: [any Layer] = []
        visit(indexed(layers), descendingInto: { !($0 is any Reinitializable) }, { _, layer in nodes.append(layer) })
        for layer in nodes {
            if let custom = layer as? any Reinitializable {
                custom.reinitialize(initializer: initializer, using: &generator)
                continue
            }
            for p in ownParameters(of: layer) {
                p.value =
                    p.value.shape.count >= 2
                    ? initializer.makeWeight(shape: p.value.shape, using: &generator) : .zeros(p.value.shape)
            }
        }
    }
}

extension LayerTree {
    /// A layer and the input-gradient flag it had before ``configureInputGradients(_:)``.
    public typealias InputGradientFlag = (layer: any InputGradientSkipping, needsInputGradient: Bool)

    /// Makes the first leaf of a trained chain skip its input gradient (nothing below it
    /// learns) and every later ``InputGradientSkipping`` leaf compute it (gradients must
    /// reach the first). Leaves inside composites count in tree order.
    /// Returns the previous flags for ``restoreInputGradients(_:)``.
    public static func configureInputGradients(_ layers: [any Layer]) -> [InputGradientFlag] {
        var saved: [InputGradientFlag] = []
        for (i, l) in leaves(layers).enumerated() {
            if let c = l as? any InputGradientSkipping {
                saved.append((c, c.needsInputGradient))
                c.needsInputGradient = i > 0
            }
        }
        return saved
    }

    /// Restores flags saved by ``configureInputGradients(_:)``.
    public static func restoreInputGradients(_ saved: [InputGradientFlag]) {
        for (l, flag) in saved { l.needsInputGradient = flag }
    }
}
