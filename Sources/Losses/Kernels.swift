/// Vector kernels over short embedding rows (D ≈ 16…512).
///
/// Plain scalar loops over Float reductions cannot be vectorised by the compiler (it may not
/// reorder the additions), so a 64-d dot product runs at one add per FP latency. These use
/// eight-wide SIMD accumulators, then a scalar tail.
enum Kernels {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// (a·b, a·a, b·b).
    @inline(__always)
    static func moments(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> (Float, Float, Float) {
        var dot = SIMD8<Float>(), aa = SIMD8<Float>(), bb = SIMD8<Float>()
        var k = 0
        while k + 8 <= n {
            let x = load(a + k), y = load(b + k)
            dot += x * y
            aa += x * x
            bb += y * y
            k += 8
        }
        var d = dot.sum(), sa = aa.sum(), sb = bb.sum()
        while k < n {
            d += a[k] * b[k]
            sa += a[k] * a[k]
            sb += b[k] * b[k]
            k += 1
        }
        return (d, sa, sb)
    }

    /// ‖a − b‖².
    @inline(__always)
    static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var k = 0
        while k + 8 <= n {
            let t = load(a + k) - load(b + k)
            acc += t * t
            k += 8
        }
        var s = acc.sum()
        while k < n {
            let t = a[k] - b[k]
            s += t * t
            k += 1
        }
        return s
    }

    /// a·b.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var k = 0
        while k + 8 <= n {
            acc += load(a + k) * load(b + k)
            k += 8
        }
        var s = acc.sum()
        while k < n {
            s += a[k] * b[k]
            k += 1
        }
        return s
    }

    /// gA += sa·a + sb·b ;  gB += ta·a + tb·b.
    @inline(__always)
    static func accumulate(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int,
        _ sa: Float, _ sb: Float, _ ta: Float, _ tb: Float,
        _ gA: UnsafeMutablePointer<Float>, _ gB: UnsafeMutablePointer<Float>
    ) {
        var k = 0
        while k + 8 <= n {
            let x = load(a + k), y = load(b + k)
            store(load(gA + k) + sa * x + sb * y, gA + k)
            store(load(gB + k) + ta * x + tb * y, gB + k)
            k += 8
        }
        while k < n {
            let x = a[k], y = b[k]
            gA[k] += sa * x + sb * y
            gB[k] += ta * x + tb * y
            k += 1
        }
    }

    /// The index of the first NaN or infinity, or nil. Fast path: x · 0 is NaN exactly for
    /// non-finite x, so one SIMD pass decides, and only a bad block is searched element-wise.
    static func firstNonFinite(_ b: UnsafeBufferPointer<Float>) -> Int? {
        guard let p = b.baseAddress else { return nil }
        let n = b.count
        var k = 0
        while k + 64 <= n {
            var acc = SIMD8<Float>()
            for j in stride(from: k, to: k + 64, by: 8) { acc += load(p + j) * 0 }
            if acc.sum() != 0 {
                for j in k..<(k + 64) where !p[j].isFinite { return j }
            }
            k += 64
        }
        for j in k..<n where !p[j].isFinite { return j }
        return nil
    }
}
