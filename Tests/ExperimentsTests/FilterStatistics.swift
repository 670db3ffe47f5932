import Foundation
import Layerwise

/// Shape statistics of a bank of first-layer filters `[F, C, k, k]`, each averaged over
/// the filters (every filter's ratios weigh the same whatever its norm).
///
/// For i.i.d. random filters (any zero-mean initialiser) the expected values are fixed by
/// counting degrees of freedom, which makes them a clean reference:
/// - `nonDCFraction`: energy left after removing each channel's spatial mean (the non-DC
///   part of the 2-D DFT) over the total; random ≈ 1 − 1/k² (0.972 for 6x6).
/// - `lowFrequencyShare`: of the non-DC energy, the share at the lowest spatial
///   frequencies (|kx|, |ky| ≤ 1, DC excluded: 8 of the 35 non-DC bins of a 6x6 DFT);
///   random ≈ 8/35 = 0.229. Edge, bar and gradient detectors concentrate their energy
///   there; noise spreads it evenly.
/// - `chromaticFraction`: energy of the channel-difference component (filter minus its
///   per-pixel channel mean) over the total; random ≈ (C−1)/C = 0.667. Luminance edges
///   are near 0, colour-opponent filters near 1.
/// - `chromaticSpread`: standard deviation of the per-filter chromatic fraction across the
///   bank: random filters all sit near 2/3 (≈ 0.05); a bank that specialises into
///   luminance and colour filters spreads out.
/// - `colourAxisShare`: the largest eigenvalue of the filter's C × C channel Gram matrix
///   over its trace, i.e. how much of the filter is one spatial pattern times one colour
///   vector (a luminance edge, a red–green edge or a colour blob all score 1); random
///   3 × 36 filters score ≈ 0.45.
struct FilterStatistics: Equatable, CustomStringConvertible {
    var filters: Int
    var nonDCFraction: Double
    var lowFrequencyShare: Double
    var chromaticFraction: Double
    var chromaticSpread: Double
    var colourAxisShare: Double

    var description: String {
        String(
            format:
                "filters %d │ non-DC %.3f │ low-freq share of non-DC %.3f"
                + " │ chromatic %.3f (spread %.3f) │ colour-axis share %.3f",
            filters, nonDCFraction, lowFrequencyShare, chromaticFraction, chromaticSpread, colourAxisShare)
    }

    /// - Precondition: `weights` is `[F, C, k, k]` (a Conv2D weight); internal use only.
    init(weights: Tensor) {
        precondition(weights.shape.count == 4 && weights.shape[2] == weights.shape[3], "expects [F, C, k, k]")
        let (f, c, k) = (weights.shape[0], weights.shape[1], weights.shape[2])
        let w = weights.scalars.map(Double.init)
        let area = k * k
        var nonDC = 0.0, low = 0.0, chroma = 0.0, axis = 0.0
        var chromaFractions: [Double] = []
        // DFT twiddles for one axis: cos/sin(2π u x / k).
        var cosT = [Double](repeating: 0, count: k * k), sinT = cosT
        for u in 0..<k {
            for x in 0..<k {
                cosT[u * k + x] = cos(2 * Double.pi * Double(u * x) / Double(k))
                sinT[u * k + x] = sin(2 * Double.pi * Double(u * x) / Double(k))
            }
        }
        let lowIndex: Set<Int> = [0, 1, k - 1]
        var averaged = 0
        for i in 0..<f {
            let base = i * c * area
            var total = 0.0, dc = 0.0, lowHere = 0.0, nonDCPower = 0.0
            for ch in 0..<c {
                let o = base + ch * area
                var mean = 0.0
                for p in 0..<area { total += w[o + p] * w[o + p]; mean += w[o + p] }
                mean /= Double(area)
                dc += Double(area) * mean * mean
                for u in 0..<k {
                    for v in 0..<k where !(u == 0 && v == 0) {
                        var re = 0.0, im = 0.0
                        for y in 0..<k {
                            for x in 0..<k {
                                let a = w[o + y * k + x]
                                // exp(-2πi(uy + vx)/k) = cos(α+β) − i sin(α+β).
                                let cu = cosT[u * k + y], su = sinT[u * k + y], cv = cosT[v * k + x],
                                    sv = sinT[v * k + x]
                                re += a * (cu * cv - su * sv)
                                im -= a * (su * cv + cu * sv)
                            }
                        }
                        let power = re * re + im * im
                        nonDCPower += power
                        if lowIndex.contains(u) && lowIndex.contains(v) { lowHere += power }
                    }
                }
            }
            guard total > 0 else { continue }
            averaged += 1
            nonDC += (total - dc) / total
            low += nonDCPower > 0 ? lowHere / nonDCPower : 0
            // Luminance = per-pixel channel mean, replicated over channels.
            var luminance = 0.0
            for p in 0..<area {
                var m = 0.0
                for ch in 0..<c { m += w[base + ch * area + p] }
                m /= Double(c)
                luminance += Double(c) * m * m
            }
            let fraction = (total - luminance) / total
            chroma += fraction
            chromaFractions.append(fraction)
            // Channel Gram matrix and its largest eigenvalue (power iteration; C is tiny).
            var gram = [Double](repeating: 0, count: c * c)
            for a in 0..<c {
                for b in 0..<c {
                    var s = 0.0
                    for p in 0..<area { s += w[base + a * area + p] * w[base + b * area + p] }
                    gram[a * c + b] = s
                }
            }
            // Start from every basis vector and the all-ones vector: the top eigenvector
            // cannot be orthogonal to all of them, so the maximum is the largest eigenvalue.
            var lambda = 0.0
            let starts = (0..<c).map { a in (0..<c).map { $0 == a ? 1.0 : 0.0 } } + [[Double](repeating: 1, count: c)]
            for start in starts {
                var vector = start
                var estimate = 0.0
                for _ in 0..<300 {
                    var next = [Double](repeating: 0, count: c)
                    for a in 0..<c { for b in 0..<c { next[a] += gram[a * c + b] * vector[b] } }
                    let norm = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    guard norm > 0 else { break }
                    estimate = norm / vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    vector = next.map { $0 / norm }
                }
                lambda = max(lambda, estimate)
            }
            axis += lambda / total
        }
        let n = Double(max(1, averaged))
        filters = f
        nonDCFraction = nonDC / n
        lowFrequencyShare = low / n
        chromaticFraction = chroma / n
        let meanChroma = chroma / n
        chromaticSpread = (chromaFractions.map { ($0 - meanChroma) * ($0 - meanChroma) }.reduce(0, +) / n).squareRoot()
        colourAxisShare = axis / n
    }
}
