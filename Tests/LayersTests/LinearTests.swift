import Layers
import LayerwiseTestSupport
import TensorCore
import XCTest

final class LinearTests: XCTestCase {
    func testForwardIsXWTransposePlusBias() throws {
        var rng = SeededGenerator(seed: 1)
        let linear = try Linear(inputFeatures: 3, outputFeatures: 2, using: &rng)
        linear.weight.value = try Tensor(shape: [2, 3], values: [1, 2, 3, -1, 0, 1])
        linear.bias!.value = try Tensor(shape: [2], values: [0.5, -0.5])
        let y = linear.forward(try Tensor(shape: [2, 3], values: [1, 1, 1, 2, 0, -1]), mode: .inference)
        XCTAssertEqual(y.scalars, [6.5, -0.5, -0.5, -3.5])
    }

    func testGradients() throws {
        var rng = SeededGenerator(seed: 2)
        let linear = try Linear(inputFeatures: 5, outputFeatures: 4, using: &rng)
        linear.bias!.value = .uniform([4], low: -1, high: 1, using: &rng)
        assertGradientsMatch(linear, input: .uniform([3, 5], low: -1, high: 1, using: &rng))
        let noBias = try Linear(inputFeatures: 2, outputFeatures: 3, bias: false, using: &rng)
        XCTAssertEqual(noBias.parameters.map(\.name), ["weight"])
        assertGradientsMatch(noBias, input: .uniform([4, 2], low: -1, high: 1, using: &rng))
    }

    /// A batch and a width of several blocks, the last ones partial: the split products match
    /// loops in Double, and are the same bits with one and two threads.
    func testBlockedProductsMatchLoopsOnAnyThreadCount() throws {
        let (n, inF, outF) = (Linear.rowsPerTask * 2 + 5, Linear.columnsPerTask + 37, 7)
        var rng = SeededGenerator(seed: 3)
        let x = Tensor.uniform([n, inF], low: -1, high: 1, using: &rng)
        let dy = Tensor.uniform([n, outF], low: -1, high: 1, using: &rng)
        func run(threads: Int) throws -> (Linear, [Tensor]) {
            var initRNG = SeededGenerator(seed: 4)
            let linear = try Linear(inputFeatures: inF, outputFeatures: outF, using: &initRNG)
            linear.bias!.value = .uniform([outF], low: -1, high: 1, using: &initRNG)
            let saved = BLAS.threadCount
            defer { BLAS.threadCount = saved }
            BLAS.threadCount = threads
            let y = linear.forward(x, mode: .training)
            let dx = linear.backward(dy)
            return (linear, [y, dx, linear.weight.gradient, linear.bias!.gradient])
        }
        let (linear, one) = try run(threads: 1)
        let two = try run(threads: 2).1
        for (a, b) in zip(one, two) { XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern)) }
        let w = linear.weight.value.scalars, b = linear.bias!.value.scalars, xs = x.scalars, g = dy.scalars
        var y = [Double](repeating: 0, count: n * outF), dx = [Double](repeating: 0, count: n * inF)
        var dw = [Double](repeating: 0, count: outF * inF)
        for r in 0..<n {
            for o in 0..<outF {
                y[r * outF + o] = Double(b[o])
                let gradient = Double(g[r * outF + o])
                for i in 0..<inF {
                    let xi = Double(xs[r * inF + i]), wi = Double(w[o * inF + i])
                    y[r * outF + o] += xi * wi
                    dx[r * inF + i] += gradient * wi
                    dw[o * inF + i] += gradient * xi
                }
            }
        }
        for (got, want) in zip(one.prefix(3), [y, dx, dw]) {
            let scale = want.map(abs).max()!
            for (a, e) in zip(got.scalars, want) { XCTAssertEqual(Double(a), e, accuracy: 1e-5 * scale) }
        }
    }

    func testShapesAndErrors() throws {
        var rng = SeededGenerator(seed: 1)
        let linear = try Linear(inputFeatures: 64, outputFeatures: 10, using: &rng)
        XCTAssertEqual(linear.weight.value.shape, [10, 64])
        XCTAssertEqual(try linear.outputShape(for: [7, 64]), [7, 10])
        XCTAssertThrowsError(try linear.outputShape(for: [7, 64, 1, 1])) { error in
            guard case let .incompatibleInput(layer, shape, reason)? = error as? LayerError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(layer.hasPrefix("Linear"))
            XCTAssertEqual(shape, [7, 64, 1, 1])
            XCTAssertTrue(reason.contains("Flatten"))
        }
        XCTAssertThrowsError(try linear.outputShape(for: [7, 63]))
        XCTAssertThrowsError(try Linear(inputFeatures: 3, outputFeatures: 0, using: &rng))
    }
}
