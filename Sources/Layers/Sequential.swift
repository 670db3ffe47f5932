import TensorCore

/// Layers applied in order; backward runs them in reverse.
///
/// Construction renames every child parameter and buffer to `"<index>.<name>"`, like a
/// PyTorch `state_dict` (`"0.weight"`); nested containers compose (`"1.0.weight"`).
/// Because names are stored in the parameters themselves, put a layer into only one
/// container.
public final class Sequential: Layer {
    public let layers: [any Layer]

    public init(_ layers: [any Layer]) {
        self.layers = layers
        for (index, layer) in layers.enumerated() {
            for p in layer.parameters { p.name = "\(index).\(p.name)" }
            for b in layer.buffers { b.name = "\(index).\(b.name)" }
        }
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
    public var buffers: [Parameter] { layers.flatMap(\.buffers) }

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
