// The `layerwise` command-line tool; the commands live in the LayerwiseCLI module.
import Foundation
import Layerwise
import LayerwiseCLI

// Before any work: OpenBLAS picks its kernel when it loads (see BLASKernel).
BLASKernel.restartWithFasterKernelIfNeeded { FileHandle.standardError.write(Data("note: \($0)\n".utf8)) }
LayerwiseCommand.main()
