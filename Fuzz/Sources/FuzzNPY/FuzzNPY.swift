import FuzzDriver
import Layerwise

/// libFuzzer entry point: decodes the input as an image `.npy` file in both layouts and as
/// a labels file. The first input byte splits it: when odd, the rest is cut in two at a
/// position taken from the second and third bytes, and the halves are decoded as images
/// and labels together (the label count must then match the image count). Typed errors
/// pass; traps, leaks and ASan reports are findings.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard bytes.count >= 3, bytes[0] & 1 == 1 else {
        for layout in NPYLayout.allCases {
            if let d = try? NPY.decodeImages(bytes, layout: layout),
                d.pixels.count != d.count * d.imageShape.elementCount
            {
                fatalError("pixel count does not match the shape")
            }
        }
        _ = try? NPY.decodeLabels(bytes)
        return 0
    }
    let body = Array(bytes.dropFirst(3))
    let cut = min(body.count, Int(bytes[1]) | Int(bytes[2]) << 8)
    let images = Array(body[..<cut]), labels = Array(body[cut...])
    if let d = try? NPY.decodeImages(images, labels: labels, layout: .nchw), d.labels?.count != d.count {
        fatalError("label count does not match the image count")
    }
    return 0
}

@_cdecl("FuzzNPY_main")
public func fuzzNPYMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv) { fuzzNPY($0, $1) }
}
