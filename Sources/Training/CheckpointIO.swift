import Foundation
import TensorCore

/// The file format seam of checkpoints.
///
/// TEMPORARY: a JSON stand-in until `SafeTensors` (serialization branch) lands on main;
/// then this forwards to `SafeTensors.write` / `SafeTensors.read`.
enum CheckpointIO {
    private struct Stored: Codable {
        var tensors: [String: [Int]]
        var values: [String: [UInt32]]
        var metadata: [String: String]
    }

    static func write(_ tensors: [String: Tensor], metadata: [String: String], to path: String) throws {
        var s = Stored(tensors: [:], values: [:], metadata: metadata)
        for (k, t) in tensors {
            s.tensors[k] = t.shape
            s.values[k] = t.scalars.map(\.bitPattern)
        }
        try JSONEncoder().encode(s).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func read(path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let s = try JSONDecoder().decode(Stored.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        var out: [String: Tensor] = [:]
        for (k, shape) in s.tensors {
            out[k] = try Tensor(shape: shape, values: (s.values[k] ?? []).map(Float.init(bitPattern:)))
        }
        return (out, s.metadata)
    }
}
