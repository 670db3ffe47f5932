import Foundation
import Glibc

/// Process-level measurements: wall clock, page faults, peak resident memory, and the
/// glibc allocator tuning the reference applies (`--malloc tuned`).
enum ProcessStats {
    /// Monotonic seconds (the analogue of Python's `time.perf_counter()`).
    @inline(__always)
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private static func usage() -> rusage {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        return ru
    }

    /// CPU seconds (user + system, all threads) used by the process so far.
    static func cpuSeconds() -> Double {
        let ru = usage()
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) * 1e-6
            + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) * 1e-6
    }

    /// Minor page faults so far (`ru_minflt`).
    static func minorFaults() -> Int { usage().ru_minflt }

    /// Peak resident set size so far, in MiB (`ru_maxrss` is KiB on Linux; equals VmHWM).
    static func peakResidentMiB() -> Double { Double(usage().ru_maxrss) / 1024 }

    /// Current resident set size in MiB, from `/proc/self/statm` (resident pages × page
    /// size); `nan` when the file cannot be read.
    static func residentMiB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return .nan }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let resident = Double(fields[1]) else { return .nan }
        return resident * Double(sysconf(Int32(_SC_PAGESIZE))) / (1024 * 1024)
    }

    /// Tells glibc never to serve allocations by mmap and never to trim the heap, exactly
    /// what bench_torch.py's `tune_malloc()` does (mallopt(M_MMAP_MAX, 0) and
    /// mallopt(M_TRIM_THRESHOLD, 2^31 − 1)), so large per-step buffers are recycled rather
    /// than page-faulted afresh. `mallopt` is not in Swift's Glibc module, so it is looked
    /// up by name.
    static func tuneMalloc() -> Bool {
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "mallopt") else { return false }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let mMmapMax: Int32 = -4, mTrimThreshold: Int32 = -1
        let ok1 = mallopt(mMmapMax, 0)
        let ok2 = mallopt(mTrimThreshold, Int32.max)
        return ok1 != 0 && ok2 != 0
    }
}
