import TensorCore

/// How a weight tensor is initialised from its fan-in and fan-out.
///
/// - Kaiming (He et al. 2015) schemes use the ReLU gain √2: uniform bound √(6 / fanIn),
///   normal standard deviation √(2 / fanIn). They suit ReLU networks (the reference model).
/// - Xavier (Glorot & Bengio 2010) schemes: uniform bound √(6 / (fanIn + fanOut)),
///   normal standard deviation √(2 / (fanIn + fanOut)).
///
/// - `fanInUniform`: uniform bound 1/√fanIn, PyTorch's default for `Conv2d` and `Linear`
///   weights (its Kaiming-uniform with a = √5); the recipe study's whitened stage 1 uses it.
///
/// For a weight `[out, in, k, k]` (or `[out, in]`): fanIn = in·k·k, fanOut = out·k·k.
/// Biases are always initialised to **zero** (not PyTorch's uniform ±1/√fanIn), so that
/// the initial function depends only on the weights.
public enum WeightInitializer: Sendable, Equatable {
    case kaimingUniform
    case kaimingNormal
    case xavierUniform
    case xavierNormal
    case fanInUniform

    /// A weight of the given shape (outermost dimension = outputs, second = inputs,
    /// the rest = receptive field), drawn from `generator`.
    public func makeWeight<G: RandomNumberGenerator>(shape: [Int], using generator: inout G) -> Tensor {
        let (fanIn, fanOut) = Self.fans(of: shape)
        switch self {
        case .kaimingUniform:
            let bound = (6 / Float(Swift.max(fanIn, 1))).squareRoot()
            return .uniform(shape, low: -bound, high: bound, using: &generator)
        case .kaimingNormal:
            let std = (2 / Float(Swift.max(fanIn, 1))).squareRoot()
            return .normal(shape, standardDeviation: std, using: &generator)
        case .xavierUniform:
            let bound = (6 / Float(Swift.max(fanIn + fanOut, 1))).squareRoot()
            return .uniform(shape, low: -bound, high: bound, using: &generator)
        case .xavierNormal:
            let std = (2 / Float(Swift.max(fanIn + fanOut, 1))).squareRoot()
            return .normal(shape, standardDeviation: std, using: &generator)
        case .fanInUniform:
            let bound = 1 / Float(Swift.max(fanIn, 1)).squareRoot()
            return .uniform(shape, low: -bound, high: bound, using: &generator)
        }
    }

    /// (fanIn, fanOut) of a weight shape `[out, in, receptive field…]`.
    public static func fans(of shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        guard shape.count >= 2 else { return (shape.first ?? 1, shape.first ?? 1) }
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }
}

/// Scratch storage for hot paths: grows when a larger batch arrives, never shrinks,
/// so steady-state training allocates nothing.
@usableFromInline
struct ScratchBuffer {
    @usableFromInline var tensor = Tensor.zeros([0])

    /// Elements available without growing.
    @inlinable var capacity: Int { tensor.count }

    /// Makes room for at least `count` elements (contents are unspecified afterwards).
    @inlinable
    mutating func reserve(_ count: Int) {
        if tensor.count < count { tensor = Tensor.uninitialized(shape: [count]) }
    }

    @inlinable
    mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try tensor.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }

    @inlinable
    func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try tensor.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}

/// Shared validation helpers for layer constructors.
enum Validate {
    /// A pooling padding in 0…kernelSize/2 (PyTorch's rule: every window keeps an input value).
    static func poolPadding(_ padding: Int, kernelSize: Int, layer: String) throws {
        guard padding >= 0, padding <= kernelSize / 2 else {
            throw LayerError.invalidConfiguration(
                layer: layer, option: "padding", value: "\(padding)",
                reason: "must be in 0…\(kernelSize / 2) (half the kernel)")
        }
    }

    static func positive(_ value: Int, _ option: String, layer: String) throws {
        guard value > 0 else {
            throw LayerError.invalidConfiguration(layer: layer, option: option, value: "\(value)", reason: "must be > 0")
        }
    }
}
