import Augmentations
import Datasets
import PatchSamplers
import TensorCore
import XCTest

/// Images whose every pixel value is unique: value(i, c, y, x) = i·4096 + c·1024 + y·32 + x
/// (exact in Float), so a patch's source image and position can be read off its pixels.
struct CodedImages: ImageDataset {
    var count: Int
    var imageShape: ImageShape
    var classCount: Int? { nil }
    func label(at index: Int) -> Int? { nil }
    func copyPixels(of index: Int, into buffer: UnsafeMutableBufferPointer<Float>) {
        let s = imageShape
        for c in 0..<s.channels {
            for y in 0..<s.height {
                for x in 0..<s.width {
                    buffer[(c * s.height + y) * s.width + x] = Self.code(index, c, y, x)
                }
            }
        }
    }
    static func code(_ i: Int, _ c: Int, _ y: Int, _ x: Int) -> Float { Float(i * 4096 + c * 1024 + y * 32 + x) }

    /// Decodes a patch (row `row` of `patches`) and checks it is one intact window.
    func locate(
        _ patches: Tensor, row: Int, file: StaticString = #filePath, line: UInt = #line
    ) -> (image: Int, y: Int, x: Int)? {
        let c = patches.shape[1], p = patches.shape[2]
        let base = row * c * p * p
        let v = Int(patches[flat: base])
        let image = v / 4096, y = (v % 1024) / 32, x = v % 32
        for ch in 0..<c {
            for dy in 0..<p {
                for dx in 0..<p {
                    let got = patches[flat: base + (ch * p + dy) * p + dx]
                    if got != Self.code(image, ch, y + dy, x + dx) {
                        XCTFail(
                            "row \(row) is not an intact window of image \(image) at (\(y), \(x))", file: file,
                            line: line)
                        return nil
                    }
                }
            }
        }
        return (image, y, x)
    }
}

/// Adds a constant to every pixel (keeps the shape).
struct AddConstant: Augmentation {
    var value: Float
    func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        var t = image.tensor
        t.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] += value } }
        return try! Image(t)
    }
}

/// Returns the image unchanged.
struct IdentityAugmentation: Augmentation {
    func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image { image }
}

/// Shrinks by dropping the last row and column (changes the shape).
struct DropLastRowColumn: Augmentation {
    func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image {
        var out = Image(channels: image.channels, height: image.height - 1, width: image.width - 1)
        for c in 0..<image.channels {
            for y in 0..<(image.height - 1) { for x in 0..<(image.width - 1) { out[c, y, x] = image[c, y, x] } }
        }
        return out
    }
}

func expectSamplerError<T>(
    _ expected: SamplerError? = nil, _ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try body()
        XCTFail("expected a SamplerError", file: file, line: line)
    } catch let error as SamplerError {
        XCTAssertFalse(error.description.isEmpty, file: file, line: line)
        if let expected { XCTAssertEqual(error, expected, file: file, line: line) }
    } catch {
        XCTFail("expected a SamplerError, got \(error)", file: file, line: line)
    }
}
