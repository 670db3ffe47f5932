import FuzzDriver
import Layerwise

/// libFuzzer entry point: decodes the input as a CIFAR-10 batch and as a CIFAR-100 file
/// (fine and coarse labels). Typed errors pass; traps, leaks and ASan reports are findings.
/// A file that decodes must hold exactly size / record length images with labels in range.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCIFAR(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let d = try? CIFAR.decodeCIFAR10(bytes) {
        check(d, records: bytes.count / CIFAR.cifar10RecordLength, classes: 10)
    }
    for kind in CIFAR100LabelKind.allCases {
        if let d = try? CIFAR.decodeCIFAR100(bytes, labels: kind) {
            check(d, records: bytes.count / CIFAR.cifar100RecordLength, classes: kind == .fine ? 100 : 20)
        }
    }
    return 0
}

func check(_ d: InMemoryImageDataset, records: Int, classes: Int) {
    guard d.count == records, let labels = d.labels, labels.allSatisfy({ $0 >= 0 && $0 < classes }) else {
        fatalError("a decoded CIFAR file has the wrong record count or a label out of range")
    }
}

@_cdecl("FuzzCIFAR_main")
public func fuzzCIFARMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv) { fuzzCIFAR($0, $1) }
}
