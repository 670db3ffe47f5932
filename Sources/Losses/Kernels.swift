import Foundation

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

    /// max, min and sum over the finite entries of a row whose excluded entries are −∞
    /// (the sum in Double; −∞ contributes nothing to min or sum).
    static func maskedStatistics(_ x: UnsafePointer<Float>, _ n: Int) -> (max: Float, min: Float, sum: Double) {
        let minusInfinity = SIMD8<Float>(repeating: -.infinity), plusInfinity = SIMD8<Float>(repeating: .infinity)
        var vmax = minusInfinity, vmin = plusInfinity, vsum = SIMD8<Float>()
        var total = 0.0
        var k = 0
        while k + 8 <= n {
            let v = load(x + k)
            let excluded = v .== minusInfinity
            // replacing(with:where:) vectorises; the stdlib's pointwiseMin/Max do not here.
            vmax = vmax.replacing(with: v, where: v .> vmax)
            let candidate = v.replacing(with: plusInfinity, where: excluded)
            vmin = vmin.replacing(with: candidate, where: candidate .< vmin)
            vsum += v.replacing(with: 0, where: excluded)
            k += 8
            if k % 256 == 0 {  // flush to Double now and then: rows can be long
                total += Double(vsum.sum())
                vsum = SIMD8<Float>()
            }
        }
        var mx = vmax.max(), mn = vmin.min()
        total += Double(vsum.sum())
        while k < n {
            let v = x[k]
            if v != -.infinity {
                mx = Swift.max(mx, v)
                mn = Swift.min(mn, v)
                total += Double(v)
            }
            k += 1
        }
        return (mx, mn, total)
    }

    /// x ← exp(scale·x − shift) in place (−∞ → 0); returns the sum.
    static func exponentiate(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, shift: Float) -> Float {
        var acc = SIMD8<Float>()
        var k = 0
        while k + 8 <= n {
            let t = exp(load(x + k) * scale - shift)
            store(t, x + k)
            acc += t
            k += 8
        }
        var s = acc.sum()
        while k < n {
            let t = Foundation.exp(x[k] * scale - shift)
            x[k] = t
            s += t
            k += 1
        }
        return s
    }

    /// x ← a·x in place.
    static func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, by a: Float) {
        var k = 0
        while k + 8 <= n {
            store(load(x + k) * a, x + k)
            k += 8
        }
        while k < n {
            x[k] *= a
            k += 1
        }
    }

    /// Eight-wide e^x (Cephes `expf`: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-7
    /// polynomial, 2ⁿ through the exponent bits), within a few ulp of libm over the range
    /// softmax needs (arguments ≤ 0). Arguments below −87.3 (including −∞) give 0; above
    /// 88.7 the result overflows to infinity.
    @inline(__always)
    static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let low = SIMD8<Float>(repeating: -87.33654), high = SIMD8<Float>(repeating: 88.72283)
        var v = x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
        // n = nearest integer to x·log2(e), by the 1.5·2²³ rounding trick (exact in IEEE
        // arithmetic for |value| < 2²²; the stdlib's SIMD rounding is element-wise and slow).
        let fx = (v * 1.442_695_04 + 12_582_912) - 12_582_912
        v = v - fx * 0.693_359_375 + fx * 2.121_944_4e-4
        let z = v * v
        var y = SIMD8<Float>(repeating: 1.987_569_15e-4)
        y = y * v + 1.398_199_95e-3
        y = y * v + 8.333_451_9e-3
        y = y * v + 4.166_579_59e-2
        y = y * v + 1.666_666_55e-1
        y = y * v + 5.000_000_12e-1
        y = y * z + v + 1
        // 2ⁿ: fx + 127 is an integer in 1…255; adding 2²³ puts it in the low mantissa bits
        // (the stdlib's SIMD float→int conversion is element-wise and slow).
        let biased = unsafeBitCast(fx + 8_388_735, to: SIMD8<UInt32>.self)  // 2²³ + 127
        let pow2 = unsafeBitCast((biased & 0x7F_FFFF) &<< 23, to: SIMD8<Float>.self)
        return (y * pow2).replacing(with: 0, where: x .< low)
    }
}
