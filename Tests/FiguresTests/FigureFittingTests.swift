import Foundation
import Layerwise
import XCTest

/// Figures people read: titles that fit, spread bands over seeds, upscaled filter grids.
final class FigureFittingTests: XCTestCase {
    /// The x and font size of each title line in an SVG.
    func titles(_ svg: String) -> [(x: Double, size: Double, text: String)] {
        svg.split(separator: "\n").filter { $0.contains("text-anchor=\"middle\" font-size=") }.map { line in
            func attribute(_ name: String) -> Double {
                let start = line.range(of: "\(name)=\"")!.upperBound
                return Double(line[start...].prefix { $0 != "\"" })!
            }
            let text = line.split(separator: ">")[1].split(separator: "<")[0]
            return (attribute("x"), attribute("font-size"), String(text))
        }
    }

    func testLongTitlesAreCentredOnThePictureAndFitIt() throws {
        let long = "CIFAR-10 validation accuracy per epoch (paper preset, mean ± std of 2 seeds)"
        for (title, lines) in [("Short", 1), (long, 1), (long + " with a long explanation appended to it", 2)] {
            let svg = try LineChart(
                title: title, xLabel: "epoch", yLabel: "accuracy (%)",
                series: [
                    .init(name: "a", values: [0.5, 0.6])
                ]
            ).svg(width: 640, height: 420)
            let t = titles(svg)
            XCTAssertEqual(t.count, lines, title)
            for line in t {
                XCTAssertEqual(line.x, 320)
                let halfWidth = 0.56 * line.size * Double(line.text.count) / 2
                XCTAssertGreaterThanOrEqual(line.x - halfWidth, 10 - 1e-9, "\(line.text) at \(line.size) px")
                XCTAssertLessThanOrEqual(line.size, 15)
            }
            XCTAssertEqual(t.map(\.text).joined(separator: " "), title)
        }
    }

    func testSeveralSeedsDrawAMeanAndStdBand() throws {
        let runs: [[Double]] = [[0.40, 0.50, 0.60], [0.44, 0.56, 0.60]]
        let series = LineChart.Series(name: "arm", runs: runs)
        XCTAssertEqual(series.values[0], 0.42, accuracy: 1e-12)
        XCTAssertEqual(series.spread?[0] ?? 0, (0.0008 as Double).squareRoot(), accuracy: 1e-12)  // sample std
        XCTAssertEqual(series.spread?[2] ?? 1, 0, accuracy: 1e-12)
        let svg = try LineChart(title: "t", xLabel: "x", yLabel: "y", series: [series]).svg()
        XCTAssertEqual(svg.components(separatedBy: "<polygon").count - 1, 1)
        XCTAssertTrue(svg.contains("fill-opacity"))
        let single = try LineChart(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", runs: [runs[0]])])
            .svg()
        XCTAssertFalse(single.contains("<polygon"), "one seed: no band")
        XCTAssertNil(LineChart.Series(name: "a", runs: [runs[0]]).spread)
    }

    func testFilterGridUpscalesByNearestNeighbour() throws {
        var g = SeededGenerator(seed: 1)
        let w = try Tensor(shape: [2, 3, 6, 6], values: (0..<216).map { _ in Float.random(in: -1...1, using: &g) })
        let (rgb, width, height) = try FilterGrid.render(w, columns: 2, scale: 8, gap: 0)
        XCTAssertEqual(width, 96)
        XCTAssertEqual(height, 48)
        for y in 0..<height {
            for x in 0..<width {
                let block = ((y / 8 * 8) * width + x / 8 * 8) * 3
                XCTAssertEqual(
                    Array(rgb[((y * width + x) * 3)..<((y * width + x) * 3 + 3)]), Array(rgb[block..<(block + 3)]))
            }
        }
        let upper = FilterGrid.displayable(Tensor(shape: [4, 8, 3, 3], repeating: 0.5))
        XCTAssertEqual(upper.shape, [4, 1, 3, 3])
        XCTAssertEqual(upper.scalars.first ?? 0, 0.5, accuracy: 1e-6)
    }
}
