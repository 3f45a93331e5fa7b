import Foundation
import XCTest
import TestSupport

/// Every tool answers `--version` alike, with the versions of the formats it writes.
final class ToolVersionTests: XCTestCase {
    func testEveryToolPrintsTheSameVersion() throws {
        let tools = ["reflow", "reflow-train", "reflow-gen-pairs", "reflow-distill", "reflow-eval", "reflow-sample", "reflow-bench"]
        var seen: [String: String] = [:]
        for name in tools {
            guard let exe = builtTool(name) else { throw XCTSkip("\(name) not built next to the tests") }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = ["--version"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "\(name) --version: \(text)")
            seen[name] = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let first = seen["reflow"] ?? ""
        XCTAssertNotNil(first.range(of: #"^\d+\.\d+\.\d+ \(triplet format \d+, training-state format \d+\)$"#, options: .regularExpression), first)
        for (name, v) in seen { XCTAssertEqual(v, first, name) }
    }
}
