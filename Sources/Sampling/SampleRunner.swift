import Foundation
import Autograd
import Diffusion
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
    /// The sampler of a diffusion checkpoint (at `solver.steps` steps); unused for flows.
    public var sampler: DiffusionSamplerKind
    /// Whether the user named the solver or the sampler (a flag): naming the one the checkpoint
    /// does not use is an error rather than ignored.
    public var solverNamed = false, samplerNamed = false
    public var guidance: Float
    public var seed: UInt64
    public var perPrompt: Int
    public var columns: Int? = nil
    public var output: String
    /// Frames of a latent interpolation strip (0 = a grid instead).
    public var interpolate = 0
    public var allowUnknown = false
    /// A refiner pass over the grid's images (not for interpolation strips).
    public var refiner: Refiner? = nil
    public init(checkpoint: String, prompts: [String], output: String, solver: SolverSettings, sampler: DiffusionSamplerKind,
                guidance: Float, seed: UInt64, perPrompt: Int) {
        self.checkpoint = checkpoint; self.prompts = prompts; self.output = output
        self.solver = solver; self.sampler = sampler; self.guidance = guidance; self.seed = seed; self.perPrompt = perPrompt
    }
}

/// Samples a grid (or an interpolation strip) from any checkpoint; returns NFE and seconds.
@discardableResult
public func runSample(_ r: SampleRequest) throws -> (nfe: Int, seconds: Double) {
    let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: r.checkpoint))
    try checkSamplingFlags(metadata: meta, checkpoint: r.checkpoint, solverNamed: r.solverNamed, samplerNamed: r.samplerNamed)
    let method = try SampleMethod.forCheckpoint(metadata: meta, source: r.checkpoint, solver: r.solver, sampler: r.sampler)
    if !r.allowUnknown { try checkPromptWords(r.prompts, tokenizer: model.tokenizer) }
    if r.interpolate == 0 {
        let g = try sampleGrid(model, prompts: r.prompts, perPrompt: r.perPrompt, seed: r.seed, method: method,
                               guidance: r.guidance, columns: r.columns, refiner: r.refiner)
        try g.image.write(to: r.output)
        return (g.nfe, g.seconds)
    }
    guard r.prompts.count == 1 else { throw ModelError("--interpolate takes exactly one prompt, got \(r.prompts.count)") }
    guard r.refiner == nil else { throw ModelError("--refine applies to grids, not to --interpolate strips") }
    let ab = itemNoise(seed: r.seed, first: 0, count: 2, itemShape: model.spec.itemShape)
    let x0 = try slerpFrames(ab.slice(axis: 0, range: 0..<1), ab.slice(axis: 0, range: 1..<2), frames: r.interpolate)
    let prompts = [String](repeating: r.prompts[0], count: r.interpolate)
    let start = Date()
    let (images, nfe) = try generate(model, x0: x0, prompts: prompts, method: method, guidance: r.guidance)
    let secs = Date().timeIntervalSince(start)
    try writeSampleImage(path: r.output, images: images, columns: r.columns ?? r.interpolate)
    return (nfe, secs)
}

/// `perPrompt` samples of each prompt (item i's noise from (seed, i)) as one picture: the grid
/// `reflow-sample` writes and `reflow serve` sends. `seconds` times the solve alone. `interrupt`
/// runs before each network evaluation of an ODE solve (a server's time limit). A `refiner`
/// pass, if any, runs on the images before the grid is drawn (its time and NFE included).
public func sampleGrid(_ model: FlowModel, prompts: [String], perPrompt: Int, seed: UInt64, method: SampleMethod,
                       guidance: Float, columns: Int?, interrupt: (() throws -> Void)? = nil, refiner: Refiner? = nil)
    throws -> (image: PNGImage, nfe: Int, seconds: Double) {
    let all = prompts.flatMap { [String](repeating: $0, count: perPrompt) }
    let x0 = itemNoise(seed: seed, first: 0, count: all.count, itemShape: model.spec.itemShape)
    let start = Date()
    var (images, nfe): (Tensor, Int)
    if case .ode(let solver) = method {
        (images, nfe) = try generate(model, x0: x0, prompts: all, solver: solver, guidance: guidance, interrupt: interrupt)
    } else {
        (images, nfe) = try generate(model, x0: x0, prompts: all, method: method, guidance: guidance)
    }
    if let refiner {
        let (refined, more) = try refiner.refine(images, prompts: all, seed: seed)
        (images, nfe) = (refined, nfe + more)
    }
    let secs = Date().timeIntervalSince(start)
    let cols = columns ?? (perPrompt > 1 ? perPrompt : min(all.count, 10))
    return (try sampleImage(images: images, columns: cols), nfe, secs)
}

/// The same for a rectified flow solved with `solver`.
public func sampleGrid(_ model: FlowModel, prompts: [String], perPrompt: Int, seed: UInt64, solver: SolverSettings,
                       guidance: Float, columns: Int?, interrupt: (() throws -> Void)? = nil)
    throws -> (image: PNGImage, nfe: Int, seconds: Double) {
    try sampleGrid(model, prompts: prompts, perPrompt: perPrompt, seed: seed, method: .ode(solver.makeSolver()),
                   guidance: guidance, columns: columns, interrupt: interrupt)
}

/// Solves a 2-D model's ODE for `perPrompt` items of each prompt and writes the trajectory plot.
@discardableResult
public func writeTrajectories(checkpoint: String, prompts: [String], perPrompt: Int, steps: Int, guidance: Float,
                              seed: UInt64, output: String) throws -> Double {
    let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: checkpoint))
    if let d = try DiffusionTeacher(metadata: meta, source: checkpoint) {
        throw ModelError("--trajectories plots a rectified flow's Euler paths; \(checkpoint) is a diffusion teacher (\(d.name)): sample it as a grid with --sampler")
    }
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

/// Refuses a solver named for a diffusion checkpoint, or a sampler named for a flow: the one
/// the checkpoint does not use would otherwise be ignored without a word.
public func checkSamplingFlags(metadata: [String: String], checkpoint: String, solverNamed: Bool, samplerNamed: Bool) throws {
    if let d = try DiffusionTeacher(metadata: metadata, source: checkpoint) {
        if solverNamed {
            throw ModelError("\(checkpoint) is a diffusion teacher (\(d.name)): it is sampled with --sampler (\(DiffusionSamplerKind.allCases.map(\.rawValue).joined(separator: ", "))), not an ODE --solver")
        }
    } else if samplerNamed {
        throw ModelError("\(checkpoint) is a rectified flow (its metadata names no diffusion teacher): --sampler is for diffusion teachers; use --solver")
    }
}
