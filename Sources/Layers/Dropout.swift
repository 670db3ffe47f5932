import TensorCore

/// Inverted dropout: in training each element is zeroed with ``probability`` and the
/// survivors are scaled by 1 / (1 − probability), so inference is the identity.
///
/// The layer owns its ``generator`` (seeded at construction), so runs are reproducible.
/// For gradient checks set ``reusesMask`` to `true`: a training forward then reuses the
/// last mask whenever the input shape is unchanged, making the layer a fixed linear map.
public final class Dropout: Layer, GeneratorOwning {
    public let probability: Float
    /// The generator that draws masks; save and restore it to resume a run exactly.
    public var generator: SeededGenerator
    /// When `true`, a training forward reuses the previous mask if the shape matches.
    public var reusesMask = false

    public var parameters: [Parameter] { [] }

    private var mask = Tensor.zeros([0])  // 0 or 1/(1−p), shape of the last training input
    private var hasMask = false
    private var cachedShape: [Int]?

    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when
    ///   `probability` is outside [0, 1).
    public init(probability: Float, seed: UInt64) throws {
        guard probability.isFinite, probability >= 0, probability < 1 else {
            throw LayerError.invalidConfiguration(
                layer: "Dropout", option: "probability", value: "\(probability)", reason: "must be in [0, 1)")
        }
        self.probability = probability
        self.generator = SeededGenerator(seed: seed)
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 >= 0 }) else {
            throw LayerError.incompatibleInput(
                layer: "Dropout", shape: inputShape, reason: "expected a batch-first shape with non-negative dimensions"
            )
        }
        return inputShape
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        guard mode == .training else {
            cachedShape = nil
            return input
        }
        if !(reusesMask && hasMask && mask.shape == input.shape) {
            if mask.count != input.count { mask = Tensor.uninitialized(shape: input.shape) }
            mask = mask.unsafeReshaped(input.shape)
            let p = probability, scale = 1 / (1 - probability)
            mask.withUnsafeMutableBufferPointer { mb in
                for i in mb.indices { mb[i] = generator.nextUniform() < p ? 0 : scale }
            }
            hasMask = true
        }
        var output = Tensor.uninitialized(shape: input.shape)
        Self.multiply(input, mask, into: &output)
        cachedShape = input.shape
        return output
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let s = cachedShape else { preconditionFailure("Dropout: backward without a preceding training forward") }
        precondition(outputGradient.shape == s, "Dropout: output gradient shape \(outputGradient.shape), expected \(s)")
        var inputGradient = Tensor.uninitialized(shape: s)
        Self.multiply(outputGradient, mask, into: &inputGradient)
        return inputGradient
    }

    private static func multiply(_ a: Tensor, _ b: Tensor, into out: inout Tensor) {
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                out.withUnsafeMutableBufferPointer { ob in
                    for i in 0..<ab.count { ob[i] = ab[i] * bb[i] }
                }
            }
        }
    }
}
