import COpenBLAS
import Foundation

/// Which OpenBLAS kernel runs the library's GEMMs, and whether the processor could run a
/// faster one.
///
/// OpenBLAS builds with `DYNAMIC_ARCH` (Debian's and Ubuntu's) pick their kernel from the
/// processor once, when the library loads. Releases older than the processor fall back to a
/// generic SSE kernel: OpenBLAS 0.3.21 picks `Prescott` on Sapphire Rapids, whose AVX-512
/// kernel (`SkylakeX`) runs SGEMM five times faster. Only the environment variable
/// `OPENBLAS_CORETYPE`, read at load time, chooses another kernel, so a program that finds a
/// generic kernel can only restart itself with the variable set
/// (``restartWithFasterKernelIfNeeded(note:)``) or tell its user (``advice``).
public struct BLASKernel: Sendable, Equatable {
    /// The kernel OpenBLAS chose, as `openblas_get_corename()` names it (e.g. `SkylakeX`).
    public var coreName: String
    /// The processor's instruction-set flags (lower case, as `/proc/cpuinfo` lists them).
    public var cpuFlags: Set<String>
    /// `OPENBLAS_CORETYPE` as the process received it (nil = unset: OpenBLAS detected).
    public var requestedCoreType: String?

    /// The kernel in this process.
    public static var current: BLASKernel {
        BLASKernel(
            coreName: String(cString: openblas_get_corename()),
            cpuFlags: cpuFlagsOfThisMachine(),
            requestedCoreType: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"])
    }

    /// OpenBLAS's x86-64 kernels without AVX2 and FMA (its names, lower case).
    static let kernelsWithoutAVX2: Set<String> = [
        "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge", "katmai", "coppermine",
        "northwood", "banias", "athlon", "opteron", "opteron(sse3)", "barcelona", "bobcat", "bulldozer",
        "piledriver", "nano",
    ]

    /// The fastest OpenBLAS kernel the processor's flags allow (`SkylakeX` with AVX-512,
    /// `Haswell` with AVX2 and FMA), or nil for a processor with neither.
    public var fastestSupportedCoreType: String? {
        let avx512 = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        if avx512.allSatisfy(cpuFlags.contains) { return "SkylakeX" }
        if cpuFlags.contains("avx2") && cpuFlags.contains("fma") { return "Haswell" }
        return nil
    }

    /// The kernel to restart with: set only when OpenBLAS detected (no `OPENBLAS_CORETYPE`) a
    /// kernel without AVX2 on a processor that has AVX2 or AVX-512. A requested kernel is
    /// always kept.
    public var recommendedCoreType: String? {
        guard requestedCoreType == nil, Self.kernelsWithoutAVX2.contains(coreName.lowercased()) else { return nil }
        return fastestSupportedCoreType
    }

    /// One line for the user when the kernel is slower than the processor allows, else nil.
    public var advice: String? {
        guard let better = recommendedCoreType else { return nil }
        return "OpenBLAS chose its generic \(coreName) kernel on a processor that runs its \(better) kernel, "
            + "which multiplies matrices several times faster; set OPENBLAS_CORETYPE=\(better) to use it "
            + "(or OPENBLAS_CORETYPE=\(coreName) to keep this one)"
    }

    /// Restarts the running program with `OPENBLAS_CORETYPE` set to ``recommendedCoreType``,
    /// the same arguments and environment otherwise, when OpenBLAS detected a generic kernel.
    ///
    /// Call it first thing in an executable's entry point, before any work: the restart
    /// replaces the process (same PID, so MPI launchers and job control are unaffected).
    /// Returns (without restarting) when the kernel is already right, when the user set
    /// `OPENBLAS_CORETYPE`, or when the restart fails; `note` receives what happened.
    public static func restartWithFasterKernelIfNeeded(note: (String) -> Void) {
        let kernel = current
        guard let better = kernel.recommendedCoreType else { return }
        #if os(Linux)
            note("OpenBLAS chose its generic \(kernel.coreName) kernel; restarting with OPENBLAS_CORETYPE=\(better)")
            setenv("OPENBLAS_CORETYPE", better, 1)
            fflush(nil)
            let arguments = CommandLine.unsafeArgv
            execv("/proc/self/exe", arguments)
            // Only reached when execv failed; carry on with the slow kernel.
            unsetenv("OPENBLAS_CORETYPE")
            note("could not restart (\(String(cString: strerror(errno)))); \(kernel.advice ?? "")")
        #else
            if let advice = kernel.advice { note(advice) }
        #endif
    }

    /// The `flags` line of `/proc/cpuinfo` (empty where there is none, e.g. on macOS).
    static func cpuFlagsOfThisMachine() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        return parseCPUFlags(text)
    }

    /// The first `flags` line of a `/proc/cpuinfo` text, as a set.
    static func parseCPUFlags(_ cpuinfo: String) -> Set<String> {
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map { $0.lowercased() })
        }
        return []
    }
}
