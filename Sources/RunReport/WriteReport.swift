import Foundation
import Evaluation
import Formats
import Reporting

/// What one section of the report holds; rendered both as Markdown and as HTML.
enum ReportBlock {
    case markdown(String)
    /// Figures by run-relative path, with captions.
    case figures([(path: String, caption: String)])
    /// Rows labelled by prompt, one cell image per column.
    case grid(columns: [String], rows: [(label: String, cells: [String])])
    case preformatted(String)
}

/// The files `writeRunReport` wrote.
public struct RunReportFiles {
    public var markdown: String
    public var html: String
}

/// Writes the run report: `results.md` and `report.html` in the run folder, with the results
/// table, the side-by-side figure (same noise and prompts in every column), the loss curve of
/// every stage, the straightness profiles, the FD-vs-accuracy curves, the sample grids, the
/// stage timings and the config. Figures go to `<run>/report/`.
@discardableResult
public func writeRunReport(_ r: RunReportInput) throws -> RunReportFiles {
    let dir = r.runPath + "/report"
    do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
        throw RunFolderError("cannot create \(dir): \(error.localizedDescription)")
    }
    var sections: [(String, [ReportBlock])] = [("Results", [.markdown(r.table.markdown())])]

    let cells = try writeSideBySide(columns: r.columns, prompts: r.prompts, perPrompt: r.imagesPerPrompt, seed: r.seed,
                                    runPath: r.runPath)
    if !cells.isEmpty {
        sections.append(("Side by side", [
            .markdown("The same noise (seed \(r.seed), items 0-\(r.prompts.count * r.imagesPerPrompt - 1)) and prompts in every column; Euler steps."),
            .grid(columns: r.columns.map { "\($0.label), \($0.steps) step\($0.steps == 1 ? "" : "s")\($0.guidance == 1 ? "" : String(format: ", w = %g", $0.guidance))" },
                  rows: zip(r.prompts, cells).map { ($0, $1) }),
        ]))
    }
    let losses = try writeLossCurves(metricsPath: r.metricsPath, runPath: r.runPath)
    if !losses.isEmpty {
        sections.append(("Loss curves", [.figures(losses.map { ($0.path, "\($0.stage) (\(r.metricsPath.split(separator: "/").last ?? "metrics.jsonl"))") })]))
    }
    if let s = try writeStraightnessCurves(flows: r.straightness, prompts: r.prompts, samples: r.straightnessSamples,
                                           steps: r.straightnessSteps, seed: r.seed, runPath: r.runPath) {
        let means = s.means.map { String(format: "%@: %.4f", $0.label, $0.value) }.joined(separator: "; ")
        sections.append(("Straightness", [
            .markdown("Deviation of each step's velocity from the straight line x1 - x0 along the trajectory (0 = straight); its mean over t is S per dimension: \(means)."),
            .figures([(s.path, "straightness along t")]),
        ]))
    }
    let trajectories = !r.pointItems ? [] : try writeTrajectoryFigures(flows: r.straightness, prompts: r.prompts, perPrompt: min(r.imagesPerPrompt, 32),
                                                  steps: r.straightnessSteps, seed: r.seed, runPath: r.runPath)
    if !trajectories.isEmpty { sections.append(("Trajectories", [.figures(trajectories)])) }
    let rel = r.grids.map { relative($0, to: r.runPath) }
    let curves = rel.filter { $0.hasSuffix(".svg") }, grids = rel.filter { !$0.hasSuffix(".svg") }
    if !curves.isEmpty {
        sections.append(("FD against prompt accuracy", [.figures(curves.map { ($0, $0) })]))
    }
    if !grids.isEmpty { sections.append(("Sample grids", [.figures(grids.map { ($0, $0) })])) }
    var timing = "| stage | status | time | output | note |\n|---|---|---:|---|---|\n"
    for s in r.stages {
        timing += "| \(s.name) | \(s.status) | \(s.status == "skipped" ? "–" : Progress.formatDuration(s.seconds)) | \(s.output) | \(s.note) |\n"
    }
    let wall = r.seconds.map { ", \(Progress.formatDuration($0)) wall time" } ?? ""
    sections.append(("Stages (last chain invocation\(wall), \(r.threads) threads)", [.markdown(r.stages.isEmpty ? "No stage timings recorded (stages.json missing)." : timing)]))
    sections.append(("Config", [.preformatted(r.configText)]))

    let files = RunReportFiles(markdown: r.runPath + "/results.md", html: r.runPath + "/report.html")
    try atomicWrite(renderMarkdown(title: r.title, sections), to: files.markdown)
    try atomicWrite(renderHTML(title: r.title, sections), to: files.html)
    return files
}

/// `path` relative to `base` when it lies inside it (so the report's links survive moving the folder).
func relative(_ path: String, to base: String) -> String {
    let b = URL(fileURLWithPath: base).standardizedFileURL.path + "/"
    let p = URL(fileURLWithPath: path).standardizedFileURL.path
    return p.hasPrefix(b) ? String(p.dropFirst(b.count)) : path
}

func renderMarkdown(title: String, _ sections: [(String, [ReportBlock])]) -> String {
    var s = "# \(title)\n\nAlso as a web page: report.html (same folder).\n"
    for (heading, blocks) in sections {
        s += "\n## \(heading)\n\n"
        for b in blocks {
            switch b {
            case .markdown(let m): s += m + "\n\n"
            case .figures(let f): s += f.map { "![\($0.caption)](\($0.path))" }.joined(separator: "\n") + "\n\n"
            case .grid(let columns, let rows):
                s += "| prompt | " + columns.joined(separator: " | ") + " |\n|---|" + String(repeating: "---|", count: columns.count) + "\n"
                for row in rows { s += "| \(row.label) | " + row.cells.map { "![](\($0))" }.joined(separator: " | ") + " |\n" }
                s += "\n"
            case .preformatted(let t): s += "```yaml\n" + t + (t.hasSuffix("\n") ? "" : "\n") + "```\n\n"
            }
        }
    }
    return s
}

func renderHTML(title: String, _ sections: [(String, [ReportBlock])]) -> String {
    var s = "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>\(htmlEscaped(title))</title>\n<style>\n\(pageStyle)</style>\n</head>\n<body>\n<h1>\(htmlEscaped(title))</h1>\n"
    for (heading, blocks) in sections {
        s += "<h2>\(htmlEscaped(heading))</h2>\n"
        for b in blocks {
            switch b {
            case .markdown(let m): s += markdownToHTML(m) + "\n"
            case .figures(let f):
                s += f.map { "<figure><img src=\"\(htmlEscaped($0.path))\" alt=\"\(htmlEscaped($0.caption))\"\($0.path.hasSuffix(".png") ? " class=\"px\"" : " class=\"plot\"")><figcaption>\(htmlEscaped($0.caption))</figcaption></figure>" }
                    .joined(separator: "\n") + "\n"
            case .grid(let columns, let rows):
                s += "<table class=\"sbs\">\n<thead><tr><th>prompt</th>" + columns.map { "<th>\(htmlEscaped($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
                for row in rows {
                    s += "<tr><th>\(htmlEscaped(row.label))</th>" + row.cells.map { "<td><img class=\"px\" src=\"\(htmlEscaped($0))\" alt=\"\(htmlEscaped(row.label))\"></td>" }.joined() + "</tr>\n"
                }
                s += "</tbody>\n</table>\n"
            case .preformatted(let t): s += "<pre>\(htmlEscaped(t))</pre>\n"
            }
        }
    }
    return s + "</body>\n</html>\n"
}
