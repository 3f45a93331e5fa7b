import XCTest
import Experiments
import RunReport
import Foundation

extension XCTestCase {
    /// The chain's report: results.md and report.html with every section, and the figures
    /// they link (side-by-side cells, loss curve per stage, straightness, FD curves) on disk;
    /// `reflow report` on the folder writes the same page again.
    func checkReport(_ r: RunReportFiles, run: String, teacherSteps: Int = 8, flows: [String] = ["teacher", "2-RF"]) throws {
        XCTAssertEqual(r.html, run + "/report.html")
        XCTAssertEqual(r.markdown, run + "/results.md")
        let page = try String(contentsOfFile: r.html, encoding: .utf8)
        let md = try String(contentsOfFile: r.markdown, encoding: .utf8)
        for heading in ["Results", "Side by side", "Loss curves", "Straightness", "FD against prompt accuracy", "Stages", "Config"] {
            XCTAssertTrue(page.contains("<h2>\(heading)"), "report.html lacks \(heading)")
            XCTAssertTrue(md.contains("## \(heading)"), "results.md lacks \(heading)")
        }
        XCTAssertTrue(page.contains("<th>teacher, \(teacherSteps) steps</th><th>teacher, 1 step</th><th>2-RF, 1 step</th><th>2-RF + distill, 1 step</th>"), page)
        for stage in ["teacher", "reflow", "distill", "direct-distill"] {
            XCTAssertTrue(page.contains("src=\"report/loss_\(stage).svg\""), stage)
        }
        var linked = 0
        for text in [page, md] {
            for part in text.components(separatedBy: "src=\"").dropFirst() + text.components(separatedBy: "](").dropFirst() {
                guard let end = part.firstIndex(where: { $0 == "\"" || $0 == ")" }) else { continue }
                let path = String(part[..<end])
                guard path.hasSuffix(".png") || path.hasSuffix(".svg") else { continue }
                XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/" + path), "linked but missing: \(path)")
                linked += 1
            }
        }
        XCTAssertGreaterThan(linked, 20, "side-by-side cells, curves and grids are linked")
        let svg = try String(contentsOfFile: run + "/report/straightness.svg", encoding: .utf8)
        XCTAssertEqual(flows.filter { svg.contains(">\($0)</text>") }, flows, "every flow in the legend")
        if !flows.contains("teacher") { XCTAssertFalse(svg.contains(">teacher</text>")) }
        try FileManager.default.removeItem(atPath: r.html)
        let again = try writeReport(runDirectory: run)
        XCTAssertEqual(try String(contentsOfFile: again.html, encoding: .utf8).replacingOccurrences(of: ", [0-9hms.]+ wall time", with: "", options: .regularExpression),
                       page.replacingOccurrences(of: ", [0-9hms.]+ wall time", with: "", options: .regularExpression))
    }
}
