import FuzzDriver
import Layerwise

/// libFuzzer entry point: decodes the input as a safetensors file. Any typed error is a
/// pass; a trap, a leak or an ASan report is a finding. A file that decodes must encode
/// again and decode to the same tensors.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let file = try? SafeTensors.decode(bytes, source: "fuzz") else { return 0 }
    guard let encoded = try? SafeTensors.encode(file.tensors, metadata: file.metadata),
        let again = try? SafeTensors.decode(encoded), again.isBitIdentical(to: file)
    else { fatalError("a decoded file does not round-trip through encode") }
    return 0
}

@_cdecl("FuzzSafeTensors_main")
public func fuzzSafeTensorsMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv) { fuzzSafeTensors($0, $1) }
}
