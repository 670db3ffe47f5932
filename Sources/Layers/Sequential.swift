import TensorCore

/// Layers applied in order; backward runs them in reverse.
///
/// The children are named by index, so ``Layer/namedParameters(prefix:)`` gives
/// PyTorch `state_dict` names (`"0.weight"`); nested containers compose (`"1.0.weight"`).
/// The children's own parameter names are left as they are.
public final class Sequential: ChainedLayer {
    public let layers: [any Layer]

    public init(_ layers: [any Layer]) {
        self.layers = layers
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
    public var buffers: [Parameter] { layers.flatMap(\.buffers) }

    public var children: [(name: String, layer: any Layer)] {
        layers.enumerated().map { (String($0.offset), $0.element) }
    }

    /// Chains the children's shapes; the first child that rejects its input throws
    /// its own ``LayerError`` (which names that layer).
    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        var shape = inputShape
        for layer in layers { shape = try layer.outputShape(for: shape) }
        return shape
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        var x = input
        for layer in layers { x = layer.forward(x, mode: mode) }
        return x
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        var g = outputGradient
        for layer in layers.reversed() { g = layer.backward(g) }
        return g
    }
}
