/// Shared, contiguous Float32 storage behind a ``Tensor``.
///
/// One heap block per tensor; a tensor copies it only when it is written while shared
/// (copy-on-write through `isKnownUniquelyReferenced`).
@usableFromInline
final class TensorStorage: @unchecked Sendable {
    // @unchecked: the buffer is only written through a uniquely referenced Tensor.
    @usableFromInline let count: Int
    @usableFromInline let base: UnsafeMutablePointer<Float>

    @usableFromInline
    init(count: Int) {
        self.count = count
        // Never allocate zero bytes: keeps `base` valid for empty tensors.
        base = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
    }

    @usableFromInline
    func copy() -> TensorStorage {
        let other = TensorStorage(count: count)
        other.base.update(from: base, count: count)
        return other
    }

    deinit { base.deallocate() }
}

/// A dense, row-major Float32 array with a shape (NCHW for images).
///
/// `Tensor` is a value type with copy-on-write storage: copies are cheap until one is
/// written. Hot loops reach the elements through ``withUnsafeBufferPointer(_:)`` and
/// ``withUnsafeMutableBufferPointer(_:)``.
public struct Tensor: Sendable {
    /// The extent of each dimension, outermost first.
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// The number of elements (the product of the shape).
    @inlinable public var count: Int { storage.count }

    /// A tensor of the given shape with every element set to `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape \(shape) has a negative dimension")
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
        storage.base.initialize(repeating: value, count: storage.count)
    }

    /// A tensor of the given shape holding `values` (row-major).
    ///
    /// - Throws: ``TensorError/elementCountMismatch(shape:count:)`` when the counts differ.
    public init(shape: [Int], values: [Float]) throws {
        let n = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }), n == values.count else {
            throw TensorError.elementCountMismatch(shape: shape, count: values.count)
        }
        self.shape = shape
        storage = TensorStorage(count: n)
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { storage.base.initialize(from: s, count: n) }
        }
    }

    /// A tensor of the given shape whose elements are uninitialised memory, for callers
    /// that overwrite every element before reading (e.g. GEMM with beta = 0).
    public static func uninitialized(shape: [Int]) -> Tensor {
        Tensor(storage: TensorStorage(count: shape.reduce(1, *)), shape: shape)
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }

    @usableFromInline
    init(storage: TensorStorage, shape: [Int]) {
        self.storage = storage
        self.shape = shape
    }

    /// The elements in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.base, count: storage.count))
    }

    /// Element access by flat (row-major) index. Convenient in tests; hot loops use buffers.
    @inlinable public subscript(flat index: Int) -> Float {
        get {
            precondition(index >= 0 && index < count, "flat index \(index) out of range 0..<\(count)")
            return storage.base[index]
        }
        set {
            precondition(index >= 0 && index < count, "flat index \(index) out of range 0..<\(count)")
            makeUnique()
            storage.base[index] = newValue
        }
    }

    /// Reads the elements through a contiguous buffer.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
    }

    /// Writes the elements through a contiguous buffer, copying shared storage first.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
    }

    @inlinable
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Whether both tensors read the same storage: true for a copy that neither has
    /// written since (copy-on-write), so a cache keyed on a kept copy knows when the
    /// original changed without comparing elements.
    @inlinable public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.reduce(1, *) == count, newShape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.reshape(from: shape, to: newShape)
        }
        return Tensor(storage: storage, shape: newShape)
    }

    /// Like ``reshaped(_:)`` for shapes the caller has already validated.
    @inlinable
    public func unsafeReshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "reshape \(shape) -> \(newShape) changes the element count")
        return Tensor(storage: storage, shape: newShape)
    }

    /// True when every element is finite (no NaN or infinity).
    public var isFinite: Bool {
        withUnsafeBufferPointer { b in
            for v in b where !v.isFinite { return false }
            return true
        }
    }

    /// Whether two tensors hold identical shapes and bit-identical elements.
    public func isBitIdentical(to other: Tensor) -> Bool {
        guard shape == other.shape else { return false }
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                for i in 0..<a.count where a[i].bitPattern != b[i].bitPattern { return false }
                return true
            }
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(head)\(count > 8 ? ", …" : "")])"
    }
}

/// Errors of the tensor core: shapes that do not fit.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    case elementCountMismatch(shape: [Int], count: Int)
    case reshape(from: [Int], to: [Int])
    case shapeMismatch(operation: String, expected: [Int], got: [Int])
    case invalidArgument(name: String, value: String, reason: String)

    public var description: String {
        switch self {
        case let .elementCountMismatch(shape, count):
            return "shape \(shape) needs \(shape.reduce(1, *)) elements, got \(count)"
        case let .reshape(from, to):
            return "cannot reshape \(from) to \(to): element counts differ"
        case let .shapeMismatch(operation, expected, got):
            return "\(operation): expected shape \(expected), got \(got)"
        case let .invalidArgument(name, value, reason):
            return "invalid \(name) = \(value): \(reason)"
        }
    }
}
