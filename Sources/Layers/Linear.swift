import TensorCore

/// A fully connected layer, y = x·Wᵀ + b, for input `[N, inputFeatures]`.
///
/// Parameters use PyTorch's layout: `"weight"` `[outputFeatures, inputFeatures]`,
/// `"bias"` `[outputFeatures]`. Higher-rank input is rejected by ``outputShape(for:)``:
/// put a ``Flatten`` in front. `forward` treats shapes as an internal invariant.
public final class Linear: InputGradientSkipping {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?

    /// When `false`, ``backward(_:)`` skips the input gradient and returns zeros.
    public var needsInputGradient = true

    public var parameters: [Parameter] {
        if let bias { return [weight, bias] }
        return [weight]
    }

    private var cachedInput: Tensor?
    /// The zeros `backward` returns when the input gradient is skipped, kept between steps
    /// (copy-on-write): allocating and zeroing them again took 5 % of a wide probe's readout.
    private var skippedInputGradient = Tensor.zeros([0])

    /// Creates a layer with weights drawn by `initializer` and a zero bias.
    ///
    /// - Throws: ``LayerError/invalidConfiguration(layer:option:value:reason:)`` when a
    ///   feature count is not positive.
    public init<G: RandomNumberGenerator>(
        inputFeatures: Int, outputFeatures: Int, bias: Bool = true,
        initializer: WeightInitializer = .kaimingUniform, using generator: inout G
    ) throws {
        try Validate.positive(inputFeatures, "inputFeatures", layer: "Linear")
        try Validate.positive(outputFeatures, "outputFeatures", layer: "Linear")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.weight = Parameter(
            name: "weight", value: initializer.makeWeight(shape: [outputFeatures, inputFeatures], using: &generator))
        self.bias = bias ? Parameter(name: "bias", value: .zeros([outputFeatures])) : nil
    }

    private var name: String { "Linear(\(inputFeatures)→\(outputFeatures))" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 2 else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected rank 2 [N, \(inputFeatures)]; put a Flatten in front")
        }
        guard inputShape[0] >= 0, inputShape[1] == inputFeatures else {
            throw LayerError.incompatibleInput(
                layer: name, shape: inputShape, reason: "expected \(inputFeatures) features, got \(inputShape[1])")
        }
        return [inputShape[0], outputFeatures]
    }

    /// Rows of the batch per task of the forward product and of the input gradient, and input
    /// features per task of the weight gradient. Fixed sizes: every GEMM has the same shape
    /// whatever the thread count, so the results are the same bits with 1 and 2 threads. The
    /// blocks run on the worker pool, OpenBLAS single-threaded inside: one GEMM on OpenBLAS's own
    /// threads left them spinning after the call, against the convolutions' workers.
    public static let rowsPerTask = 32, columnsPerTask = 1_024

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let s = input.shape
        precondition(
            s.count == 2 && s[1] == inputFeatures, "\(name): input shape \(s); validate with outputShape(for:)")
        let n = s[0], inF = inputFeatures, outF = outputFeatures
        var output = Tensor.uninitialized(shape: [n, outF])
        input.withUnsafeBufferPointer { xb in
            weight.value.withUnsafeBufferPointer { wb in
                output.withUnsafeMutableBufferPointer { yb in
                    let x = SharedPointer(xb.baseAddress!), w = SharedPointer(wb.baseAddress!)
                    let y = SharedPointer(yb.baseAddress!)
                    let b = bias?.value.withUnsafeBufferPointer { SharedPointer($0.baseAddress!) }
                    WorkerPool.forEachBlock(n, of: Self.rowsPerTask) { rows in
                        // Y[rows, out] = X[rows, in] × Wᵀ[in, out] (+ b)
                        BLAS.gemm(
                            transposeA: false, transposeB: true, m: rows.count, n: outF, k: inF,
                            alpha: 1, a: x.p + rows.lowerBound * inF, lda: inF, b: w.p, ldb: inF,
                            beta: 0, c: y.p + rows.lowerBound * outF, ldc: outF)
                        guard let b else { return }
                        for r in rows {
                            let row = y.p + r * outF
                            for o in 0..<outF { row[o] += b.p[o] }
                        }
                    }
                }
            }
        }
        cachedInput = mode == .training ? input : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input = cachedInput else {
            preconditionFailure("\(name): backward without a preceding training forward")
        }
        let n = input.shape[0], inF = inputFeatures, outF = outputFeatures
        precondition(
            outputGradient.shape == [n, outF],
            "\(name): output gradient shape \(outputGradient.shape), expected \([n, outF])")
        if !needsInputGradient && skippedInputGradient.shape != [n, inF] {
            skippedInputGradient = Tensor.zeros([n, inF])
        }
        var inputGradient = needsInputGradient ? Tensor.uninitialized(shape: [n, inF]) : skippedInputGradient
        outputGradient.withUnsafeBufferPointer { gb in
            let dy = SharedPointer(gb.baseAddress!)
            if !weight.isFrozen {
                input.withUnsafeBufferPointer { xb in
                    weight.gradient.withUnsafeMutableBufferPointer { dwb in
                        let x = SharedPointer(xb.baseAddress!), dw = SharedPointer(dwb.baseAddress!)
                        WorkerPool.forEachBlock(inF, of: Self.columnsPerTask) { columns in
                            // dW[out, columns] += dYᵀ[out, N] × X[N, columns]
                            BLAS.gemm(
                                transposeA: true, transposeB: false, m: outF, n: columns.count, k: n,
                                alpha: 1, a: dy.p, lda: outF, b: x.p + columns.lowerBound, ldb: inF,
                                beta: 1, c: dw.p + columns.lowerBound, ldc: inF)
                        }
                    }
                }
            }
            if let bias, !bias.isFrozen {
                bias.gradient.withUnsafeMutableBufferPointer { db in
                    let d = db.baseAddress!
                    for r in 0..<n {
                        let row = dy.p + r * outF
                        for o in 0..<outF { d[o] += row[o] }
                    }
                }
            }
            if needsInputGradient {
                weight.value.withUnsafeBufferPointer { wb in
                    inputGradient.withUnsafeMutableBufferPointer { dxb in
                        let w = SharedPointer(wb.baseAddress!), dx = SharedPointer(dxb.baseAddress!)
                        WorkerPool.forEachBlock(n, of: Self.rowsPerTask) { rows in
                            // dX[rows, in] = dY[rows, out] × W[out, in]
                            BLAS.gemm(
                                transposeA: false, transposeB: false, m: rows.count, n: inF, k: outF,
                                alpha: 1, a: dy.p + rows.lowerBound * outF, lda: outF, b: w.p, ldb: inF,
                                beta: 0, c: dx.p + rows.lowerBound * inF, ldc: inF)
                        }
                    }
                }
            }
        }
        return inputGradient
    }
}
