import XCTest
import Experiments
import Formats
import ConfigKit
import Evaluation
import Flow
import Generation
import Reporting
import TestSupport
import Training
import Models
import NN
import TensorCore
import Foundation

/// The repository root, found from this file's path (tests read the committed configs).
let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func tempDir(_ name: String) -> String {
    let p = NSTemporaryDirectory() + "reflow-tests-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: p)
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

/// A tiny toy2d teacher: a few hundred steps of a small MLP.
func tinyToyConfig(output: String, steps: Int = 40) throws -> ExperimentConfig {
    try loadConfig(ExperimentConfig.self, path: repoRoot + "/experiments/toy2d.yaml", overrides: [
        "output_dir=\(output)", "teacher.steps=\(steps)", "teacher.batch_size=64", "teacher.checkpoint_every=10",
        "teacher.sample_every=0", "teacher.log_every=5", "model.hidden=32", "model.depth=2", "text.width=16",
        "text.heads=2", "sample.steps=4", "threads=2",
    ])
}

func weights(_ path: String) throws -> [String: [Float]] {
    let a = try Safetensors.read(URL(fileURLWithPath: path))
    return a.tensors.mapValues { $0.scalars }
}

final class PipelineTests: XCTestCase {
    func testEveryCommittedConfigDecodes() throws {
        let dir = repoRoot + "/experiments"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertTrue(files.contains("digits.yaml") && files.contains("fashion.yaml") && files.contains("glyphs.yaml")
                      && files.contains("toy2d.yaml"), "\(files)")
        for f in files {
            XCTAssertNoThrow(try loadConfig(ExperimentConfig.self, path: "\(dir)/\(f)"), f)
        }
    }

    /// Scoring and reports read a run: they never replace the config it was made with.
    func testReadingCommandsKeepTheRunsConfig() throws {
        let dir = tempDir("keep-config")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cfg = try tinyToyConfig(output: dir)
        let first = try Pipeline(config: cfg)
        let made = try String(contentsOfFile: first.run.configPath, encoding: .utf8)
        var other = cfg
        other.eval.steps = [3]
        _ = try Pipeline(config: other, recordConfig: false)
        XCTAssertEqual(try String(contentsOfFile: first.run.configPath, encoding: .utf8), made)
        _ = try Pipeline(config: other)
        XCTAssertNotEqual(try String(contentsOfFile: first.run.configPath, encoding: .utf8), made)
    }

    func testConfigErrorsNameTheKey() throws {
        let path = repoRoot + "/experiments/digits.yaml"
        XCTAssertThrowsError(try loadConfig(ExperimentConfig.self, path: path, overrides: ["teacher.lerning_rate=1"])) { e in
            XCTAssertTrue("\(e)".contains("unknown key 'teacher.lerning_rate'"), "\(e)")
            XCTAssertTrue("\(e)".contains("did you mean"), "\(e)")
        }
        XCTAssertThrowsError(try loadConfig(ExperimentConfig.self, path: path, overrides: ["teacher.steps=many"])) { e in
            XCTAssertTrue("\(e)".contains("teacher.steps") && "\(e)".contains("expected an integer"), "\(e)")
        }
    }

    func testMissingDatasetFileSaysHowToInstall() throws {
        let out = tempDir("missing")
        let cfg = try loadConfig(ExperimentConfig.self, path: repoRoot + "/experiments/fashion.yaml",
                                 overrides: ["output_dir=\(out)", "dataset.root=/nonexistent/fashion"])
        let p = try Pipeline(config: cfg)
        Log.level = .warning
        XCTAssertThrowsError(try p.trainTeacher(resume: false)) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/fashion/train-images-idx3-ubyte.gz not found"), "\(e)")
            XCTAssertTrue("\(e)".contains("apt-get install dataset-fashion-mnist"), "\(e)")
        }
    }

    func testUnknownPromptWordIsRefusedWithTheWord() throws {
        let tok = Tokenizer(captions: ["the number 7", "a handwritten digit seven"], maxTokens: 8)
        XCTAssertNoThrow(try checkPromptWords(["the number 7"], tokenizer: tok))
        XCTAssertThrowsError(try checkPromptWords(["the number 7", "a purple giraffe"], tokenizer: tok)) { e in
            XCTAssertTrue("\(e)".hasPrefix("prompt 2 \"a purple giraffe\": unknown words 'purple', 'giraffe' not in the model's vocabulary"), "\(e)")
        }
    }

    func testPromptFileWithEmptyLineIsAnError() throws {
        let dir = tempDir("prompts")
        let path = dir + "/p.txt"
        try "the number 7\n\ndigit 3\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try readPromptFile(path)) { e in
            XCTAssertEqual("\(e)", "prompt file \(path): line 2 is empty (write <empty> for the unconditional prompt)")
        }
        try "the number 7\n<empty>\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try readPromptFile(path), ["the number 7", ""])
    }

    /// A run stopped after its step-20 checkpoint (at step 25) and resumed ends with exactly
    /// the weights of an uninterrupted run.
    func testResumeEqualsUninterruptedRun() throws {
        let a = tempDir("resume-a"), b = tempDir("resume-b")
        let pa = try Pipeline(config: tinyToyConfig(output: a))
        Log.level = .warning
        let full = try pa.trainTeacher(resume: false)
        let pb = try Pipeline(config: tinyToyConfig(output: b))
        Log.level = .warning
        _ = try pb.trainTeacher(resume: false, stopAfter: 25)
        XCTAssertFalse(FileManager.default.fileExists(atPath: pb.run.file("teacher.safetensors")))
        let resumed = try Pipeline(config: tinyToyConfig(output: b))
        Log.level = .warning
        let out = try resumed.trainTeacher(resume: true)
        let wa = try weights(full.path), wb = try weights(out.path)
        XCTAssertEqual(wa.keys.sorted(), wb.keys.sorted())
        for k in wa.keys { XCTAssertEqual(wa[k]!, wb[k]!, "tensor \(k) differs after resume") }
        // Metrics: every step logged once, in order, despite the interruption.
        let lines = try String(contentsOfFile: resumed.run.metricsPath, encoding: .utf8).split(separator: "\n")
        let steps = lines.compactMap { l -> Int? in
            (try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any])?["step"] as? Int
        }
        XCTAssertEqual(steps, Array(stride(from: 5, through: 40, by: 5)))
    }

    /// The real thing: SIGKILL the reflow-train process mid-run, then `--resume`.
    func testKillNineThenResume() throws {
        // The test runner lives in the build folder (.build/release/...xctest); so do the tools.
        let main = URL(fileURLWithPath: Bundle.main.bundlePath)
        let here = Bundle(for: PipelineTests.self).bundleURL
        let exe = [main, main.deletingLastPathComponent(), here, here.deletingLastPathComponent()]
            .map { $0.path + "/reflow-train" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let exe else { throw XCTSkip("reflow-train binary not built next to the tests (swift build --build-tests builds it)") }
        let dir = tempDir("kill9")
        let args = ["--config", repoRoot + "/experiments/toy2d.yaml", "--set", "teacher.steps=400", "--set", "teacher.batch_size=64",
                    "--set", "teacher.checkpoint_every=50", "--set", "teacher.sample_every=0", "--set", "model.hidden=32",
                    "--set", "model.depth=2", "--set", "text.width=16", "--set", "text.heads=2", "--set", "sample.steps=4",
                    "--threads", "2"]
        func launch(_ out: String, extra: [String] = []) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args + ["--set", "output_dir=\(out)"] + extra
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        let ref = try launch(dir + "/ref")
        ref.waitUntilExit()
        XCTAssertEqual(ref.terminationStatus, 0)
        let victim = try launch(dir + "/killed")
        let ckpt = dir + "/killed/toy2d/checkpoints/teacher.last.state.safetensors"
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: ckpt) && Date() < deadline && victim.isRunning { usleep(2000) }
        usleep(30_000)  // let it run on past the checkpoint, into the next interval
        guard victim.isRunning else { throw XCTSkip("run finished before it could be killed (machine too fast for 400 steps)") }
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/toy2d/teacher.safetensors"))
        let again = try launch(dir + "/killed", extra: ["--resume"])
        again.waitUntilExit()
        XCTAssertEqual(again.terminationStatus, 0)
        let wa = try weights(dir + "/ref/toy2d/teacher.safetensors"), wb = try weights(dir + "/killed/toy2d/teacher.safetensors")
        for k in wa.keys { XCTAssertEqual(wa[k]!, wb[k]!, "tensor \(k) differs after kill -9 and resume") }
    }
}
