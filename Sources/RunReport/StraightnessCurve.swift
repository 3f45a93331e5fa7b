import Foundation
import Autograd
import Flow
import Formats
import Generation
import Models
import Reporting
import TensorCore

/// Where along t a flow bends: for each Euler step k of a recorded trajectory, the mean over
/// items and dimensions of ((x_end - x_start) - (x_{k+1} - x_k) / dt)^2, i.e. how far the
/// step's velocity is from the straight line's. Its integral over t is the straightness S
/// (per dimension); a straight flow is 0 everywhere.
public func straightnessProfile(_ trajectory: [(t: Float, x: Tensor)]) -> [(x: Double, y: Double)] {
    guard trajectory.count >= 2 else { return [] }
    let start = trajectory.first!.x.storage.ptr, end = trajectory.last!.x.storage.ptr
    let count = trajectory.first!.x.count
    var out: [(Double, Double)] = []
    for k in 0..<(trajectory.count - 1) {
        let a = trajectory[k], b = trajectory[k + 1]
        let dt = Double(b.t - a.t)
        guard dt > 0 else { continue }
        let pa = a.x.storage.ptr, pb = b.x.storage.ptr
        var sum = 0.0
        for j in 0..<count {
            let d = Double(end[j] - start[j]) - Double(pb[j] - pa[j]) / dt
            sum += d * d
        }
        out.append((Double(a.t), sum / Double(count)))
    }
    return out
}

/// `report/straightness.svg`: the profile of each flow on the same noise and prompts, solved
/// with `steps` Euler steps under the flow's guidance. Returns the run-relative path and the
/// mean of each profile (the straightness S per dimension at that step count).
func writeStraightnessCurves(flows: [ReportFlow], prompts: [String], samples: Int, steps: Int, seed: UInt64,
                             runPath: String) throws -> (path: String, means: [(label: String, value: Double)])? {
    guard !flows.isEmpty, !prompts.isEmpty, samples >= 1, steps >= 2 else { return nil }
    let all = (0..<samples).map { prompts[$0 % prompts.count] }
    var series: [PlotSeries] = []
    var means: [(String, Double)] = []
    for f in flows {
        let (model, _) = try FlowModel.load(from: URL(fileURLWithPath: f.checkpoint))
        let x0 = itemNoise(seed: seed, first: 0, count: samples, itemShape: model.spec.itemShape)
        model.eval()
        let trajectory: [(t: Float, x: Tensor)] = try noGrad {
            try Euler(steps: steps).solve(guidedVelocity(model, prompts: all, guidance: f.guidance), x0: x0,
                                          record: true).trajectory ?? []
        }
        let profile = straightnessProfile(trajectory)
        let name = f.guidance == 1 ? f.label : String(format: "%@ (w = %g)", f.label, f.guidance)
        series.append(PlotSeries(name: name, points: profile))
        means.append((name, profile.map(\.y).reduce(0, +) / Double(max(profile.count, 1))))
    }
    let rel = "report/straightness.svg"
    let svg = linePlotSVG(title: "Straightness along t (\(steps) Euler steps, \(samples) samples)", xLabel: "t (0 = noise)",
                          yLabel: "mean ((x1 - x0) - v)^2 per dimension", series: series)
    try atomicWrite(svg, to: runPath + "/" + rel)
    return (rel, means)
}
