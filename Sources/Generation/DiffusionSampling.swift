import Foundation
import Autograd
import Diffusion
import Flow
import Models
import TensorCore

/// Samples a diffusion teacher from x_T for the prompts (no gradients), in batches: the network
/// under classifier-free guidance w (on its eps or v output), its time input fed as
/// `DiffusionTeacher.model` maps it, solved by `sampler`. Returns the images and the model
/// evaluations per image (the sampler's NFE; guided rows share one batch).
///
/// The images are clipped to the data range [-1, 1], as diffusers' pixel-space pipelines do when
/// they turn samples into images: the samplers themselves do not clip (parity with diffusers'
/// schedulers), and an eps-model's x0 = (x - sigma eps) / alpha overshoots where eps is off,
/// most under guidance (a 3,000-step digits teacher gave values up to 3.5 at w = 1.5, which a
/// 2-RF trained on them carried further, to 14.7).
public func generateDiffusion(_ model: FlowModel, teacher: DiffusionTeacher, xT: Tensor, prompts: [String],
                              sampler: DiffusionSampler, guidance: Float, batchSize: Int = 256) throws -> (images: Tensor, nfe: Int) {
    try solveInBatches(model, x0: xT, prompts: prompts, guidance: guidance, batchSize: batchSize, op: "generateDiffusion",
                       interrupt: nil) { net, x in
        let r = try sampler.sample(teacher.model(net), xT: x)
        return (clippedToImageRange(r.x), r.nfe)
    }
}

/// How a checkpoint is sampled: its ODE with a solver (rectified flows), or its diffusion
/// sampler (diffusion teachers).
public enum SampleMethod {
    case ode(ODESolver)
    case diffusion(DiffusionTeacher, DiffusionSampler)

    /// The method's label for logs and file attributes.
    public var name: String {
        switch self {
        case .ode(let s): return s.name
        case .diffusion(_, let s): return s.name
        }
    }
}

/// `generate` or `generateDiffusion`, as `method` says.
public func generate(_ model: FlowModel, x0: Tensor, prompts: [String], method: SampleMethod, guidance: Float,
                     batchSize: Int = 256) throws -> (images: Tensor, nfe: Int) {
    switch method {
    case .ode(let solver):
        return try generate(model, x0: x0, prompts: prompts, solver: solver, guidance: guidance, batchSize: batchSize)
    case .diffusion(let teacher, let sampler):
        return try generateDiffusion(model, teacher: teacher, xT: x0, prompts: prompts, sampler: sampler,
                                     guidance: guidance, batchSize: batchSize)
    }
}

extension SampleMethod {
    /// How a checkpoint is sampled: a diffusion teacher (its metadata says so) with `sampler` at
    /// `solver.steps` model evaluations, anything else with the ODE solver `solver`.
    public static func forCheckpoint(metadata: [String: String], source: String, solver: SolverSettings,
                                     sampler: DiffusionSamplerKind) throws -> SampleMethod {
        if let teacher = try DiffusionTeacher(metadata: metadata, source: source) {
            return .diffusion(teacher, try sampler.make(for: teacher, steps: solver.steps))
        }
        return .ode(solver.makeSolver())
    }

    public var isDiffusion: Bool { if case .diffusion = self { return true } else { return false } }
}

/// x clipped to [-1, 1] elementwise (a fresh tensor, no graph).
func clippedToImageRange(_ x: Tensor) -> Tensor {
    let out = Storage(uninitializedCount: x.count)
    let src = x.storage.ptr
    for i in 0..<x.count { out.ptr[i] = min(1, max(-1, src[i])) }
    return Tensor(shape: x.shape, storage: out)
}
