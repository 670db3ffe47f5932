import Foundation

/// A small SVG line chart (the paper's Figure 3: validation accuracy per epoch per arm).
public struct LineChart: Sendable {
    /// One named line; `values[i]` is plotted at x = i + 1, with a shaded band of
    /// ± `spread[i]` around it when `spread` is set.
    public struct Series: Sendable {
        public var name: String
        public var values: [Double]
        /// Half-width of the band around each value (e.g. the standard deviation over seeds).
        public var spread: [Double]?
        public init(name: String, values: [Double], spread: [Double]? = nil) {
            self.name = name
            self.values = values
            self.spread = spread
        }

        /// The mean of several runs (e.g. seeds) at each x, with a ± standard-deviation band
        /// (sample standard deviation) when there are at least two runs. Runs may differ in
        /// length; each x averages the runs that reach it.
        public init(name: String, runs: [[Double]]) {
            let n = runs.map(\.count).max() ?? 0
            var mean: [Double] = [], std: [Double] = []
            for i in 0..<n {
                let v = runs.compactMap { i < $0.count && $0[i].isFinite ? $0[i] : nil }
                let m = v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count)
                mean.append(m)
                let sq = v.reduce(0) { $0 + ($1 - m) * ($1 - m) }
                std.append(v.count > 1 ? (sq / Double(v.count - 1)).squareRoot() : 0)
            }
            self.init(name: name, values: mean, spread: runs.count > 1 ? std : nil)
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

    /// The chart as an SVG document with axes, ticks, labels and a legend.
    public func svg(width: Int = 640, height: Int = 420) throws -> String {
        let all = series.flatMap { line in
            line.values.indices.flatMap { i -> [Double] in
                let d = line.spread.map { i < $0.count && $0[i].isFinite ? $0[i] : 0 } ?? 0
                return [line.values[i] - d, line.values[i] + d]
            }
        }.filter(\.isFinite)
        guard let lo = all.min(), let hi = all.max(), let n = series.map(\.values.count).max(), n > 0 else {
            throw VisualizationError.emptyChart(reason: "no finite values to plot")
        }
        let heading = Self.fit(title, width: Double(width) - 20)
        let left = 60.0, right = 170.0, top = 40.0 + Double(heading.lines.count - 1) * heading.size * 1.2
        let bottom = 50.0
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        let yMin = (lo * 20).rounded(.down) / 20, yMax = max((hi * 20).rounded(.up) / 20, yMin + 0.05)
        func x(_ i: Int) -> Double { left + (n == 1 ? pw / 2 : Double(i) / Double(n - 1) * pw) }
        func y(_ v: Double) -> Double { top + (1 - (v - yMin) / (yMax - yMin)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" "
        s += "height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (k, line) in heading.lines.enumerated() {
            // Centred on the whole picture, sized to fit it: centred over the plot alone, a long
            // title ran off the left edge.
            s += "<text x=\"\(f(Double(width) / 2))\" y=\"\(f(22 + Double(k) * heading.size * 1.2))\" "
            s += "text-anchor=\"middle\" font-size=\"\(f(heading.size))\">\(escape(line))</text>\n"
        }
        // Axes and ticks.
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top + ph))\" "
        s += "x2=\"\(f(left + pw))\" y2=\"\(f(top + ph))\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + ph))\" stroke=\"black\"/>\n"
        for k in 0...5 {
            let v = yMin + Double(k) / 5 * (yMax - yMin)
            s += "<line x1=\"\(f(left - 4))\" y1=\"\(f(y(v)))\" "
            s += "x2=\"\(f(left + pw))\" y2=\"\(f(y(v)))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(y(v) + 4))\" "
            s += "text-anchor=\"end\">\(String(format: "%.1f", v * 100))</text>\n"
        }
        let step = max(1, n / 10)
        for i in stride(from: 0, to: n, by: step) {
            s += "<text x=\"\(f(x(i)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(i + 1)</text>\n"
        }
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(Double(height) - 10))\" "
        s += "text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(16,\(f(top + ph / 2))) "
        s += "rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        // Bands (under every line), then lines and legend.
        for (k, line) in series.enumerated() {
            guard let spread = line.spread else { continue }
            let kept = line.values.indices.filter { i in
                line.values[i].isFinite && i < spread.count && spread[i].isFinite
            }
            guard !kept.isEmpty else { continue }
            let upper = kept.map { "\(f(x($0))),\(f(y(line.values[$0] + spread[$0])))" }
            let lower = kept.reversed().map { "\(f(x($0))),\(f(y(line.values[$0] - spread[$0])))" }
            let colour = Self.palette[k % Self.palette.count]
            s += "<polygon fill=\"\(colour)\" fill-opacity=\"0.18\" stroke=\"none\" "
            s += "points=\"\((upper + lower).joined(separator: " "))\"/>\n"
        }
        for (k, line) in series.enumerated() {
            let colour = Self.palette[k % Self.palette.count]
            let points = line.values.enumerated().filter { $0.element.isFinite }
                .map { "\(f(x($0.offset))),\(f(y($0.element)))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            let ly = top + 10 + Double(k) * 18
            s += "<line x1=\"\(f(left + pw + 12))\" y1=\"\(f(ly))\" x2=\"\(f(left + pw + 32))\" "
            s += "y2=\"\(f(ly))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            s += "<text x=\"\(f(left + pw + 38))\" y=\"\(f(ly + 4))\">\(escape(line.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// A title's lines and font size so that it fits `width` pixels: 15 px when it fits, smaller
    /// down to 11 px, then split into two lines at the space nearest the middle. Widths are
    /// estimated at 0.56 em per character (a sans-serif average).
    static func fit(_ title: String, width: Double) -> (lines: [String], size: Double) {
        func size(_ line: String) -> Double {  // to 0.1 px, rounded down: the SVG prints one decimal
            (min(15, width / (0.56 * Double(max(1, line.count)))) * 10).rounded(.down) / 10
        }
        if size(title) >= 11 { return ([title], size(title)) }
        let chars = Array(title)
        let spaces = chars.indices.filter { chars[$0] == " " }
        guard let cut = spaces.min(by: { abs($0 - chars.count / 2) < abs($1 - chars.count / 2) }) else {
            return ([title], size(title))
        }
        let lines = [String(chars[..<cut]), String(chars[(cut + 1)...])]
        return (lines, lines.map(size).min() ?? 11)
    }

    private func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
