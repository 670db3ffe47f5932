import Foundation
import Layerwise
import LayerwiseTestSupport
import XCTest

/// Disk faults and a busy folder while a trainer writes checkpoints: a typed error naming
/// the checkpoint, the previous checkpoints complete (a resume from them ends bit-identical
/// to an uninterrupted run), no partial file under a checkpoint's name.
final class TrainingFaultTests: XCTestCase {
    override func setUp() { BLAS.threadCount = 1 }

    static let steps = 6

    func fixture() -> TwoStageFixture {
        TwoStageFixture(momentum: 0.9, steps: Self.steps, stepsPerEpoch: 3, stage2: false)
    }

    /// The weights of an uninterrupted run.
    lazy var reference: [String: Tensor] = {
        let t = try! fixture().trainer()
        try! t.pretrain()
        return t.stateTensors()
    }()

    func checkpointNames(_ dir: String) -> [String] {
        directoryEntries(dir).filter { $0.hasSuffix(".safetensors") || $0.contains(".tmp-") }
    }

    func name(step: Int) -> String { "layerwise-stage1-step\(String(format: "%09d", step)).safetensors" }

    /// Trains with a checkpoint every step; `fault` runs after checkpoint `faultAfter` is saved
    /// (or the whole run is wrapped by `around`). Returns the error of the failed run.
    func failingRun(
        _ dir: String, faultAfter: Int = 1, fault: @escaping () -> Void = {},
        around: (() throws -> Void) throws -> Void = { try $0() }
    ) throws -> any Error {
        let t = try fixture().trainer()
        t.checkpointDirectory = dir
        t.checkpointEvery = 1
        t.keepCheckpoints = 0
        var saved = 0
        var failure: (any Error)?
        do {
            try around {
                try t.pretrain { event in
                    if case .checkpointSaved = event {
                        saved += 1
                        if saved == faultAfter { fault() }
                    }
                }
            }
        } catch {
            failure = error
        }
        return try XCTUnwrap(failure, "the run should have failed")
    }

    /// The error is a checkpoint error for the checkpoint of `step`, mentioning `why`.
    func assertCheckpointError(
        _ error: any Error, dir: String, step: Int, mentions why: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        guard case let .checkpoint(path, reason)? = error as? TrainerError else {
            return XCTFail("expected TrainerError.checkpoint, got \(error)", file: file, line: line)
        }
        XCTAssertEqual(path, (dir as NSString).appendingPathComponent(name(step: step)), file: file, line: line)
        XCTAssertTrue(reason.contains(why), "\(reason) should mention \(why)", file: file, line: line)
    }

    /// The checkpoints before the fault are all there and a resume from them ends
    /// bit-identical to the uninterrupted run.
    func assertResumable(_ dir: String, checkpoints: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(checkpointNames(dir), (1...checkpoints).map { name(step: $0) }, file: file, line: line)
        let resumed = try TwoStageFixture(seed: 5, momentum: 0.9, steps: Self.steps, stepsPerEpoch: 3, stage2: false)
            .trainer()
        resumed.checkpointDirectory = dir
        var from: Int?
        try resumed.pretrain(resume: true) { if case let .resumed(_, _, step) = $0 { from = step } }
        XCTAssertEqual(from, checkpoints, file: file, line: line)
        let weights = resumed.stateTensors()
        XCTAssertEqual(Set(weights.keys), Set(reference.keys), file: file, line: line)
        for (name, value) in reference {
            XCTAssertTrue(weights[name]!.isBitIdentical(to: value), "\(name) after the resume", file: file, line: line)
        }
    }

    func testInjectedIOErrorsWhileCheckpointing() throws {
        for (op, after) in [(FaultyFileSystemCalls.Operation.write, 2), (.fsync, 4), (.rename, 2)] {
            let dir = try temporaryDirectory("eio\(op.rawValue)")
            let faulty = FaultyFileSystemCalls(failing: op, errno: EIO, after: after)
            let error = try failingRun(
                dir, around: { run in try AtomicFile.$systemCalls.withValue(faulty) { try run() } })
            assertCheckpointError(error, dir: dir, step: 3, mentions: "Input/output error (errno 5)")
            try assertResumable(dir, checkpoints: 2)
        }
    }

    func testFullDiskWhileCheckpointing() throws {
        guard let mount = TemporaryMount.mount(kilobytes: 64) else {
            throw XCTSkip("needs root and permission to mount a tmpfs")
        }
        defer { mount.unmount() }
        let dir = mount.path + "/checkpoints"
        let filler = mount.path + "/filler"
        let error = try failingRun(
            dir,
            fault: {
                // Fill every free block after the first checkpoint.
                let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
                let block = [UInt8](repeating: 0, count: 4096)
                while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
                close(fd)
            })
        assertCheckpointError(error, dir: dir, step: 2, mentions: "No space left on device (errno 28)")
        try FileManager.default.removeItem(atPath: filler)
        try assertResumable(dir, checkpoints: 1)
    }

    func testReadOnlyFolderWhileCheckpointing() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root to mount a read-only bind mount") }
        let dir = try temporaryDirectory()
        var readOnly: TemporaryMount?
        defer { readOnly?.unmount() }
        let error = try failingRun(dir, faultAfter: 2, fault: { readOnly = TemporaryMount.readOnlyBind(dir) })
        guard let mount = readOnly else { throw XCTSkip("cannot mount a read-only bind mount here") }
        assertCheckpointError(error, dir: dir, step: 3, mentions: "Read-only file system (errno 30)")
        mount.unmount()
        try assertResumable(dir, checkpoints: 2)
    }

    func testFolderRemovedWhileTraining() throws {
        let dir = try temporaryDirectory()
        let error = try failingRun(dir, fault: { try? FileManager.default.removeItem(atPath: dir) })
        assertCheckpointError(error, dir: dir, step: 2, mentions: "directory '\(dir)' does not exist")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "the trainer does not recreate a removed folder")
    }

    func testABusyCheckpointFolderIsRefusedBeforeTraining() throws {
        let dir = try temporaryDirectory()
        let other = try DirectoryLock(directory: dir)
        let t = try fixture().trainer()
        t.checkpointDirectory = dir
        var steps = 0
        XCTAssertThrowsError(try t.pretrain { if case .step = $0 { steps += 1 } }) { error in
            XCTAssertEqual(
                error as? DirectoryLockError,
                .inUse(directory: dir, lockFile: dir + "/" + DirectoryLock.fileName, pid: getpid()))
        }
        XCTAssertEqual(steps, 0)
        other.release()
        try t.pretrain()
        // The run released its lock: the folder can be locked again.
        XCTAssertNil(try DirectoryLock(directory: dir).staleOwner)
    }

    func testAStopRequestFromAnotherThreadCheckpointsFirst() throws {
        let dir = try temporaryDirectory()
        let t = try fixture().trainer()
        t.checkpointDirectory = dir
        let request = t.stopRequest
        let started = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            started.wait()
            request.request()
        }
        var saved: [String] = []
        XCTAssertThrowsError(
            try t.pretrain { event in
                // Step 1 waits for the other thread, so the request lands during that step.
                if case let .step(s) = event, s.step == 1 {
                    started.signal()
                    let deadline = Date().addingTimeInterval(10)
                    while !request.isRequested && Date() < deadline { usleep(1000) }
                }
                if case let .checkpointSaved(path) = event { saved.append(path) }
            }
        ) { error in
            XCTAssertEqual(error as? TrainerError, .stopped(stage: 1, step: 1))
        }
        XCTAssertEqual(saved.map { ($0 as NSString).lastPathComponent }, [name(step: 1)], "checkpoint before stopping")
        XCTAssertFalse(request.isRequested, "the request was taken")
    }
}
