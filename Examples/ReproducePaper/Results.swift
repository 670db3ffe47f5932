import Foundation
import Layerwise

/// Everything the run measured; written as results.json (snake_case keys) and results.md.
struct Results: Encodable {
    struct DataSummary: Encodable {
        var pretrainImages: Int
        var trainImages: Int
        var testImages: Int
        var testSource: String
    }

    struct Pretraining: Encodable {
        var seconds: Double
        var finalLoss: Float
        /// End to end only: seconds until its epoch loss first reached the layer-wise
        /// top-stage final loss (nil = never within the budget).
        var secondsToLayerwiseLoss: Double?
        var lossPerEpoch: [Float]
    }

    struct Arm: Encodable {
        var testAccuracyMean: Double
        var testAccuracyStd: Double
        var testAccuracyPerSeed: [Double]
        /// Validation accuracy per epoch, averaged over seeds.
        var curve: [Double]
        /// Validation accuracy per epoch of each seed (the curves' ± std bands).
        var curvePerSeed: [[Double]] = []
        var seconds: Double
    }

    var preset: String
    var recipe: String
    var command: String
    var data: DataSummary
    var pretraining: [String: Pretraining] = [:]
    var arms: [String: Arm] = [:]
    var linearProbe: [String: Double] = [:]
    var totalSeconds: Double?

    func write(to directory: String) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write(try encoder.encode(self), to: directory + "/results.json")
        try AtomicFile.write(Data(markdown().utf8), to: directory + "/results.md")
    }

    func markdownTable() -> String {
        var s = "| arm | test accuracy (mean ± std) | after epoch 1 | seeds | seconds |\n|---|---|---|---|---|\n"
        let paperArms = TransferArm.paperArms.map(\.rawValue)
        for name in paperArms + arms.keys.filter({ !paperArms.contains($0) }).sorted() {
            guard let a = arms[name] else { continue }
            s +=
                "| \(name) | \(pct(a.testAccuracyMean)) ± \(String(format: "%.1f", a.testAccuracyStd * 100)) "
                + "| \(pct(a.curve.first ?? .nan)) | \(a.testAccuracyPerSeed.count) "
                + "| \(String(format: "%.0f", a.seconds)) |\n"
        }
        return s
    }

    func markdown() -> String {
        var s = "# reproduce-paper results\n\n"
        s += "Command: `\(command)`\n\n"
        s +=
            "Preset `\(preset)`, recipe `\(recipe)`. Pretraining: \(data.pretrainImages) "
            + (isDeep
                ? "CIFAR-10 training images (labels unused). "
                : "CIFAR-100 images (labels unused for the contrastive stages). ")
        s +=
            "CIFAR-10: \(data.trainImages) training images, \(data.testImages) evaluation images "
            + "(\(data.testSource)).\n\n"
        if !arms.isEmpty { s += "## Transfer arms\n\n" + markdownTable() + "\n" }
        if !linearProbe.isEmpty {
            s +=
                (isDeep
                    ? "## Linear probe (frozen stage map, dropout 0.5, linear classifier)\n\n"
                    : "## Linear probe (frozen features, ReLU, 4-quadrant sum pooling, linear classifier)\n\n")
                + "| features | accuracy |\n|---|---|\n"
            for (k, v) in linearProbe.sorted(by: { $0.key < $1.key }) { s += "| \(k) | \(pct(v)) |\n" }
            s += "\n"
        }
        if !pretraining.isEmpty {
            s += "## Pretraining\n\n| run | seconds | final loss | seconds to layer-wise loss |\n|---|---|---|---|\n"
            for (k, v) in pretraining.sorted(by: { $0.key < $1.key }) {
                s +=
                    "| \(k) | \(String(format: "%.1f", v.seconds)) | \(String(format: "%.4f", v.finalLoss)) | "
                    + "\(v.secondsToLayerwiseLoss.map { String(format: "%.1f", $0) } ?? "–") |\n"
            }
            s += "\n"
        }
        if let totalSeconds { s += "Total wall time: \(String(format: "%.0f", totalSeconds)) s.\n" }
        return s
    }

    /// `--layers 3`: the stack pretrains on CIFAR-10 and its probe reads whole stage maps.
    private var isDeep: Bool { preset == "deep" }

    private func pct(_ v: Double) -> String { v.isFinite ? String(format: "%.1f%%", v * 100) : "n/a" }
}
