import Foundation
import XCTest
import TestSupport

/// The ControlNet flags' usage errors, as a person sees them from the built tools (exit 64 and
/// `error: ...` first on stderr).
final class ControlToolTests: XCTestCase {
    func run(_ name: String, _ args: [String]) throws -> (status: Int32, firstError: String) {
        guard let exe = builtTool(name) else { throw XCTSkip("\(name) not built next to the tests") }
        let dir = try makeTempDir("control-tools")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.currentDirectoryURL = dir
        let err = dir.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: err.path, contents: nil)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        p.waitUntilExit()
        let text = try String(contentsOf: err, encoding: .utf8)
        return (p.terminationStatus, String(text.split(separator: "\n").first ?? ""))
    }

    func testUsageErrors() throws {
        var r = try run("reflow-sample", ["t.safetensors", "--prompt", "a", "--controlnet", "c.safetensors"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstError, "error: --controlnet and --control go together: a ControlNet and the control image it follows")
        r = try run("reflow-sample", ["t.safetensors", "--prompt", "a", "--controlnet", "c.safetensors", "--control", "e.png", "--interpolate", "4"])
        XCTAssertEqual(r.firstError, "error: --controlnet draws a grid: drop --interpolate, --trajectories and --refine")
        r = try run("reflow-eval", ["--config", "x.yaml", "--checkpoint", "t.safetensors", "--control", "dataset"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.firstError, "error: --control and --control-grid need --controlnet")
        r = try run("reflow-eval", ["--config", "x.yaml", "--checkpoint", "t.safetensors", "--controlnet", "c.safetensors", "--control", "e.png"])
        XCTAssertEqual(r.firstError, "error: --control e.png: reflow-eval takes its controls from the dataset (--control dataset); a single image is for reflow-sample")
    }
}
