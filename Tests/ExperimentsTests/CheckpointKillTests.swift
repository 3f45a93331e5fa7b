import Foundation
import XCTest
import Experiments
import ConfigKit
import Formats
import Reporting
import TestSupport

/// Files of atomicWrite's temporaries under `dir` (recursively).
func temporaries(under dir: String) -> [String] {
    let e = FileManager.default.enumerator(atPath: dir)
    var out: [String] = []
    while let f = e?.nextObject() as? String { if (f as NSString).lastPathComponent.contains(".tmp-") { out.append(f) } }
    return out
}

/// Kills of the real `reflow-train` during checkpoint saves (checkpoint_every = 1, so a save is
/// under way most of the time): every run resumes to weights bit-identical to an uninterrupted
/// run, and no temporary file remains.
final class CheckpointKillTests: XCTestCase {
    static let steps = 80
    let args = ["--config", repoRoot + "/experiments/toy2d.yaml", "--set", "teacher.steps=\(CheckpointKillTests.steps)",
                "--set", "teacher.batch_size=64", "--set", "teacher.checkpoint_every=1", "--set", "teacher.sample_every=0",
                "--set", "model.hidden=32", "--set", "model.depth=2", "--set", "text.width=16", "--set", "text.heads=2",
                "--set", "sample.steps=4", "--threads", "1"]

    func launch(_ exe: String, _ out: String, resume: Bool, log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args + ["--set", "output_dir=\(out)"] + (resume ? ["--resume"] : [])
        p.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        return p
    }

    func inode(_ path: String) -> UInt64? {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    func testKillDuringSavesResumesBitIdentical() throws {
        guard let exe = builtTool("reflow-train") else { throw XCTSkip("reflow-train not built next to the tests") }
        let kills = ProcessInfo.processInfo.environment["REFLOW_CHECKPOINT_KILLS"].flatMap { Int($0) } ?? 50
        let dir = tempDir("ckpt-kills")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ref = try launch(exe, dir + "/ref", resume: false, log: dir + "/ref.log")
        ref.waitUntilExit()
        XCTAssertEqual(ref.terminationStatus, 0)
        let want = try weights(dir + "/ref/toy2d/teacher.safetensors")

        var rng = SystemRandomNumberGenerator()
        var done = 0, midWrite = 0, between = 0, gentle = 0
        let perRun = 10
        var run = 0
        while done < kills {
            let out = dir + "/run\(run)"
            let state = out + "/toy2d/checkpoints/teacher.last.state.safetensors"
            let export = out + "/toy2d/checkpoints/teacher.last.safetensors"
            for k in 0..<min(perRun, kills - done) {
                let log = dir + "/run\(run)-\(k).log"
                let before = inode(state)
                let p = try launch(exe, out, resume: k > 0, log: log)
                // Wait for one new save to commit (the state file replaced), then kill after a
                // random delay: the kill lands anywhere in the save/train cycle.
                let deadline = Date().addingTimeInterval(30)
                while p.isRunning && Date() < deadline && (inode(state) == nil || inode(state) == before) { usleep(500) }
                usleep(UInt32.random(in: 0...25_000, using: &rng))
                guard p.isRunning else {
                    let why = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                    XCTFail("run \(run) launch \(k) ended (status \(p.terminationStatus)) before it was killed: \(why)")
                    return
                }
                // Mostly SIGKILL; every fourth kill is a SIGTERM or SIGINT, which must leave no temporary.
                let sig = k % 4 == 3 ? (k % 8 == 3 ? SIGTERM : SIGINT) : SIGKILL
                kill(p.processIdentifier, sig)
                p.waitUntilExit()
                XCTAssertEqual(p.terminationReason, .uncaughtSignal)
                let tmps = temporaries(under: out)
                if sig == SIGKILL {
                    if !tmps.isEmpty { midWrite += 1 }
                } else {
                    gentle += 1
                    XCTAssertEqual(tmps, [], "temporaries left after signal \(sig)")
                }
                let s1 = try? Safetensors.readMetadata(URL(fileURLWithPath: state))["step"]
                let s2 = try? Safetensors.readMetadata(URL(fileURLWithPath: export))["step"]
                if s1 != nil && s1 != s2 { between += 1 }
                done += 1
            }
            let last = try launch(exe, out, resume: true, log: dir + "/run\(run)-final.log")
            last.waitUntilExit()
            XCTAssertEqual(last.terminationStatus, 0, (try? String(contentsOfFile: dir + "/run\(run)-final.log", encoding: .utf8)) ?? "")
            let got = try weights(out + "/toy2d/teacher.safetensors")
            XCTAssertEqual(got.keys.sorted(), want.keys.sorted())
            for k in want.keys { XCTAssertEqual(got[k]!, want[k]!, "run \(run): tensor \(k) differs after kills and resumes") }
            XCTAssertEqual(temporaries(under: out), [], "run \(run): temporaries remain")
            run += 1
        }
        print("checkpoint kills: \(done) kills over \(run) runs (\(done - gentle) SIGKILL, \(gentle) SIGTERM/SIGINT); "
              + "\(midWrite) SIGKILLs left a temporary (killed mid-write), \(between) left state and export at different steps; "
              + "every run resumed to bit-identical weights")
        XCTAssertEqual(done, kills)
    }

    /// An lr that overflows the weights on the first update: refused, naming stage and step,
    /// and no checkpoint or model file holds a non-finite value.
    func testOverflowingLearningRateIsRefused() throws {
        let out = tempDir("lr-overflow")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let cfg = try loadConfig(ExperimentConfig.self, path: repoRoot + "/experiments/toy2d.yaml", overrides: [
            "output_dir=\(out)", "teacher.steps=20", "teacher.batch_size=64", "teacher.checkpoint_every=1",
            "teacher.sample_every=0", "model.hidden=32", "model.depth=2", "text.width=16", "text.heads=2", "threads=1",
            "teacher.lr=3e38", "teacher.warmup=0",
        ])
        let p = try Pipeline(config: cfg)
        Log.level = .warning
        assertThrows(["teacher: weights became non-finite at step 1", "nothing was written", "lower lr"]) {
            _ = try p.trainTeacher(resume: false)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.run.file("teacher.safetensors")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.run.checkpointsPath + "/teacher.last.state.safetensors"))
    }
}
