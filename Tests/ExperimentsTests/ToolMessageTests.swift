import Foundation
import XCTest
import TestSupport

/// What a person sees from the built tools: every message is checked by its exact text and exit
/// code (usage errors 64, runtime failures 1, both `error: ...` on stderr).
final class ToolMessageTests: XCTestCase {
    struct Outcome { var status: Int32; var stdout: String; var stderr: String
        var firstErrorLine: String { String(stderr.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") }
    }

    private var dir = ""

    override func setUpWithError() throws {
        dir = tempDir("tool-messages")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Runs a built tool from the repository root (the configs' relative paths) at 80 columns.
    private func run(_ name: String, _ args: [String]) throws -> Outcome {
        guard let exe = builtTool(name) else { throw XCTSkip("\(name) not built next to the tests") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "80"
        p.environment = env
        // Files, not pipes: neither stream can fill up and block the tool.
        let out = dir + "/\(name).out", err = dir + "/\(name).err"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, stdout: try String(contentsOfFile: out, encoding: .utf8),
                       stderr: try String(contentsOfFile: err, encoding: .utf8))
    }

    /// Help paragraphs are single lines in the source, wrapped by ArgumentParser only: at 80
    /// columns every line that continues (same indent, not a list item or flag) was full, i.e.
    /// the next line's first word did not fit after it. A hard newline inside a paragraph
    /// leaves a short line followed by a word that would have fit.
    func testHelpIsWrappedByArgumentParserOnly() throws {
        let commands = [["reflow"], ["reflow", "run"], ["reflow", "table"], ["reflow-train"], ["reflow-gen-pairs"],
                        ["reflow-gen-pairs", "generate"], ["reflow-gen-pairs", "merge"], ["reflow-distill"],
                        ["reflow-eval"], ["reflow-sample"], ["reflow-bench"]]
        for c in commands {
            let r = try run(c[0], Array(c.dropFirst()) + ["--help"])
            XCTAssertEqual(r.status, 0, "\(c) --help: \(r.stderr)")
            let lines = r.stdout.components(separatedBy: "\n")
            for (a, b) in zip(lines, lines.dropFirst()) {
                let indent = { (s: String) in s.prefix { $0 == " " }.count }
                let next = b.drop { $0 == " " }
                guard !a.isEmpty, !next.isEmpty, indent(a) == indent(b), !next.hasPrefix("-"), !a.hasSuffix(":") else { continue }
                let word = next.prefix { $0 != " " }
                XCTAssertGreaterThanOrEqual(a.count + 1 + word.count, 80, "\(c.joined(separator: " ")) --help: a paragraph broken by hand after\n\(a)\n\(b)")
            }
        }
    }

    /// An unknown flag is named, even when --config is missing too (ArgumentParser alone reports
    /// the missing --config first); the usage shows --config as required.
    func testUnknownOptionIsNamedBeforeAMissingConfig() throws {
        let r = try run("reflow-train", ["--bogus"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstErrorLine, "error: Unknown option '--bogus'")
        XCTAssertTrue(r.stderr.contains("\nUsage: reflow-train --config <file.yaml> [--set <key.path=value> ...]"), r.stderr)
        XCTAssertEqual(r.stdout, "")
    }

    func testMissingConfigIsAUsageErrorAndHelpShowsItRequired() throws {
        let r = try run("reflow-distill", ["--resume"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstErrorLine, "error: Missing expected argument '--config <file.yaml>'")
        XCTAssertTrue(r.stderr.contains("\nUsage: reflow-distill --config <file.yaml> [--set"), r.stderr)
    }

    func testHelpConfigNeedsNoConfig() throws {
        let r = try run("reflow-gen-pairs", ["--help-config"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\n  pairs.steps "), r.stdout)
    }

    /// A runtime failure: the same `error:` label, exit 1, no usage.
    func testRuntimeErrorExitsOneWithTheSameLabel() throws {
        let r = try run("reflow-train", ["--config", dir + "/missing.yaml"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "error: \(dir)/missing.yaml: cannot read the config file (The operation could not be completed. The file doesn’t exist.)\n")
    }

    func testATextFileAsCheckpointIsNotASafetensorsFile() throws {
        let notes = dir + "/README.md"
        try "not a checkpoint at all\n".write(toFile: notes, atomically: true, encoding: .utf8)
        let r = try run("reflow-sample", [notes, "--prompt", "left cluster", "--output", dir + "/x.png"])
        XCTAssertEqual(r.status, 1)
        // 7521891404167278446 = the bytes "not a ch" read as a little-endian UInt64.
        XCTAssertEqual(r.stderr, "error: safetensors \(notes): not a safetensors file (a safetensors file starts with an 8-byte header length and a JSON object; this one's first bytes read as a length of 7521891404167278446 in a 24-byte file)\n")
    }

    func testOutputInAMissingFolderNamesTheFolder() throws {
        let out = dir + "/no/such/x.png"
        let r = try run("reflow-sample", [dir + "/any.safetensors", "--prompt", "left cluster", "--output", out])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstErrorLine, "error: --output \(out): the folder \(dir)/no/such does not exist")
    }

    func testOutputMustBePNG() throws {
        let r = try run("reflow-sample", [dir + "/any.safetensors", "--prompt", "left cluster", "--output", dir + "/x.jpg"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstErrorLine, "error: --output must name a .png file (reflow-sample writes PNG), got '\(dir)/x.jpg'")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.jpg"))
    }

    func testDistillWithoutTheTwoRFNamesTheCommandThatMakesIt() throws {
        let r = try run("reflow-distill", ["--config", "experiments/toy2d.yaml", "--set", "output_dir=\(dir)/runs"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "error: student's starting checkpoint \(dir)/runs/toy2d/reflow.safetensors not found; it is a rectified flow trained on pairs: make it with reflow-train --config <config> --stage reflow (after the teacher and its pairs: reflow-train --config <config> --stage teacher, then reflow-gen-pairs --config <config>), or run the whole chain: reflow --config <config>\n")
    }

    /// The run folder (config.yaml, samples/, checkpoints/) of a command that failed before any
    /// work is removed, with the output root it made.
    func testFailedCommandLeavesNoRunFolder() throws {
        let r = try run("reflow-train", ["--config", "experiments/toy2d.yaml", "--stage", "reflow", "--set", "output_dir=\(dir)/runs"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "error: teacher checkpoint \(dir)/runs/toy2d/teacher.safetensors not found; make it with: reflow-train --config <config> --stage teacher, or run the whole chain: reflow --config <config>\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/runs"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir))
    }

    func testEvalSolverErrorListsTheSolvers() throws {
        let r = try run("reflow-eval", ["--config", "experiments/toy2d.yaml", "--checkpoint", "a.safetensors", "--solver", "rk45"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstErrorLine, "error: The value 'rk45' is invalid for '--solver <solver>'. Please provide one of 'euler', 'heun', 'rk4' or 'dopri5'.")
    }

    /// --refine is checked before any model loads: its partner flag and its t:K form.
    func testRefineFlagsAreUsageErrors() throws {
        var r = try run("reflow-sample", ["x.safetensors", "--prompt", "a", "--refine", "0.7:4"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstErrorLine, "error: --refine needs --refiner <flow checkpoint>")
        r = try run("reflow-sample", ["x.safetensors", "--prompt", "a", "--refine", "0.7", "--refiner", "y.safetensors"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstErrorLine, "error: --refine refine '0.7': expected t:K, a flow time in (0, 1) and a step count, e.g. 0.7:4")
        r = try run("reflow-eval", ["--config", "experiments/quickstart.yaml", "--checkpoint", "x.safetensors", "--refiner", "y.safetensors"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstErrorLine, "error: --refiner and --refine-guidance need --refine t:K")
    }
}
