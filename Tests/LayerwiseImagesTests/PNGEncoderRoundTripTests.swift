import Foundation
import Layerwise
import XCTest

@testable import LayerwiseImages

/// The library's PNG encoder (deflate with LZ77 + fixed Huffman codes) read back by libpng,
/// an independent decoder: every pixel survives.
final class PNGEncoderRoundTripTests: XCTestCase {
    func roundTrip(_ rgb: [UInt8], width: Int, height: Int, file: String) throws -> (png: [UInt8], back: RGBImage) {
        let png = try PNGEncoder.encode(rgb: rgb, width: width, height: height)
        let back = try png.withUnsafeBytes { try ImageCodec.decode($0, file: file) }
        XCTAssertEqual(back.width, width)
        XCTAssertEqual(back.height, height)
        XCTAssertEqual(back.pixels, rgb, file)
        return (png, back)
    }

    func testRandomFlatAndRepetitiveImagesRoundTrip() throws {
        var g = SeededGenerator(seed: 5)
        let noise = (0..<(37 * 23 * 3)).map { _ in UInt8.random(in: 0...255, using: &g) }
        let noisy = try roundTrip(noise, width: 37, height: 23, file: "noise")
        XCTAssertLessThanOrEqual(noisy.png.count, noise.count + 23 + 200, "incompressible data is stored")
        _ = try roundTrip([UInt8](repeating: 200, count: 300 * 5 * 3), width: 300, height: 5, file: "flat")
        var stripes: [UInt8] = []
        for i in 0..<(64 * 64) {
            let pixel: [UInt8] = i % 64 < 20 ? [255, 0, 0] : [UInt8(i % 7), 9, UInt8(i / 64)]
            stripes += pixel
        }
        _ = try roundTrip(stripes, width: 64, height: 64, file: "stripes")
        _ = try roundTrip([1, 2, 3], width: 1, height: 1, file: "one pixel")
        // Long matches (258 bytes) and far distances (a whole 3,000-byte row back).
        var rows: [UInt8] = []
        for i in 0..<(1000 * 40) {
            let x = i % 1000
            rows += [UInt8(x % 251), UInt8(x / 4 % 256), 7]
        }
        _ = try roundTrip(rows, width: 1000, height: 40, file: "repeated rows")
    }

    func testAnUpscaledFilterGridCompressesByOverTenTimes() throws {
        var g = SeededGenerator(seed: 2)
        let w = try Tensor(
            shape: [64, 3, 6, 6], values: (0..<(64 * 108)).map { _ in Float.random(in: -1...1, using: &g) })
        let (rgb, width, height) = try FilterGrid.render(w, columns: 16, scale: 8)
        let (png, _) = try roundTrip(rgb, width: width, height: height, file: "grid")
        XCTAssertLessThan(png.count * 10, rgb.count, "\(png.count) bytes for \(rgb.count) pixel bytes")
    }
}
