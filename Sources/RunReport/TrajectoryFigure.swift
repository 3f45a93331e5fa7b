import Foundation
import Reporting
import Autograd
import Flow
import Formats
import Generation
import Models
import TensorCore

/// 2-D flows (toy2d): each flow's ODE paths from the same noise, one SVG per flow with axes,
/// ticks and a legend of the prompts, so teacher and 2-RF sit side by side: crossing, curved
/// paths are what reflow straightens. Returns run-relative paths with captions.
func writeTrajectoryFigures(flows: [ReportFlow], prompts: [String], perPrompt: Int, steps: Int, seed: UInt64,
                            runPath: String) throws -> [(path: String, caption: String)] {
    var out: [(String, String)] = []
    let all = prompts.flatMap { [String](repeating: $0, count: perPrompt) }
    let labels = prompts.indices.flatMap { [Int](repeating: $0, count: perPrompt) }
    for f in flows {
        let (model, _) = try FlowModel.load(from: URL(fileURLWithPath: f.checkpoint))
        guard model.spec.itemShape == [2, 1, 1] else {
            throw ModelError("\(f.checkpoint): trajectory figures need 2-D items; this model makes \(model.spec.itemShape)")
        }
        let x0 = itemNoise(seed: seed, first: 0, count: all.count, itemShape: [2, 1, 1])
        model.eval()
        let trajectory: [(t: Float, x: Tensor)] = try noGrad {
            try Euler(steps: steps).solve(guidedVelocity(model, prompts: all, guidance: f.guidance), x0: x0, record: true).trajectory ?? []
        }
        let paths = (0..<all.count).map { i in trajectory.map { (Double($0.x.storage.ptr[2 * i]), Double($0.x.storage.ptr[2 * i + 1])) } }
        let title = "\(f.label)\(f.guidance == 1 ? "" : String(format: " (w = %g)", f.guidance)): \(steps) Euler steps"
        let rel = "report/trajectories_\(fileSlug(f.label)).svg"
        try atomicWrite(trajectorySVG(title: title, paths: paths, labels: labels, names: prompts), to: runPath + "/" + rel)
        out.append((rel, "\(f.label) trajectories"))
    }
    return out
}

/// Paths in the square [-2.4, 2.4]^2: gray start dots (noise), paths and end dots coloured by
/// prompt, ticks on both axes, a legend.
func trajectorySVG(title: String, paths: [[(Double, Double)]], labels: [Int], names: [String], size: Int = 420) -> String {
    let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    let extent = 2.4, left = 60.0, top = 36.0, plot = Double(size) - 90, legend = 190.0
    func px(_ x: Double) -> String { String(format: "%.1f", left + (x + extent) / (2 * extent) * plot) }
    func py(_ y: Double) -> String { String(format: "%.1f", top + (extent - y) / (2 * extent) * plot) }
    var s = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + plot + legend))\" height=\"\(size)\" font-family=\"sans-serif\" font-size=\"12\">",
             "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
             "<text x=\"\(px(0))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(htmlEscaped(title))</text>",
             "<defs><clipPath id=\"plot\"><rect x=\"\(left)\" y=\"\(top)\" width=\"\(plot)\" height=\"\(plot)\"/></clipPath></defs>",
             "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plot)\" height=\"\(plot)\" fill=\"none\" stroke=\"black\"/>"]
    for v in stride(from: -2.0, through: 2.0, by: 1.0) {
        s.append("<line x1=\"\(px(v))\" y1=\"\(top + plot)\" x2=\"\(px(v))\" y2=\"\(top + plot + 5)\" stroke=\"black\"/><text x=\"\(px(v))\" y=\"\(top + plot + 18)\" text-anchor=\"middle\">\(Int(v))</text>")
        s.append("<line x1=\"\(left - 5)\" y1=\"\(py(v))\" x2=\"\(left)\" y2=\"\(py(v))\" stroke=\"black\"/><text x=\"\(left - 8)\" y=\"\(py(v))\" dy=\"4\" text-anchor=\"end\">\(Int(v))</text>")
    }
    s.append("<text x=\"\(px(0))\" y=\"\(size - 8)\" text-anchor=\"middle\">x₁</text><text x=\"14\" y=\"\(py(0))\" dy=\"4\" text-anchor=\"middle\">x₂</text>")
    s.append("<g clip-path=\"url(#plot)\">")
    for (k, p) in paths.enumerated() where !p.isEmpty {
        let c = colours[(k < labels.count ? labels[k] : 0) % colours.count]
        s.append("<polyline fill=\"none\" stroke=\"\(c)\" stroke-opacity=\"0.45\" points=\"" + p.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ") + "\"/>")
        s.append("<circle cx=\"\(px(p[0].0))\" cy=\"\(py(p[0].1))\" r=\"1.5\" fill=\"#888\"/><circle cx=\"\(px(p.last!.0))\" cy=\"\(py(p.last!.1))\" r=\"2\" fill=\"\(c)\"/>")
    }
    s.append("</g>")
    s.append("<circle cx=\"\(left + plot + 16)\" cy=\"\(top + 10)\" r=\"3\" fill=\"#888\"/><text x=\"\(left + plot + 26)\" y=\"\(top + 14)\">noise (t = 0)</text>")
    for (k, name) in names.enumerated() {
        let y = top + 30 + Double(k) * 18
        s.append("<circle cx=\"\(left + plot + 16)\" cy=\"\(y)\" r=\"4\" fill=\"\(colours[k % colours.count])\"/><text x=\"\(left + plot + 26)\" y=\"\(y + 4)\">\(htmlEscaped(name))</text>")
    }
    return (s + ["</svg>"]).joined(separator: "\n") + "\n"
}
