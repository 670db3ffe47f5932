import Layerwise

/// Workload l1 (bench_torch.py): layer-1 triplet training on 7×7×3 patches,
/// Conv2D(3→64, k6, s1, p0) → ReLU → MaxPool2D(2) → Flatten: 7×7 → 2×2 → 1×1 → 64-d.
enum L1Workload {
    static let patch = 7

    /// The trained stage. Its input is data, so it computes no input gradient (as torch's
    /// autograd, and as the FLOP model counts: forward + weight gradient only).
    static func makeNetwork(seed: UInt64) throws -> Sequential {
        var generator = SeededGenerator(seed: seed)
        let conv = try Conv2D(
            inputChannels: 3, outputChannels: 64, kernelSize: 6, stride: 1, padding: 0,
            bias: true, initializer: .kaimingUniform, using: &generator)
        conv.needsInputGradient = false
        return Sequential([conv, ReLU(), try MaxPool2D(kernelSize: 2, stride: 2), Flatten()])
    }

    static func make(options: BenchOptions) throws -> TripletWorkload {
        let net = try makeNetwork(seed: UInt64(options.seed))
        return try TripletWorkload(
            name: "l1", patch: patch, frozen: nil, trained: net,
            flops: FlopModel.l1(batch: options.batch), options: options)
    }
}
