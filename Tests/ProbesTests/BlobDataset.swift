import Layerwise

/// Four classes: a bright 5x5 square somewhere inside quadrant `label` of a noisy 16x16
/// image, in a random colour. Quadrant-pooled features separate it easily (chance = 25%).
func blobDataset(count: Int, seed: UInt64) -> InMemoryImageDataset {
    var g = SeededGenerator(seed: seed)
    let size = 16, channels = 3
    var pixels = [UInt8](repeating: 0, count: count * channels * size * size)
    var labels: [Int] = []
    for i in 0..<count {
        let label = g.nextInt(below: 4)
        labels.append(label)
        let y0 = (label / 2) * 8 + g.nextInt(below: 4), x0 = (label % 2) * 8 + g.nextInt(below: 4)
        for c in 0..<channels {
            let bright = 150 + g.nextInt(below: 100)
            for y in 0..<size {
                for x in 0..<size {
                    let inBlob = y >= y0 && y < y0 + 5 && x >= x0 && x < x0 + 5
                    let v = (inBlob ? bright : 40) + g.nextInt(below: 30)
                    pixels[((i * channels + c) * size + y) * size + x] = UInt8(min(255, v))
                }
            }
        }
    }
    return try! InMemoryImageDataset(
        pixels: pixels, shape: ImageShape(channels: channels, height: size, width: size), labels: labels, classCount: 4)
}
