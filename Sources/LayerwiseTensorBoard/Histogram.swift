/// A histogram of values in TensorBoard's `HistogramProto` form: `bucketLimits[i]` is the
/// upper edge of bucket i, `counts[i]` how many values fall in it.
public struct Histogram: Sendable, Equatable {
    public var min: Double
    public var max: Double
    public var count: Double
    public var sum: Double
    public var sumOfSquares: Double
    public var bucketLimits: [Double]
    public var counts: [Double]

    /// `bucketCount` equal-width buckets over [min, max] of the finite values.
    public init(_ values: [Float], bucketCount: Int = 30) {
        let finite = values.filter(\.isFinite).map(Double.init)
        let lo = finite.min() ?? 0, hi = finite.max() ?? 0
        let buckets = Swift.max(1, bucketCount)
        let width = hi > lo ? (hi - lo) / Double(buckets) : 1
        var counts = [Double](repeating: 0, count: buckets)
        for v in finite { counts[Swift.min(buckets - 1, Int((v - lo) / width))] += 1 }
        min = lo
        max = hi
        count = Double(finite.count)
        sum = finite.reduce(0, +)
        sumOfSquares = finite.reduce(0) { $0 + $1 * $1 }
        bucketLimits = (1...buckets).map { lo + Double($0) * width }
        self.counts = counts
    }

    /// `HistogramProto { min 1; max 2; num 3; sum 4; sum_squares 5; bucket_limit 6; bucket 7 }`.
    func encoded() -> [UInt8] {
        var w = ProtobufWriter()
        w.double(1, min)
        w.double(2, max)
        w.double(3, count)
        w.double(4, sum)
        w.double(5, sumOfSquares)
        w.packedDoubles(6, bucketLimits)
        w.packedDoubles(7, counts)
        return w.bytes
    }
}
