import Layerwise

/// SGEMM GFLOP/s through ``BLAS/gemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``,
/// measured as shared/peer/gemm_peak.py measures NumPy's `matmul(a, b, out=c)`:
/// square n×n Float32 matrices of standard normals, two warm-up calls, then timed calls
/// until at least `minReps` calls **and** `minTime` seconds; GFLOP/s = 2n³ / time, reported
/// for the best and the median call.
struct GemmWorkload {
    var sizes: [Int]
    var threads: Int
    var minTime: Double
    var minReps: Int
    var seed: UInt64

    struct Result {
        var n: Int
        var bestSeconds: Double
        var medianSeconds: Double
        var reps: Int
        var gflopsBest: Double { 2 * pow3(n) / bestSeconds / 1e9 }
        var gflopsMedian: Double { 2 * pow3(n) / medianSeconds / 1e9 }
        private func pow3(_ n: Int) -> Double { Double(n) * Double(n) * Double(n) }
    }

    /// Times C = A·B for one size.
    static func measure(n: Int, minTime: Double, minReps: Int, seed: UInt64) -> Result {
        var generator = SeededGenerator(seed: seed)
        let a = Tensor.normal([n, n], using: &generator)
        let b = Tensor.normal([n, n], using: &generator)
        var c = Tensor.zeros([n, n])
        let call = {
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        BLAS.gemm(
                            transposeA: false, transposeB: false, m: n, n: n, k: n,
                            alpha: 1, a: pa.baseAddress!, lda: n, b: pb.baseAddress!, ldb: n,
                            beta: 0, c: pc.baseAddress!, ldc: n)
                    }
                }
            }
        }
        call()  // warm-up (page faults, thread spin-up)
        call()
        var times: [Double] = []
        let start = ProcessStats.now()
        while times.count < minReps || ProcessStats.now() - start < minTime {
            let t0 = ProcessStats.now()
            call()
            times.append(ProcessStats.now() - t0)
        }
        times.sort()
        return Result(n: n, bestSeconds: times[0], medianSeconds: times[times.count / 2], reps: times.count)
    }

    func run() -> [JSONLine] {
        sizes.map { n in
            let r = Self.measure(n: n, minTime: minTime, minReps: minReps, seed: seed)
            var line = JSONLine()
            line.set("workload", "gemm")
            line.set("mode", "sgemm")
            line.set("threads", threads)
            line.set("n", n)
            line.set("best_s", r.bestSeconds, places: 6)
            line.set("median_s", r.medianSeconds, places: 6)
            line.set("reps", r.reps)
            line.set("gflops_best", r.gflopsBest, places: 2)
            line.set("gflops_median", r.gflopsMedian, places: 2)
            // gemm_peak.py's headline figure is the best call.
            line.set("achieved_gflops", r.gflopsBest, places: 2)
            line.set("gemm_fraction", 1.0)
            line.set("peak_rss_mb", ProcessStats.peakResidentMiB(), places: 1)
            return line
        }
    }
}
