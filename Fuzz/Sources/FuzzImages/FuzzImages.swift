import FuzzDriver
import LayerwiseImages

/// libFuzzer entry point: decodes the input as a PNG or JPEG file (`ImageCodec.decode`,
/// libpng and libjpeg-turbo behind the C shim). Typed errors pass; traps, leaks and ASan
/// reports are findings. A decoded image must have width · height · 3 bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImages(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    if let image = try? ImageCodec.decode(bytes, file: "fuzz") {
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            fatalError("a decoded image of \(image.width)x\(image.height) has \(image.pixels.count) bytes")
        }
    }
    return 0
}

@_cdecl("FuzzImages_main")
public func fuzzImagesMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv) { fuzzImages($0, $1) }
}
