import TensorCore

/// The file-format seam of checkpoints: safetensors, written atomically.
enum CheckpointIO {
    static func write(
        _ tensors: [String: Tensor], metadata: [String: String], to path: String, createDirectories: Bool = true
    ) throws {
        try SafeTensors.write(tensors, metadata: metadata, to: path, createDirectories: createDirectories)
    }

    static func read(path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = try SafeTensors.read(path: path)
        return (file.tensors, file.metadata)
    }
}
