import TensorCore

/// `[N, d1, d2, …]` → `[N, d1·d2·…]`. No copy: the output shares the input's storage.
public final class Flatten: Layer {
    public var parameters: [Parameter] { [] }
    private var cachedInputShape: [Int]?

    /// A parameter-free reshape.
    public init() {}

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count >= 2 else {
            throw LayerError.incompatibleInput(layer: "Flatten", shape: inputShape, reason: "expected rank ≥ 2 [N, …]")
        }
        guard inputShape.allSatisfy({ $0 >= 0 }) else {
            throw LayerError.incompatibleInput(
                layer: "Flatten", shape: inputShape, reason: "dimensions must be non-negative")
        }
        return [inputShape[0], inputShape.dropFirst().reduce(1, *)]
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(s.count >= 2, "Flatten: input shape \(s); validate with outputShape(for:)")
        cachedInputShape = mode == .training ? s : nil
        return input.unsafeReshaped([s[0], s.dropFirst().reduce(1, *)])
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let s = cachedInputShape else {
            preconditionFailure("Flatten: backward without a preceding training forward")
        }
        return outputGradient.unsafeReshaped(s)
    }
}
