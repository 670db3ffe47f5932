import Foundation

extension NPY {
    /// Loads clips saved with NumPy as a `uint8` array of shape (N, T, H, W, C): N clips of
    /// T frames each, channels last.
    /// - Throws: ``DatasetError`` naming the file: wrong dtype, rank, a zero dimension or a short payload.
    public static func loadClips(path: String) throws -> InMemorySequenceDataset {
        let size = try FileReading.regularFileSize(path)
        let header = try readHeader(path: path, fileSize: size)
        guard ["|u1", "<u1", ">u1", "u1"].contains(header.descr) else {
            throw DatasetError.badHeader(
                file: path, reason: "clips must be uint8 ('|u1'), found descr '\(header.descr)'")
        }
        guard header.shape.count == 5 else {
            throw DatasetError.badHeader(
                file: path, reason: "clips must be a 5-D array (N, T, H, W, C), found shape \(header.shape)")
        }
        guard !header.fortranOrder else {
            throw DatasetError.badHeader(file: path, reason: "Fortran order is not supported")
        }
        let (n, t, h, w, c) = (header.shape[0], header.shape[1], header.shape[2], header.shape[3], header.shape[4])
        guard header.shape.allSatisfy({ $0 > 0 }) else {
            throw DatasetError.badHeader(file: path, reason: "shape \(header.shape) has a zero dimension")
        }
        let (count, overflow) = header.shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d)
            return (p, acc.1 || o)
        }
        guard !overflow, count <= size - header.dataOffset else {
            throw DatasetError.shapeMismatch(
                what: "\(path): payload for shape \(header.shape)", expected: "\(count) bytes",
                got: "\(size - header.dataOffset)")
        }
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(header.dataOffset))
        let data = try handle.read(upToCount: count) ?? Data()
        guard data.count == count else {
            throw DatasetError.readFailed(path: path, reason: "read \(data.count) of \(count) payload bytes")
        }
        // (N·T frames) × H × W × C → C × H × W per frame.
        let hw = h * w, per = hw * c
        var pixels = [UInt8](repeating: 0, count: count)
        data.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            for f in 0..<(n * t) {
                for p in 0..<hw {
                    for ch in 0..<c { pixels[f * per + ch * hw + p] = src[f * per + p * c + ch] }
                }
            }
        }
        return try InMemorySequenceDataset(
            pixels: pixels, clipCount: n, framesPerClip: t, frameShape: ImageShape(channels: c, height: h, width: w))
    }
}
