import Foundation
import Layerwise
import XCTest

@testable import Figures

final class VisualizationTests: XCTestCase {
    func testPNGHasSignatureChunksAndValidChecksums() throws {
        let rgb = [UInt8](repeating: 128, count: 3 * 4 * 2)
        let png = try PNGEncoder.encode(rgb: rgb, width: 4, height: 2)
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        // Walk the chunks and verify every CRC, as a decoder would.
        var i = 8
        var types: [String] = []
        while i < png.count {
            let n = Int(png[i]) << 24 | Int(png[i + 1]) << 16 | Int(png[i + 2]) << 8 | Int(png[i + 3])
            let body = Array(png[(i + 4)..<(i + 8 + n)])
            let crc = png[(i + 8 + n)..<(i + 12 + n)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            XCTAssertEqual(PNGEncoder.crc32(body), crc)
            types.append(String(decoding: body.prefix(4), as: UTF8.self))
            i += 12 + n
        }
        XCTAssertEqual(types, ["IHDR", "IDAT", "IEND"])
        XCTAssertThrowsError(try PNGEncoder.encode(rgb: rgb, width: 5, height: 2))
    }

    func testCRCAndAdlerKnownAnswers() {
        XCTAssertEqual(PNGEncoder.crc32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(PNGEncoder.adler32(Array("Wikipedia".utf8)), 0x11E6_0398)
    }

    func testFilterGridNormalisesEachFilter() throws {
        var w = Tensor.zeros([2, 3, 2, 2])
        for i in 0..<12 { w[flat: i] = Float(i) }  // filter 0: 0…11
        for i in 12..<24 { w[flat: i] = Float(i) * 100 }  // filter 1: same pattern, 100x scale
        let (rgb, width, height) = try FilterGrid.render(w, columns: 2, scale: 1, gap: 0)
        XCTAssertEqual(width, 4)
        XCTAssertEqual(height, 2)
        // Both filters map to the same pixels after per-filter normalisation… up to the offset.
        XCTAssertEqual(rgb[0], 0)  // filter 0, red channel, pixel (0,0) is its minimum
        XCTAssertEqual(rgb[(0 * 4 + 2) * 3], 0)  // filter 1 likewise
        XCTAssertThrowsError(try FilterGrid.render(Tensor.zeros([2, 2, 3, 3])))
    }

    func testLineChartHasAxesLegendAndOnePolylinePerSeries() throws {
        let chart = LineChart(
            title: "Validation accuracy", xLabel: "epoch", yLabel: "accuracy (%)",
            series: [
                .init(name: "scratch", values: [0.4, 0.5, 0.55]),
                .init(name: "contrastive_finetuned", values: [0.45, 0.52, 0.57]),
            ])
        let svg = try chart.svg()
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2)
        XCTAssertTrue(svg.contains("contrastive_finetuned"))
        XCTAssertTrue(svg.contains("epoch"))
        XCTAssertThrowsError(try LineChart(title: "", xLabel: "", yLabel: "", series: []).svg())
    }
}
