import Layerwise

/// Workload `soak` (ours only): l1 training with sampling inside the loop for many steps,
/// sampling the resident memory (`/proc/self/statm`) every tenth of the way, so growth
/// from a leak or an ever-growing cache would show. One JSON line per sample, then a
/// summary with the growth between the first and the last sample.
enum SoakWorkload {
    static func run(options: BenchOptions, images: Tensor, steps: Int) throws -> [JSONLine] {
        let workload = try L1Workload.make(options: options)
        var sampler = BenchTripletSampler(
            images: images, patch: workload.patch, batch: options.batch, seed: UInt64(options.seed) &+ 1)
        for _ in 0..<options.warmup { try workload.step(sampler.sample()) }
        let every = max(1, steps / 10)
        var lines: [JSONLine] = []
        var samples: [Double] = []
        let t0 = ProcessStats.now()
        for i in 1...steps {
            try workload.step(sampler.sample())
            if i % every == 0 || i == steps {
                let rss = ProcessStats.residentMiB()
                samples.append(rss)
                var line = JSONLine()
                line.set("workload", "soak")
                line.set("mode", "l1_train_incl_sampling")
                line.set("threads", options.threads)
                line.set("step", i)
                line.set("rss_mb", rss, places: 2)
                line.set("seconds", ProcessStats.now() - t0, places: 2)
                line.set("loss", Double(workload.lastLoss), places: 5)
                lines.append(line)
            }
        }
        guard workload.lastLoss.isFinite else {
            throw BenchError.failed(workload: "soak", reason: "loss is \(workload.lastLoss) after \(steps) steps")
        }
        var line = JSONLine()
        line.set("workload", "soak")
        line.set("mode", "summary")
        line.set("threads", options.threads)
        line.set("steps", steps)
        line.set("rss_first_mb", samples.first ?? .nan, places: 2)
        line.set("rss_last_mb", samples.last ?? .nan, places: 2)
        line.set("rss_growth_mb", (samples.last ?? .nan) - (samples.first ?? .nan), places: 2)
        line.set("rss_max_mb", samples.max() ?? .nan, places: 2)
        line.set("triplets_per_s", Double(steps * options.batch) / (ProcessStats.now() - t0), places: 1)
        line.set("peak_rss_mb", ProcessStats.peakResidentMiB(), places: 1)
        lines.append(line)
        return lines
    }
}
