import XCTest

@testable import Datasets

final class NPYTests: XCTestCase {
    func smallDataset() throws -> InMemoryImageDataset {
        let shape = ImageShape(channels: 3, height: 2, width: 4)
        let pixels = (0..<(5 * shape.elementCount)).map { UInt8(($0 * 11) & 0xFF) }
        return try InMemoryImageDataset(pixels: pixels, shape: shape, labels: [0, 4, 2, 1, 3])
    }

    func testRoundTripNHWCAndNCHW() throws {
        let dir = try makeTemporaryDirectory(self)
        let data = try smallDataset()
        for layout in NPYLayout.allCases {
            let images = dir + "/x_\(layout).npy", labels = dir + "/y_\(layout).npy"
            try NPY.write(data, imagesPath: images, labelsPath: labels, layout: layout)
            let back = try NPY.loadImages(path: images, labelsPath: labels, layout: layout)
            XCTAssertEqual(back.imageShape, data.imageShape)
            XCTAssertEqual(back.pixels, data.pixels, "\(layout)")
            XCTAssertEqual(back.labels, data.labels)
        }
    }

    func testNHWCIsConvertedToPlanar() throws {
        let dir = try makeTemporaryDirectory(self)
        // One 1×2 image with 3 channels, interleaved: (r,g,b) = (1,2,3), (4,5,6).
        try NPY.write(pixels: [1, 2, 3, 4, 5, 6], shape: [1, 1, 2, 3], to: dir + "/a.npy")
        let d = try NPY.loadImages(path: dir + "/a.npy")
        XCTAssertEqual(d.pixels, [1, 4, 2, 5, 3, 6])
        XCTAssertNil(d.labels)
        XCTAssertEqual(d.image(at: 0)[2, 0, 1], 6.0 / 255)
    }

    func testHeaderIsPaddedTo64BytesAndLabelDtypes() throws {
        let bytes = NPY.encode(descr: "|u1", shape: [2, 3], payload: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual((bytes.count - 6) % 64, 0)
        let dir = try makeTemporaryDirectory(self)
        // <i4, <i2 and |u1 label files.
        let i4: [UInt8] = [7, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]  // 7, -1
        try writeBytes(NPY.encode(descr: "<i4", shape: [2], payload: i4), to: dir + "/i4.npy")
        XCTAssertEqual(try NPY.loadLabels(path: dir + "/i4.npy"), [7, -1])
        try writeBytes(NPY.encode(descr: "<i2", shape: [2], payload: [3, 1, 2, 0]), to: dir + "/i2.npy")
        XCTAssertEqual(try NPY.loadLabels(path: dir + "/i2.npy"), [259, 2])
        try writeBytes(NPY.encode(descr: "|u1", shape: [3], payload: [9, 0, 255]), to: dir + "/u1.npy")
        XCTAssertEqual(try NPY.loadLabels(path: dir + "/u1.npy"), [9, 0, 255])
        // A negative label is rejected when loading a labelled dataset.
        try NPY.write(pixels: [1, 2], shape: [2, 1, 1, 1], to: dir + "/x.npy")
        expectDatasetError { try NPY.loadImages(path: dir + "/x.npy", labelsPath: dir + "/i4.npy") }
        // Label count mismatch.
        expectDatasetError { try NPY.loadImages(path: dir + "/x.npy", labelsPath: dir + "/u1.npy") }
    }

    func testVersion2HeaderIsAccepted() throws {
        let dir = try makeTemporaryDirectory(self)
        var v1 = NPY.encode(descr: "|u1", shape: [1, 2, 2, 1], payload: [1, 2, 3, 4])
        // Rewrite as version 2.0: 4-byte header length.
        let len = Int(v1[8]) | Int(v1[9]) << 8
        v1[6] = 2
        let v2 = Array(v1[0..<8]) + [UInt8(len & 0xFF), UInt8(len >> 8), 0, 0] + Array(v1[10...])
        try writeBytes(v2, to: dir + "/v2.npy")
        XCTAssertEqual(try NPY.loadImages(path: dir + "/v2.npy").pixels, [1, 2, 3, 4])
    }

    func testMalformedHeadersAreRejectedWithReasons() throws {
        let dir = try makeTemporaryDirectory(self)
        let good = NPY.encode(descr: "|u1", shape: [1, 2, 2, 1], payload: [1, 2, 3, 4])
        func header(_ dict: String, payload: [UInt8] = [1, 2, 3, 4]) -> [UInt8] {
            let text = dict + "\n"
            return NPY.magic + [1, 0, UInt8(text.utf8.count), 0] + Array(text.utf8) + payload
        }
        let cases: [(String, [UInt8], String)] = [
            ("magic", [0x00] + Array(good.dropFirst()), "magic"),
            ("version", Array(good[0..<6]) + [4, 0] + Array(good[8...]), "version"),
            ("headerlen", Array(good[0..<8]) + [0xFF, 0xFF] + Array(good[10...]), "past the end"),
            ("fortran", header("{'descr': '|u1', 'fortran_order': True, 'shape': (1, 2, 2, 1), }"), "fortran"),
            ("dtype", header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1), }"), "uint8"),
            ("missing", header("{'descr': '|u1', 'fortran_order': False, }"), "shape"),
            (
                "extra", header("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 2, 1), 'x': 1}"),
                "unexpected key"
            ),
            ("negative", header("{'descr': '|u1', 'fortran_order': False, 'shape': (1, -2, 2, 1), }"), "non-negative"),
            (
                "sizemismatch", header("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2, 1), }"),
                "needs 8 data bytes"
            ),
            (
                "overflow",
                header("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296, 1), }"),
                "overflow"
            ),
            (
                "huge", header("{'descr': '|u1', 'fortran_order': False, 'shape': (100000000, 32, 32, 3), }"),
                "data bytes"
            ),
            ("rank", header("{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }"), "4-D"),
            ("notdict", header("descr: u1"), "dict"),
            ("short", Array(good[0..<7]), "too short"),
        ]
        for (name, bytes, expected) in cases {
            let path = dir + "/\(name).npy"
            try writeBytes(bytes, to: path)
            let error = expectDatasetError { try NPY.loadImages(path: path) }
            guard case .badHeader(let file, let reason)? = error else {
                XCTFail("\(name): expected badHeader, got \(String(describing: error))")
                continue
            }
            XCTAssertEqual(file, path)
            XCTAssertTrue(reason.contains(expected), "\(name): '\(reason)' should mention '\(expected)'")
        }
        XCTAssertEqual(expectDatasetError { try NPY.loadImages(path: dir) }, .notAFile(path: dir))
    }

    func testGrayscale3DArray() throws {
        let dir = try makeTemporaryDirectory(self)
        try NPY.write(pixels: Array(0..<8), shape: [2, 2, 2], to: dir + "/g.npy")
        let d = try NPY.loadImages(path: dir + "/g.npy")
        XCTAssertEqual(d.imageShape, ImageShape(channels: 1, height: 2, width: 2))
        XCTAssertEqual(d.count, 2)
    }
}
