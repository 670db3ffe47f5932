import Foundation

/// A small SVG line chart (the paper's Figure 3: validation accuracy per epoch per arm).
public struct LineChart: Sendable {
    /// One named line; `values[i]` is plotted at x = i + 1.
    public struct Series: Sendable {
        public var name: String
        public var values: [Double]
        public init(name: String, values: [Double]) {
            self.name = name
            self.values = values
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
        let all = series.flatMap(\.values).filter(\.isFinite)
        guard let lo = all.min(), let hi = all.max(), let n = series.map(\.values.count).max(), n > 0 else {
            throw VisualizationError.emptyChart(reason: "no finite values to plot")
        }
        let left = 60.0, right = 170.0, top = 40.0, bottom = 50.0
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        let yMin = (lo * 20).rounded(.down) / 20, yMax = max((hi * 20).rounded(.up) / 20, yMin + 0.05)
        func x(_ i: Int) -> Double { left + (n == 1 ? pw / 2 : Double(i) / Double(n - 1) * pw) }
        func y(_ v: Double) -> Double { top + (1 - (v - yMin) / (yMax - yMin)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s +=
            "<text x=\"\(f(left + pw / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        // Axes and ticks.
        s +=
            "<line x1=\"\(f(left))\" y1=\"\(f(top + ph))\" x2=\"\(f(left + pw))\" y2=\"\(f(top + ph))\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + ph))\" stroke=\"black\"/>\n"
        for k in 0...5 {
            let v = yMin + Double(k) / 5 * (yMax - yMin)
            s +=
                "<line x1=\"\(f(left - 4))\" y1=\"\(f(y(v)))\" x2=\"\(f(left + pw))\" y2=\"\(f(y(v)))\" stroke=\"#ddd\"/>\n"
            s +=
                "<text x=\"\(f(left - 8))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(String(format: "%.1f", v * 100))</text>\n"
        }
        let step = max(1, n / 10)
        for i in stride(from: 0, to: n, by: step) {
            s += "<text x=\"\(f(x(i)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(i + 1)</text>\n"
        }
        s +=
            "<text x=\"\(f(left + pw / 2))\" y=\"\(f(Double(height) - 10))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s +=
            "<text transform=\"translate(16,\(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        // Lines and legend.
        for (k, line) in series.enumerated() {
            let colour = Self.palette[k % Self.palette.count]
            let points = line.values.enumerated().filter { $0.element.isFinite }
                .map { "\(f(x($0.offset))),\(f(y($0.element)))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            let ly = top + 10 + Double(k) * 18
            s +=
                "<line x1=\"\(f(left + pw + 12))\" y1=\"\(f(ly))\" x2=\"\(f(left + pw + 32))\" y2=\"\(f(ly))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            s += "<text x=\"\(f(left + pw + 38))\" y=\"\(f(ly + 4))\">\(escape(line.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    private func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
