import Foundation
import Layerwise
import XCTest

@testable import LayerwiseImages

/// Clips from disk: frame folders (a camera pan across an image, written as PNG frames the
/// way `ffmpeg -i clip.mp4 -vf fps=4 clip/%04d.png` writes them) and 5-D `.npy` arrays.
final class ClipTests: XCTestCase {
    /// A smooth random scene, `width`×`height` RGB.
    func scene(width: Int, height: Int, seed: UInt64) -> [UInt8] {
        var g = SeededGenerator(seed: seed)
        let blobs = (0..<6).map { _ in
            (
                Double.random(in: 0..<Double(width), using: &g), Double.random(in: 0..<Double(height), using: &g),
                (0..<3).map { _ in Double.random(in: 0...255, using: &g) }
            )
        }
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    var v = 40.0
                    for (bx, by, color) in blobs {
                        let d2 = (Double(x) - bx) * (Double(x) - bx) + (Double(y) - by) * (Double(y) - by)
                        v += color[c] * exp(-d2 / 60)
                    }
                    px[(y * width + x) * 3 + c] = UInt8(min(255, v))
                }
            }
        }
        return px
    }

    /// Writes `clips` folders of `frames` PNG frames: a 20x20 window panning 3 px per frame.
    func writePanClips(root: String, clips: Int, frames: Int) throws {
        let (w, h, side) = (20 + 3 * frames, 24, 20)
        for clip in 0..<clips {
            let px = scene(width: w, height: h, seed: UInt64(clip + 1))
            for f in 0..<frames {
                var window: [UInt8] = []
                for y in 2..<(2 + side) {
                    let start: Int = (y * w + 3 * f) * 3
                    window += px[start..<(start + side * 3)]
                }
                let png = try PNGEncoder.encode(rgb: window, width: side, height: side)
                try ImageFixtures.write(png, "\(root)/clip\(clip)/\(String(format: "%04d", f + 1)).png")
            }
        }
    }

    func testAPanClipFolderTrainsAFramePairStage() throws {
        let root = try ImageFixtures.folder()
        try writePanClips(root: root, clips: 6, frames: 5)
        try ImageFixtures.write(try PNGEncoder.encode(rgb: [0, 0, 0], width: 1, height: 1), "\(root)/clip5/0009.png")
        let clips = try ClipFolderDataset(root: root, size: 16)
        XCTAssertEqual(clips.count, 6)
        XCTAssertEqual(clips.framesPerClip, 5, "the shortest clip's frame count; the extra frame is dropped")
        XCTAssertEqual(clips.clipNames, (0..<6).map { "clip\($0)" })
        XCTAssertEqual(clips.frames.count, 30)
        var a = [Float](repeating: 0, count: 3 * 16 * 16), b = a
        a.withUnsafeMutableBufferPointer { clips.copyPixels(ofClip: 2, frame: 1, into: $0) }
        b.withUnsafeMutableBufferPointer { clips.frames.copyPixels(of: 2 * 5 + 1, into: $0) }
        XCTAssertEqual(a, b)

        let losses = try trainFramePairStage(on: clips)
        XCTAssertLessThan(losses.last!, losses.first!, "frame pairs of a pan are learnable: \(losses)")
    }

    /// Trains a small conv stage on frame pairs of `clips`; its epoch losses (all finite).
    func trainFramePairStage(on clips: ClipFolderDataset) throws -> [Float] {
        let normalization = ChannelNormalization.fit(clips.frames)
        var g = SeededGenerator(seed: 11)
        let stage = Stage(
            layers: [
                try Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 4, using: &g), try MaxPool2D(kernelSize: 2),
                ReLU(),
            ],
            objective: ContrastiveObjective(
                sampler: try FramePairSampler(clips: clips, normalization: normalization),
                loss: InfoNCELoss(temperature: 0.2)),
            optimizer: Adam(learningRate: 3e-3), schedule: ConstantSchedule(3e-3), batchSize: 32,
            budget: .epochs(4, stepsPerEpoch: 10))
        let trainer = try LayerwiseTrainer(stages: [stage], inputChannels: 3, firstPatchSize: 5, seed: 3)
        let losses = try XCTUnwrap(try trainer.pretrain().stages.first?.epochLosses)
        XCTAssertEqual(losses.count, 4)
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        return losses
    }

    /// A real clip: a camera pan across real photos (the embedded CIFAR-10 sample, upscaled 3x),
    /// encoded to H.264 and cut back into frames with `ffmpeg -i clip.mp4 -vf fps=4
    /// clip/%04d.png` when ffmpeg is installed (else the pan frames themselves are the clip).
    func testAPanAcrossRealImagesThroughFFmpegTrainsAFramePairStage() throws {
        let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/ReproducePaper/Resources/cifar10_sample").path
        let photos = try CIFAR.loadCIFAR10(directory: sample, split: .train)
        let root = try ImageFixtures.folder(), frames = "\(root)/frames", clips = "\(root)/clips"
        for clip in 0..<4 {
            let bytes = Array(photos.bytes(of: clip))  // 3 × 32 × 32 planes
            for f in 0..<8 {  // a 48x48 window moving 4 px right per frame over the 96x96 upscale
                var rgb: [UInt8] = []
                for y in 0..<48 {
                    for x in 0..<48 {
                        let (sy, sx) = ((y + 20) / 3, (x + 4 * f) / 3)
                        for c in 0..<3 { rgb.append(bytes[c * 1024 + sy * 32 + sx]) }
                    }
                }
                let png = try PNGEncoder.encode(rgb: rgb, width: 48, height: 48)
                try ImageFixtures.write(png, "\(frames)/clip\(clip)/\(String(format: "%04d", f + 1)).png")
            }
            if let ffmpeg = Self.executable("ffmpeg") {
                let video = "\(root)/clip\(clip).mp4"
                try FileManager.default.createDirectory(
                    atPath: "\(clips)/clip\(clip)", withIntermediateDirectories: true)
                try Self.run(
                    ffmpeg,
                    [
                        "-loglevel", "error", "-framerate", "8", "-i", "\(frames)/clip\(clip)/%04d.png",
                        "-pix_fmt", "yuv420p", video,
                    ])
                try Self.run(
                    ffmpeg, ["-loglevel", "error", "-i", video, "-vf", "fps=4", "\(clips)/clip\(clip)/%04d.png"])
            }
        }
        let dataset = try ClipFolderDataset(root: Self.executable("ffmpeg") == nil ? frames : clips, size: 24)
        XCTAssertEqual(dataset.count, 4)
        // 8 frames at 8 fps resampled to 4 fps: about 4 frames per clip; without ffmpeg, all 8.
        XCTAssertTrue(
            Self.executable("ffmpeg") == nil ? dataset.framesPerClip == 8 : (3...5).contains(dataset.framesPerClip))
        let losses = try trainFramePairStage(on: dataset)
        XCTAssertLessThan(losses.last!, losses.first!, "\(losses)")
    }

    static func executable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(executable) \(arguments.joined(separator: " "))")
    }

    func testClipFolderErrors() throws {
        let root = try ImageFixtures.folder()
        try ImageFixtures.write(try PNGEncoder.encode(rgb: [1, 2, 3], width: 1, height: 1), "\(root)/flat.png")
        XCTAssertThrowsError(try ClipFolderDataset(root: root)) { error in
            guard case .inconsistentClips(let path, _) = error as? ImageFolderError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, root)
        }
        let clipsRoot = try ImageFixtures.folder()
        try writePanClips(root: clipsRoot, clips: 2, frames: 1)
        XCTAssertThrowsError(try ClipFolderDataset(root: clipsRoot)) {
            guard case .invalidOption(name: "framesPerClip", _, _) = $0 as? ImageFolderError else {
                return XCTFail("\($0)")
            }
        }
    }

    func testNPYClipsAreReadChannelsLast() throws {
        let path = try ImageFixtures.folder() + "/clips.npy"
        let (n, t, h, w, c) = (2, 3, 4, 5, 3)
        let payload = (0..<(n * t * h * w * c)).map { UInt8($0 % 251) }
        try ImageFixtures.write(NPY.encode(descr: "|u1", shape: [n, t, h, w, c], payload: payload), path)
        let clips = try NPY.loadClips(path: path)
        XCTAssertEqual(clips.count, 2)
        XCTAssertEqual(clips.framesPerClip, 3)
        XCTAssertEqual(clips.frameShape, ImageShape(channels: 3, height: 4, width: 5))
        var frame = [Float](repeating: 0, count: c * h * w)
        frame.withUnsafeMutableBufferPointer { clips.copyPixels(ofClip: 1, frame: 2, into: $0) }
        let (y, x, ch) = (3, 1, 2)
        let expected = payload[(((1 * t + 2) * h + y) * w + x) * c + ch]
        XCTAssertEqual(frame[ch * h * w + y * w + x], Float(expected) / 255)
        try ImageFixtures.write(
            NPY.encode(descr: "|u1", shape: [2, 4, 5, 3], payload: [UInt8](repeating: 0, count: 120)), path)
        XCTAssertThrowsError(try NPY.loadClips(path: path)) { error in
            XCTAssertTrue("\(error)".contains("5-D"), "\(error)")
        }
        try ImageFixtures.write(NPY.encode(descr: "|u1", shape: [2, 3, 4, 5, 3], payload: [1, 2, 3]), path)
        XCTAssertThrowsError(try NPY.loadClips(path: path))
    }
}
