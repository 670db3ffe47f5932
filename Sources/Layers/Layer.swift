import TensorCore

/// Whether a forward pass is part of training (caches what backward needs, uses batch
/// statistics, drops units) or inference.
public enum Mode: Sendable, Equatable {
    case training
    case inference
}

/// A learnable tensor and its gradient, side by side.
///
/// Parameters are reference types so that a layer, an optimizer and a checkpoint all
/// see the same values. The ``name`` is local to the layer that owns it (`"weight"`);
/// the full name of a parameter inside a tree of layers is its path, built by
/// ``Layer/namedParameters(prefix:)`` (e.g. `"0.weight"` inside a ``Sequential``).
public final class Parameter: @unchecked Sendable {
    // @unchecked: a parameter is mutated by one training loop at a time.
    /// Stable name, local to the layer that owns it.
    public var name: String
    /// The current value.
    public var value: Tensor
    /// The accumulated gradient, same shape as ``value``. Backward passes add to it;
    /// ``zeroGradient()`` clears it.
    public var gradient: Tensor
    /// A frozen parameter receives no gradient and is skipped by optimizers.
    public var isFrozen: Bool

    public init(name: String, value: Tensor, isFrozen: Bool = false) {
        self.name = name
        self.value = value
        self.gradient = Tensor.zeros(value.shape)
        self.isFrozen = isFrozen
    }

    /// Sets the gradient to zero in place (no allocation when uniquely held).
    public func zeroGradient() {
        gradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }
}

/// A differentiable building block with explicit forward and backward passes.
///
/// Contract:
/// - ``forward(_:mode:)`` in `.training` mode caches whatever ``backward(_:)`` needs;
///   in `.inference` mode it caches nothing.
/// - ``backward(_:)`` takes ∂L/∂output of the **last training forward**, returns
///   ∂L/∂input and **adds** ∂L/∂θ into each non-frozen parameter's gradient.
/// - ``outputShape(for:)`` validates a full input shape (batch first) before any work,
///   so configuration errors surface before training starts.
///
/// A composite layer lists the layers it is built from as ``children``; the tree
/// visitors (``namedParameters(prefix:)``, ``LayerTree``) then name, checkpoint and
/// configure everything inside it (parameters, buffers, generators, input-gradient
/// flags) with no further code.
public protocol Layer: AnyObject {
    /// Learnable parameters, in a stable order, including those of ``children`` (the
    /// default is exactly the children's).
    var parameters: [Parameter] { get }
    /// Non-learnable state saved with the model (e.g. BatchNorm running statistics),
    /// including that of ``children`` (the default is exactly the children's).
    var buffers: [Parameter] { get }
    /// The layers this one is built from, by name (a path component such as `"0"` or
    /// `"conv"`), in a stable order. Empty (the default) for a leaf.
    var children: [(name: String, layer: any Layer)] { get }
    /// The output shape for an input shape, or a ``LayerError`` naming what does not fit.
    func outputShape(for inputShape: [Int]) throws -> [Int]
    /// Computes the output. `.training` caches what `backward` needs.
    func forward(_ input: Tensor, mode: Mode) -> Tensor
    /// Returns ∂L/∂input and accumulates parameter gradients (unless frozen).
    func backward(_ outputGradient: Tensor) -> Tensor
}

/// A layer that can skip computing ∂L/∂input. The trainer turns it off for the first
/// trainable layer of a stage, whose input comes from frozen stages (or raw data) and so
/// needs no gradient — a GEMM and a fold saved per step.
public protocol InputGradientSkipping: Layer {
    /// When `false`, `backward(_:)` returns zeros for the input gradient without computing it.
    var needsInputGradient: Bool { get set }
}

extension Layer {
    public var parameters: [Parameter] { children.flatMap(\.layer.parameters) }
    public var buffers: [Parameter] { children.flatMap(\.layer.buffers) }
    public var children: [(name: String, layer: any Layer)] { [] }

    /// Whether every parameter is frozen (a layer without parameters counts as frozen).
    public var isFrozen: Bool { parameters.allSatisfy(\.isFrozen) }

    /// Freezes or unfreezes all parameters.
    public func setFrozen(_ frozen: Bool) {
        for p in parameters { p.isFrozen = frozen }
    }

    /// Clears every parameter gradient.
    public func zeroGradients() {
        for p in parameters { p.zeroGradient() }
    }
}

/// Configuration and shape errors of layers, thrown before any work is done.
public enum LayerError: Error, Equatable, CustomStringConvertible {
    /// The input shape does not fit the layer; `reason` says why.
    case incompatibleInput(layer: String, shape: [Int], reason: String)
    /// A constructor argument is out of range.
    case invalidConfiguration(layer: String, option: String, value: String, reason: String)

    public var description: String {
        switch self {
        case let .incompatibleInput(layer, shape, reason):
            return "\(layer): input shape \(shape) does not fit: \(reason)"
        case let .invalidConfiguration(layer, option, value, reason):
            return "\(layer): \(option) = \(value) is invalid: \(reason)"
        }
    }
}

extension ConvGeometry {
    /// The geometry of a square window sliding over an `[N, C, H, W]` input, or the
    /// ``LayerError`` that names `layer` and what does not fit (rank, sizes, channels, a
    /// window larger than the padded input). Shared by the windowed layers' `outputShape`.
    static func validated(
        layer: String, inputShape: [Int], channels: Int, kernel: Int, stride: Int, padding: Int = 0
    ) throws -> ConvGeometry {
        guard inputShape.count == 4 else {
            throw LayerError.incompatibleInput(layer: layer, shape: inputShape, reason: "expected rank 4 [N, C, H, W]")
        }
        guard inputShape.allSatisfy({ $0 >= 0 }), inputShape[2] > 0, inputShape[3] > 0 else {
            throw LayerError.incompatibleInput(layer: layer, shape: inputShape, reason: "dimensions must be positive")
        }
        guard inputShape[1] == channels else {
            throw LayerError.incompatibleInput(
                layer: layer, shape: inputShape, reason: "expected \(channels) channels, got \(inputShape[1])")
        }
        let g = ConvGeometry(
            channels: channels, height: inputShape[2], width: inputShape[3],
            kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding))
        guard g.isValid else {
            throw LayerError.incompatibleInput(
                layer: layer, shape: inputShape,
                reason:
                    "kernel \(kernel) is larger than the padded input"
                    + " \(inputShape[2] + 2 * padding)×\(inputShape[3] + 2 * padding)"
            )
        }
        return g
    }
}
