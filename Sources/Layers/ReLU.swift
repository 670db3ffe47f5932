import TensorCore

/// max(0, x), element-wise. Training keeps a reference to the output (no copy: tensors
/// share storage until written) and backward passes the gradient where the output is
/// positive (the derivative at exactly 0 is taken as 0, like PyTorch).
public final class ReLU: Layer {
    public var parameters: [Parameter] { [] }
    private var cachedOutput: Tensor?

    /// A parameter-free rectifier.
    public init() {}

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 >= 0 }) else {
            throw LayerError.incompatibleInput(
                layer: "ReLU", shape: inputShape, reason: "expected a batch-first shape with non-negative dimensions")
        }
        return inputShape
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        var output = Tensor.uninitialized(shape: input.shape)
        input.withUnsafeBufferPointer { xb in
            output.withUnsafeMutableBufferPointer { yb in
                let x = SharedPointer(xb.baseAddress!), y = SharedPointer(yb.baseAddress!)
                WorkerPool.forEachSlice(xb.count, minimumSlice: WorkerPool.elementsPerSlice) { r in
                    for i in r { y.p[i] = Swift.max(x.p[i], 0) }
                }
            }
        }
        cachedOutput = mode == .training ? output : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let cachedOutput else { preconditionFailure("ReLU: backward without a preceding training forward") }
        precondition(
            outputGradient.shape == cachedOutput.shape,
            "ReLU: output gradient shape \(outputGradient.shape) does not match \(cachedOutput.shape)")
        var inputGradient = Tensor.uninitialized(shape: cachedOutput.shape)
        cachedOutput.withUnsafeBufferPointer { yb in
            outputGradient.withUnsafeBufferPointer { gb in
                inputGradient.withUnsafeMutableBufferPointer { db in
                    let y = SharedPointer(yb.baseAddress!), g = SharedPointer(gb.baseAddress!)
                    let d = SharedPointer(db.baseAddress!)
                    WorkerPool.forEachSlice(yb.count, minimumSlice: WorkerPool.elementsPerSlice) { r in
                        for i in r {
                            // Load before selecting so the compiler emits a branch-free select
                            // (signs are random: a branch would mispredict half the time).
                            let gi = g.p[i]
                            d.p[i] = y.p[i] > 0 ? gi : 0
                        }
                    }
                }
            }
        }
        return inputGradient
    }
}
