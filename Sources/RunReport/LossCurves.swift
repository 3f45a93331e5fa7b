import Foundation
import Formats
import Reporting

/// Training losses by stage from `metrics.jsonl` lines (`{"step", "stage", "loss", ...}`), in
/// the order the stages first appear. A resumed stage logs its steps again after the kill point
/// (the Trainer truncates what came after its checkpoint), so a later line for a step replaces
/// an earlier one.
public func lossSeries(_ rows: [[String: Any]]) -> [(stage: String, points: [(x: Double, y: Double)])] {
    var order: [String] = []
    var byStage: [String: [Int: Double]] = [:]
    for row in rows {
        guard let stage = row["stage"] as? String, let step = row["step"] as? Int,
              let loss = (row["loss"] as? NSNumber)?.doubleValue else { continue }
        if byStage[stage] == nil { order.append(stage); byStage[stage] = [:] }
        byStage[stage]![step] = loss
    }
    return order.map { s in (s, byStage[s]!.sorted { $0.key < $1.key }.map { (Double($0.key), $0.value) }) }
}

/// One SVG per stage (losses differ by orders of magnitude between stages): `report/loss_<stage>.svg`.
/// Returns (stage, run-relative path).
func writeLossCurves(metricsPath: String, runPath: String) throws -> [(stage: String, path: String)] {
    guard FileManager.default.fileExists(atPath: metricsPath) else { return [] }
    var out: [(String, String)] = []
    for (stage, points) in lossSeries(try MetricsLog.read(path: metricsPath)) where !points.isEmpty {
        let rel = "report/loss_\(fileSlug(stage)).svg"
        let svg = linePlotSVG(title: "\(stage): training loss", xLabel: "step", yLabel: "loss (mean over the logging interval)",
                              series: [PlotSeries(name: stage, points: points)])
        try atomicWrite(svg, to: runPath + "/" + rel)
        out.append((stage, rel))
    }
    return out
}
