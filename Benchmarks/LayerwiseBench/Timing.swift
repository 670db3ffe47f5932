/// Throughput of the timed runs, summarised as bench_torch.py's `summarize` does.
struct RunSummary {
    /// Items per second of every timed run, in order.
    var rates: [Double]
    /// Minor page faults per timed step (all runs together).
    var minorFaultsPerStep: Double
    /// CPU milliseconds (user + system, all threads) per timed step. Unlike wall time it
    /// barely moves when other processes compete for the cores, so it is the figure to
    /// compare while profiling on a loaded machine (the reference does not report it).
    var cpuMillisecondsPerStep: Double

    /// Python's `statistics.median`: the middle value, or the mean of the two middle ones.
    var median: Double {
        let s = rates.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    var min: Double { rates.min() ?? .nan }
    var max: Double { rates.max() ?? .nan }
}

/// The reference's `timed_runs`, step for step:
///
/// 1. `warmup` untimed steps (with pre-sampled batch 0 when `preCount` is given);
/// 2. `runs` timed runs of `steps` steps each; step `i` of a run uses pre-sampled batch
///    `i % preCount` (excl mode) or samples inside the step (`nil`, incl mode);
/// 3. per run, throughput = `itemsPerStep · steps / wall time`.
///
/// Minor faults and CPU time are counted over all timed runs, per step.
func timedRuns(
    warmup: Int, steps: Int, runs: Int, itemsPerStep: Int, preCount: Int?,
    _ step: (_ preIndex: Int?) throws -> Void
) rethrows -> RunSummary {
    for _ in 0..<warmup { try step(preCount == nil ? nil : 0) }
    var rates: [Double] = []
    rates.reserveCapacity(runs)
    let faults0 = ProcessStats.minorFaults()
    let cpu0 = ProcessStats.cpuSeconds()
    for _ in 0..<runs {
        let t0 = ProcessStats.now()
        for i in 0..<steps { try step(preCount.map { i % $0 }) }
        let dt = ProcessStats.now() - t0
        rates.append(Double(itemsPerStep * steps) / dt)
    }
    let faults = Double(ProcessStats.minorFaults() - faults0) / Double(runs * steps)
    let cpu = (ProcessStats.cpuSeconds() - cpu0) * 1000 / Double(runs * steps)
    return RunSummary(rates: rates, minorFaultsPerStep: faults, cpuMillisecondsPerStep: cpu)
}
