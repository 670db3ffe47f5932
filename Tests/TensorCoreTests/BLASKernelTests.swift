import XCTest

@testable import TensorCore

final class BLASKernelTests: XCTestCase {
    let avx512Flags: Set<String> = [
        "sse3", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl",
    ]

    func testParsesTheFlagsLineOfCPUInfo() {
        let cpuinfo = """
            processor\t: 0
            model name\t: Some Processor
            flags\t\t: fpu sse3 AVX2 fma avx512f
            bogomips\t: 4200.00

            processor\t: 1
            flags\t\t: fpu
            """
        XCTAssertEqual(BLASKernel.parseCPUFlags(cpuinfo), ["fpu", "sse3", "avx2", "fma", "avx512f"])
        XCTAssertEqual(BLASKernel.parseCPUFlags("processor : 0\n"), [])
    }

    func testRecommendsTheAVX512KernelOverADetectedGenericOne() {
        let kernel = BLASKernel(coreName: "Prescott", cpuFlags: avx512Flags, requestedCoreType: nil)
        XCTAssertEqual(kernel.recommendedCoreType, "SkylakeX")
        let advice = try? XCTUnwrap(kernel.advice)
        XCTAssertTrue(advice?.contains("OPENBLAS_CORETYPE=SkylakeX") == true, advice ?? "no advice")
        XCTAssertTrue(advice?.contains("Prescott") == true, advice ?? "no advice")
    }

    func testRecommendsHaswellOnAnAVX2Processor() {
        let kernel = BLASKernel(coreName: "Nehalem", cpuFlags: ["sse3", "avx", "avx2", "fma"], requestedCoreType: nil)
        XCTAssertEqual(kernel.recommendedCoreType, "Haswell")
    }

    func testKeepsAFastKernelARequestedKernelAndAnOldProcessor() {
        XCTAssertNil(
            BLASKernel(coreName: "SkylakeX", cpuFlags: avx512Flags, requestedCoreType: nil).recommendedCoreType)
        XCTAssertNil(BLASKernel(coreName: "Haswell", cpuFlags: avx512Flags, requestedCoreType: nil).recommendedCoreType)
        XCTAssertNil(
            BLASKernel(coreName: "Prescott", cpuFlags: avx512Flags, requestedCoreType: "Prescott").recommendedCoreType)
        XCTAssertNil(BLASKernel(coreName: "Prescott", cpuFlags: ["sse3", "avx"], requestedCoreType: nil).advice)
    }

    func testTheCurrentKernelHasAName() {
        XCTAssertFalse(BLASKernel.current.coreName.isEmpty)
    }
}
