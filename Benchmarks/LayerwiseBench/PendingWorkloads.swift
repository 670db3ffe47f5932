import Layerwise

// Placeholder until the Layers and Losses modules land on main: the l1, l2 and cnn
// workloads (Benchmarks/Pending/*.swift.pending) need Conv2D,
// MaxPool2D, ReLU, Flatten, Linear, Sequential, TripletMarginLoss, SoftmaxCrossEntropy
// and SGD. This file is deleted when those files are renamed to .swift.
enum NeuralWorkloads {
    static func triplet(_ which: Workload, options: BenchOptions, images: Tensor) throws -> [JSONLine] {
        throw BenchError.workloadUnavailable(workload: which.rawValue, reason: "layers and losses have not landed yet")
    }

    static func cnn(options: BenchOptions, images: Tensor) throws -> [JSONLine] {
        throw BenchError.workloadUnavailable(workload: "cnn", reason: "layers and losses have not landed yet")
    }
}
