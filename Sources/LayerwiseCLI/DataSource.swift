import Foundation
import Layerwise
import LayerwiseImages

/// Training or evaluation images named by a path: a CIFAR binary folder, a `.npy` array or
/// a folder of PNG/JPEG images.
public struct LoadedImages {
    public var dataset: InMemoryImageDataset
    /// What was loaded, for messages ("412 images from an image folder, 2 classes").
    public var summary: String
    /// Files skipped as unreadable (image folders with skipping on).
    public var skipped: [(file: String, reason: String)] = []
}

public enum DataSource {
    /// Loads `path`:
    /// - a folder holding `data_batch_1.bin`/`test_batch.bin` (CIFAR-10) or `train.bin`/`test.bin`
    ///   (CIFAR-100), split `split`;
    /// - a `.npy` uint8 array N×H×W×C, with optional labels from `labelsPath`;
    /// - otherwise a folder of images (`root/<class>/<file>` or flat), fitted to `size`×`size`.
    public static func images(
        _ path: String, size: Int, split: CIFARSplit = .train, labelsPath: String? = nil, skipUnreadable: Bool = false
    ) throws -> LoadedImages {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CommandLineError.missingFile(path: path, what: "data")
        }
        if !isDirectory.boolValue {
            guard path.lowercased().hasSuffix(".npy") else {
                throw CommandLineError.unknownData(
                    path: path, reason: "expected a folder (CIFAR binaries or images) or a .npy file")
            }
            let d = try NPY.loadImages(path: path, labelsPath: labelsPath)
            return LoadedImages(dataset: d, summary: "\(d.count) images \(d.imageShape) from \(path)\(classes(d))")
        }
        if labelsPath != nil {
            throw CommandLineError.badOption(
                name: "--labels", value: labelsPath!, reason: "only a .npy --data takes labels")
        }
        let has = { (name: String) in
            FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(name))
        }
        if has("data_batch_1.bin") || has("test_batch.bin") {
            let d = try CIFAR.loadCIFAR10(directory: path, split: split)
            return LoadedImages(dataset: d, summary: "\(d.count) CIFAR-10 \(split.rawValue) images\(classes(d))")
        }
        if has("train.bin") || has("test.bin") {
            let file = (path as NSString).appendingPathComponent(split == .train ? "train.bin" : "test.bin")
            let d = try CIFAR.loadCIFAR100(file: file)
            return LoadedImages(dataset: d, summary: "\(d.count) CIFAR-100 \(split.rawValue) images\(classes(d))")
        }
        let folder = try ImageFolderDataset(
            root: path, options: ImageFolderOptions(size: size, skipUnreadable: skipUnreadable))
        var summary =
            "\(folder.count) images from the image folder \(path), resized to \(size)x\(size)\(classes(folder.images))"
        if !folder.report.skipped.isEmpty { summary += ", \(folder.report.skipped.count) unreadable files skipped" }
        return LoadedImages(dataset: folder.images, summary: summary, skipped: folder.report.skipped)
    }

    static func classes(_ d: InMemoryImageDataset) -> String {
        d.classCount.map { ", \($0) classes" } ?? ", unlabelled"
    }
}

/// Clips for frame-pair positives: a folder of frame folders or a (N, T, H, W, C) `.npy`.
public struct LoadedClips {
    public var clips: any SequenceDataset
    /// Every frame as an image (for fitting the normalisation, whitening and k-means start).
    public var frames: InMemoryImageDataset
    public var summary: String

    public static func load(_ path: String, size: Int) throws -> LoadedClips {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CommandLineError.missingFile(path: path, what: "data")
        }
        if isDirectory.boolValue {
            let d = try ClipFolderDataset(root: path, size: size)
            return LoadedClips(
                clips: d, frames: d.frames,
                summary: "\(d.count) clips of \(d.framesPerClip) frames from \(path), resized to \(size)x\(size)")
        }
        guard path.lowercased().hasSuffix(".npy") else {
            throw CommandLineError.unknownData(
                path: path, reason: "clips must be a folder of frame folders or a .npy file")
        }
        let d = try NPY.loadClips(path: path)
        let s = d.frameShape
        var pixels = [UInt8](repeating: 0, count: d.count * d.framesPerClip * s.elementCount)
        var buffer = [Float](repeating: 0, count: s.elementCount)
        for clip in 0..<d.count {
            for frame in 0..<d.framesPerClip {
                buffer.withUnsafeMutableBufferPointer { d.copyPixels(ofClip: clip, frame: frame, into: $0) }
                let base = (clip * d.framesPerClip + frame) * s.elementCount
                for i in 0..<s.elementCount { pixels[base + i] = UInt8((buffer[i] * 255).rounded()) }
            }
        }
        let frames = try InMemoryImageDataset(pixels: pixels, shape: s)
        return LoadedClips(
            clips: d, frames: frames, summary: "\(d.count) clips of \(d.framesPerClip) frames \(s) from \(path)")
    }
}
