/// The reference's `flops_per_step`: theoretical FLOPs (2 per MAC) of the conv/linear
/// layers only; elementwise ops, pooling, loss and optimizer are ignored. Training =
/// forward + weight gradient (+ input gradient only where the input needs one).
struct FlopModel {
    var trainFlopPerStep: Int
    var flopPerItem: Int
    var inferFlopPerItem: Int?

    static func convMACs(_ cin: Int, _ cout: Int, _ k: Int, _ hout: Int, _ wout: Int) -> Int {
        cin * k * k * cout * hout * wout
    }

    static func l1(batch: Int) -> FlopModel {
        let fwd = convMACs(3, 64, 6, 2, 2)  // 27,648 MAC per patch
        let perItem = 3 * (fwd + fwd)  // fwd + wgrad; no dgrad (input is data)
        return FlopModel(trainFlopPerStep: 2 * perItem * batch, flopPerItem: 2 * perItem, inferFlopPerItem: nil)
    }

    static func l2(batch: Int) -> FlopModel {
        let l1f = convMACs(3, 64, 6, 11, 11)  // frozen, forward only
        let l2f = convMACs(64, 128, 3, 3, 3)
        let perItem = 3 * (l1f + l2f + l2f)  // l1 fwd + l2 fwd + l2 wgrad
        return FlopModel(trainFlopPerStep: 2 * perItem * batch, flopPerItem: 2 * perItem, inferFlopPerItem: nil)
    }

    static func cnn(batch: Int) -> FlopModel {
        let c1 = convMACs(3, 64, 5, 32, 32)
        let c2 = convMACs(64, 128, 5, 16, 16)
        let c3 = convMACs(128, 256, 3, 8, 8)
        let fc = 4096 * 10
        let fwd = c1 + c2 + c3 + fc
        let train = fwd + fwd + (fwd - c1)  // fwd + wgrad + dgrad (none for conv1)
        return FlopModel(trainFlopPerStep: 2 * train * batch, flopPerItem: 2 * train, inferFlopPerItem: 2 * fwd)
    }
}
