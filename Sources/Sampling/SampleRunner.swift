import Foundation
import Autograd
import Formats
import Generation
import Reporting
import Flow
import Models
import TensorCore

/// One `reflow-sample` job. No defaults here: the tool's flags hold them.
public struct SampleRequest {
    public var checkpoint: String
    public var prompts: [String]
    public var solver: SolverSettings
    public var guidance: Float
    public var seed: UInt64
    public var perPrompt: Int
    public var columns: Int? = nil
    public var output: String
    /// Frames of a latent interpolation strip (0 = a grid instead).
    public var interpolate = 0
    public var allowUnknown = false
    public init(checkpoint: String, prompts: [String], output: String, solver: SolverSettings, guidance: Float,
                seed: UInt64, perPrompt: Int) {
        self.checkpoint = checkpoint; self.prompts = prompts; self.output = output
        self.solver = solver; self.guidance = guidance; self.seed = seed; self.perPrompt = perPrompt
    }
}

/// Samples a grid (or an interpolation strip) from any checkpoint; returns NFE and seconds.
@discardableResult
public func runSample(_ r: SampleRequest) throws -> (nfe: Int, seconds: Double) {
    let (model, _) = try FlowModel.load(from: URL(fileURLWithPath: r.checkpoint))
    if !r.allowUnknown { try checkPromptWords(r.prompts, tokenizer: model.tokenizer) }
    let shape = model.spec.itemShape
    var prompts: [String]
    var x0: Tensor
    if r.interpolate > 0 {
        guard r.prompts.count == 1 else { throw ModelError("--interpolate takes exactly one prompt, got \(r.prompts.count)") }
        let ab = itemNoise(seed: r.seed, first: 0, count: 2, itemShape: shape)
        x0 = try slerpFrames(ab.slice(axis: 0, range: 0..<1), ab.slice(axis: 0, range: 1..<2), frames: r.interpolate)
        prompts = [String](repeating: r.prompts[0], count: r.interpolate)
    } else {
        prompts = r.prompts.flatMap { [String](repeating: $0, count: r.perPrompt) }
        x0 = itemNoise(seed: r.seed, first: 0, count: prompts.count, itemShape: shape)
    }
    let start = Date()
    let solver = r.solver.makeSolver()
    let (images, nfe) = try generate(model, x0: x0, prompts: prompts, solver: solver, guidance: r.guidance)
    let secs = Date().timeIntervalSince(start)
    let cols = r.columns ?? (r.interpolate > 0 ? r.interpolate : (r.perPrompt > 1 ? r.perPrompt : min(prompts.count, 10)))
    try writeSampleImage(path: r.output, images: images, columns: cols)
    return (nfe, secs)
}

/// Solves a 2-D model's ODE for `perPrompt` items of each prompt and writes the trajectory plot.
@discardableResult
public func writeTrajectories(checkpoint: String, prompts: [String], perPrompt: Int, steps: Int, guidance: Float,
                              seed: UInt64, output: String) throws -> Double {
    let (model, _) = try FlowModel.load(from: URL(fileURLWithPath: checkpoint))
    guard model.spec.itemShape == [2, 1, 1] else {
        throw ModelError("--trajectories needs a 2-D (toy2d) model; this one makes items \(model.spec.itemShape)")
    }
    let all = prompts.flatMap { [String](repeating: $0, count: perPrompt) }
    let labels = prompts.indices.flatMap { [Int](repeating: $0, count: perPrompt) }
    let x0 = itemNoise(seed: seed, first: 0, count: all.count, itemShape: [2, 1, 1])
    model.eval()
    let (s, r) = try noGrad {
        try measureStraightness(guidedVelocity(model, prompts: all, guidance: guidance), x0: x0, steps: steps, record: true)
    }
    // One prompt: colour each path by the sector (of 8) where it ends, so crossings show.
    var colours = labels
    if prompts.count == 1 {
        colours = (0..<all.count).map { i in
            let a = Foundation.atan2(r.x.storage.ptr[2 * i + 1], r.x.storage.ptr[2 * i])
            return (Int(((a + .pi) / (2 * .pi) * 8).rounded()) % 8)
        }
    }
    try trajectoryPlot(r.trajectory ?? [], labels: colours).write(to: output)
    return s.value
}
