import Foundation
import Layerwise
import XCTest

final class DeepKMeansTests: XCTestCase {
    private func narrowStack() throws -> [[any Layer]] {
        let specs = WideStack.softHebbCIFAR.prefix(2).map { s -> WideStageSpec in
            var s = s; s.width /= 24; return s
        }
        var g = SeededGenerator(seed: 1)
        return try WideStack.layers(Array(specs), inputChannels: 3, using: &g)
    }

    /// Stage 2 fits on the frozen stage 1's output (the case KMeansStart refuses); the
    /// result is deterministic and every filter's centroid has unit norm in whitened space.
    func testFitsEveryStageDeterministically() throws {
        func fit() throws -> [Tensor] {
            let layers = try narrowStack()
            let data = SyntheticImages(count: 16, seed: 3)
            let start = try DeepKMeansStart(dataset: data, imageCount: 16, windowCount: 400, iterations: 5)
            var g = SeededGenerator(seed: 9)
            try start.fit(stage: 1, layers: layers[0], below: FrozenStack(layers: []), using: &g)
            try start.fit(stage: 2, layers: layers[1], below: FrozenStack(layers: layers[0]), using: &g)
            return layers.map { WideStack.convolution(of: $0)!.weight.value }
        }
        let a = try fit(), b = try fit()
        XCTAssertTrue(zip(a, b).allSatisfy { $0.isBitIdentical(to: $1) })
        XCTAssertEqual(a[1].shape, [16, 4, 3, 3])
        XCTAssertTrue(a[1].isFinite)
    }

    func testFoldedFiltersAreUnitCentroidsTimesTheWhitening() throws {
        let c = try Tensor(shape: [2, 2], values: [3, 4, 0, -2])
        let z = try Tensor(shape: [2, 2], values: [2, 0, 0, 1])
        let w = try DeepKMeansStart.foldedUnitFilters(c, whitening: z, shape: [2, 2, 1, 1])
        XCTAssertEqual(w.scalars, [1.2, 0.8, 0, -1])
    }

    func testRejectsAPaddedConvolution() throws {
        var g = SeededGenerator(seed: 1)
        let conv = try Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: 1, bias: false, using: &g)
        let start = try DeepKMeansStart(dataset: SyntheticImages(count: 4, seed: 1), imageCount: 4, windowCount: 20)
        XCTAssertThrowsError(try start.fit(stage: 2, layers: [conv], below: FrozenStack(layers: []), using: &g)) {
            guard case .invalidOption(stage: 2, option: "DeepKMeansStart", _, _)? = $0 as? TrainerError else {
                return XCTFail("\($0)")
            }
        }
        XCTAssertThrowsError(try DeepKMeansStart(dataset: SyntheticImages(count: 4, seed: 1), relativeEpsilon: 0))
    }
}
