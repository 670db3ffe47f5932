import Layerwise

/// Workload l2 (bench_torch.py): a greedy layer-2 step on 16×16×3 patches.
/// Frozen layer 1 (inference, no gradient) applied convolutionally: 16×16 → 11×11 → ReLU
/// → MaxPool2D(2) (floor) → 5×5×64; then the trained layer 2: Conv2D(64→128, k3) → 3×3
/// → ReLU → MaxPool2D(2) → 1×1 → Flatten (128-d).
enum L2Workload {
    static let patch = 16

    static func makeFrozenLayer1(seed: UInt64) throws -> Sequential {
        var generator = SeededGenerator(seed: seed)
        let conv = try Conv2D(
            inputChannels: 3, outputChannels: 64, kernelSize: 6, stride: 1, padding: 0,
            bias: true, initializer: .kaimingUniform, using: &generator)
        let stage = Sequential([conv, ReLU(), try MaxPool2D(kernelSize: 2, stride: 2)])
        stage.setFrozen(true)
        return stage
    }

    /// Layer 2. Its input comes from the frozen stage, so no input gradient is needed.
    static func makeLayer2(seed: UInt64) throws -> Sequential {
        var generator = SeededGenerator(seed: seed &+ 1)
        let conv = try Conv2D(
            inputChannels: 64, outputChannels: 128, kernelSize: 3, stride: 1, padding: 0,
            bias: true, initializer: .kaimingUniform, using: &generator)
        conv.needsInputGradient = false
        return Sequential([conv, ReLU(), try MaxPool2D(kernelSize: 2, stride: 2), Flatten()])
    }

    static func make(options: BenchOptions) throws -> TripletWorkload {
        let seed = UInt64(options.seed)
        return try TripletWorkload(
            name: "l2", patch: patch, frozen: try makeFrozenLayer1(seed: seed), trained: try makeLayer2(seed: seed),
            flops: FlopModel.l2(batch: options.batch), options: options)
    }
}
