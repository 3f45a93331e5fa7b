import Foundation
import Reporting

/// One row: a model at a step count, over seeds.
public struct ChainRow: Codable {
    public var model: String
    public var steps: Int
    public var nfe: Int
    public var guidance: Float
    public var promptAccuracy: [Double] = []
    /// Fréchet distance in the first evaluator's features, the second's, and pixels.
    public var fdFeatures: [Double] = []
    public var fdSecond: [Double] = []
    public var fdPixels: [Double] = []
    /// Improved precision and recall (k = 3) in the first evaluator's features.
    public var precision: [Double] = []
    public var recall: [Double] = []
    public var imagesPerSecond: [Double] = []
    /// Students only: MSE between the student's output and its pair-maker's on fresh noise.
    public var distillError: [Double] = []
    /// Students of the chain: the guidance of the teacher pairs their path started from.
    public var pairsGuidance: Float? = nil

    /// The model name of the floor row (real training images).
    public static let dataLabel = "data (train split)"

    public init(model: String, steps: Int, nfe: Int, guidance: Float) {
        self.model = model; self.steps = steps; self.nfe = nfe; self.guidance = guidance
    }

    /// Adds one seed's scores.
    mutating func add(_ s: SampleScores) {
        if let a = s.accuracy { promptAccuracy.append(a) }
        fdFeatures.append(s.fdFeatures); fdPixels.append(s.fdPixels)
        if let f = s.fdSecond { fdSecond.append(f) }
        precision.append(s.precision); recall.append(s.recall)
        if let r = s.imagesPerSecond { imagesPerSecond.append(r) }
        nfe = s.nfe
    }
}

/// Straightness of a flow over seeds (paper's normalisation and per dimension).
public struct ChainStraightness: Codable {
    public var model: String
    public var steps: Int
    public var guidance: Float
    public var value: [Double] = []
    public var perDimension: [Double] = []
}

public struct ChainTable: Codable {
    public var dataset: String
    public var samples: Int
    public var seeds: [UInt64]
    public var rows: [ChainRow] = []
    public var straightness: [ChainStraightness] = []
    public var grids: [String] = []
    public var configHash: String = ""
    /// Evaluator test accuracy (from its metadata), for reading prompt accuracy.
    public var evaluatorAccuracy: String = ""
    /// The second evaluator's test accuracy; nil when there is none for this dataset.
    public var secondEvaluatorAccuracy: String? = nil
    /// Real training images scored like the samples: the distance no model can beat.
    public var floor: ChainRow? = nil
    /// Solver of the rows (nil: Euler, the chain's; optional so older results.json files decode).
    public var solver: String? = nil

    public func markdown() -> String {
        let second = secondEvaluatorAccuracy != nil
        var l = ["| model | steps | NFE | guidance | prompt acc. | FD (conv3) |" + (second ? " FD (vgg) |" : "")
                 + " FD (pixels) | precision | recall | images/s | distill. error |",
                 "|---|---:|---:|---:|---:|---:|" + (second ? "---:|" : "") + "---:|---:|---:|---:|---:|"]
        for r in (floor.map { [$0] } ?? []) + rows {
            let isData = r.model == ChainRow.dataLabel
            let swept = rows.filter { $0.model == r.model && $0.pairsGuidance != nil }.count > 1
            let name = swept ? "\(r.model) (pairs w=\(fmtW(r.pairsGuidance ?? 1)))" : r.model
            var cells = [name, isData ? "–" : "\(r.steps)", isData ? "–" : "\(r.nfe)", isData ? "–" : fmtW(r.guidance),
                         formatSpread(r.promptAccuracy, digits: 1, percent: true), formatSpread(r.fdFeatures)]
            if second { cells.append(formatSpread(r.fdSecond)) }
            cells += [formatSpread(r.fdPixels), formatSpread(r.precision), formatSpread(r.recall),
                      isData ? "" : formatSpread(r.imagesPerSecond, digits: 0),
                      r.distillError.isEmpty ? "" : formatSpread(r.distillError, digits: 4)]
            l.append("| " + cells.joined(separator: " | ") + " |")
        }
        if !straightness.isEmpty {
            l.append("")
            l.append("| flow | straightness S (Euler path; a diffusion teacher: its DDIM path in flow coordinates) | S per dimension |")
            l.append("|---|---:|---:|")
            for s in straightness {
                l.append("| \(s.model) (\(s.steps) steps, w=\(fmtW(s.guidance))) | \(formatSpread(s.value, digits: 4)) | \(formatSpread(s.perDimension, digits: 5)) |")
            }
        }
        l.append("")
        let evaluators = "FD = Fréchet distance to the \(dataset) test split in the features of the conv3 evaluator"
            + (evaluatorAccuracy.isEmpty ? "" : " (test accuracy \(evaluatorAccuracy))")
            + (secondEvaluatorAccuracy.map { ", of the vgg evaluator" + ($0.isEmpty ? "" : " (test accuracy \($0))") } ?? "")
            + " and in pixels; precision and recall: k-NN manifolds (k = 3) in the conv3 features; prompt accuracy judged by the conv3 evaluator"
        l.append("\(samples) samples per row and seed, seeds \(seeds.map(String.init).joined(separator: ", ")) (mean ± half the range); same noise and prompts in every row. \(solver.map { $0 == "euler" ? "Euler solver" : $0.contains(" ") ? $0 : "\($0) solver" } ?? "Euler solver"); \(evaluators)."
                 + (floor == nil ? "" : " The data row is real training images of the prompts' classes, scored the same way (the floor).")
                 + " Distill. error: MSE between the student's output and the multi-step output of the flow that made its pairs (same solver, steps and guidance) on fresh noise. S = E ∫||(x1 - x0) - dx/dt||² dt (0 = straight).")
        return l.joined(separator: "\n")
    }

    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }
}

private func fmtW(_ w: Float) -> String { w == w.rounded() ? String(format: "%.0f", w) : "\(w)" }

extension ChainTable {
    /// FD against prompt accuracy, as InstaFlow plots FID against CLIP score: the teacher's
    /// curve over guidance weights at its largest step count, each one-step row as a point, and
    /// the data row. One plot per feature space: ("conv3", svg) and, with a second evaluator,
    /// ("vgg", svg). Empty when no row has a prompt accuracy.
    public func curvePlots() -> [(name: String, svg: String)] {
        func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }
        let all = (floor.map { [$0] } ?? []) + rows
        guard all.contains(where: { !$0.promptAccuracy.isEmpty }) else { return [] }
        var spaces: [(String, KeyPath<ChainRow, [Double]>)] = [("conv3", \.fdFeatures)]
        if secondEvaluatorAccuracy != nil { spaces.append(("vgg", \.fdSecond)) }
        return spaces.map { name, fd in
            var series: [PlotSeries] = []
            if let top = rows.filter({ $0.model == "teacher" }).map(\.steps).max() {
                let curve = rows.filter { $0.model == "teacher" && $0.steps == top }.sorted { $0.guidance < $1.guidance }
                series.append(PlotSeries(name: "teacher, \(top) steps (w)",
                                         points: curve.map { (100 * mean($0.promptAccuracy), mean($0[keyPath: fd])) },
                                         labels: curve.map { String(format: "w=%g", $0.guidance) }))
            }
            let students = rows.filter { $0.model == "2-RF + distill" && $0.pairsGuidance != nil }.sorted { $0.pairsGuidance! < $1.pairsGuidance! }
            if students.count > 1 {
                series.append(PlotSeries(name: "2-RF + distill, 1 step (pairs w)",
                                         points: students.map { (100 * mean($0.promptAccuracy), mean($0[keyPath: fd])) },
                                         labels: students.map { String(format: "w=%g", $0.pairsGuidance!) }))
            }
            for r in all where r.steps <= 1 && r.model != "teacher" && !(students.count > 1 && r.model == "2-RF + distill") {
                let label = r.model == ChainRow.dataLabel ? r.model : "\(r.model), 1 step"
                series.append(PlotSeries(name: label, points: [(100 * mean(r.promptAccuracy), mean(r[keyPath: fd]))]))
            }
            return (name, linePlotSVG(title: "\(dataset): FD (\(name) features) vs prompt accuracy, \(samples) samples",
                                      xLabel: "prompt accuracy (%)", yLabel: "FD (\(name))", series: series))
        }
    }
}
