import ArgumentParser
import Foundation
import Layerwise

struct Filters: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a stage's filters as a PNG grid, nearest-neighbour upscaled so small kernels are readable.",
        discussion: "Each filter is contrast-stretched on its own; stages above the first show each filter's "
            + "mean over its input channels.")

    @Option(help: "A model written by `layerwise pretrain`.")
    var model: String

    @Option(help: "Where to write the PNG.")
    var out: String

    @Option(help: "The stage (1-based).")
    var stage: Int = 1

    @Option(help: "Screen pixels per filter pixel (nearest-neighbour).")
    var scale: Int = 8

    @Option(help: "Filters per row.")
    var columns: Int = 16

    func validate() throws {
        guard out.lowercased().hasSuffix(".png") else {
            throw CommandLineError.badOption(name: "--out", value: out, reason: "the image must end in .png")
        }
        guard (1...64).contains(scale) else {
            throw CommandLineError.badOption(name: "--scale", value: "\(scale)", reason: "must lie in 1...64")
        }
        guard columns >= 1 else {
            throw CommandLineError.badOption(name: "--columns", value: "\(columns)", reason: "must be ≥ 1")
        }
    }

    func run() throws {
        let model = try ModelFile.read(path: self.model)
        guard model.weights.indices.contains(stage - 1) else {
            throw CommandLineError.badOption(
                name: "--stage", value: "\(stage)", reason: "the model has stages 1...\(model.weights.count)")
        }
        let weights = FilterGrid.displayable(model.weights[stage - 1].weight)
        try AtomicFile.write(try FilterGrid.png(weights, columns: columns, scale: scale), to: out)
        say("filters: \(out) (stage \(stage), \(weights.shape[0]) filters, \(scale)x)")
    }
}
