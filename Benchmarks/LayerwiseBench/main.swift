// Entry point of `layerwise-bench`: the Swift side of the A/B benchmark against the
// PyTorch reference in shared/peer/bench_torch.py (see Benchmarks/README.md).
import Foundation
import Layerwise

// Measures the kernel a user of the library gets: the executables restart with OpenBLAS's
// fastest supported kernel when it detected a generic one (BLASKernel).
BLASKernel.restartWithFasterKernelIfNeeded { FileHandle.standardError.write(Data("note: \($0)\n".utf8)) }
LayerwiseBenchCommand.main()
