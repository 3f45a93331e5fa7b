import Foundation
import Autograd
import Diffusion
import Flow
import Models
import TensorCore

/// The refiner pass (InstaFlow's one-step output through SDXL-Refiner, at our scale): a
/// one-step image is re-noised to flow time t, x_t = t x + (1 - t) z with fresh noise z, and a
/// multi-step flow (the teacher or the 2-RF) solves the rest, t -> 1, in K Euler steps. Cost: K
/// network evaluations (twice that under guidance) on top of the one step.
public struct RefineSettings: Equatable, Sendable, CustomStringConvertible {
    /// Flow time to re-noise to, in (0, 1): near 1 keeps the image, near 0 redraws it.
    public let t: Float
    /// Euler steps from t to 1.
    public let steps: Int

    public init(t: Float, steps: Int) throws {
        guard t > 0, t < 1 else { throw ModelError("refine: t must be in (0, 1) (0 = noise, 1 = data), got \(t)") }
        guard steps >= 1 else { throw ModelError("refine: K (Euler steps from t to 1) must be at least 1, got \(steps)") }
        self.t = t; self.steps = steps
    }

    /// "t:K", e.g. "0.7:4".
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let t = Float(parts[0]), let k = Int(parts[1]) else {
            throw ModelError("refine '\(text)': expected t:K, a flow time in (0, 1) and a step count, e.g. 0.7:4")
        }
        try self.init(t: t, steps: k)
    }

    public var description: String { "refine t=\(t) K=\(steps)" }
}

/// A flow that refines, with its settings and guidance.
public struct Refiner {
    public let model: FlowModel
    public let path: String
    public let settings: RefineSettings
    public let guidance: Float

    /// Loads `path`; a diffusion teacher is refused (its re-noising would follow its VP schedule,
    /// not the flow's straight line: not implemented).
    public init(path: String, settings: RefineSettings, guidance: Float) throws {
        let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: path))
        if let d = try DiffusionTeacher(metadata: meta, source: path) {
            throw ModelError("refiner \(path) is a diffusion teacher (\(d.name)); refine with a rectified flow (a flow teacher or the 2-RF)")
        }
        guard guidance >= 0, guidance.isFinite else { throw ModelError("refiner guidance must be a finite weight >= 0, got \(guidance)") }
        self.model = model; self.path = path; self.settings = settings; self.guidance = guidance
    }

    /// Seeds of the re-noising noise are the sampling seed plus this salt, so z never equals
    /// the noise the image came from.
    public static let noiseSalt: UInt64 = 0x5EF1_4E00

    /// Refines `images` (item i re-noised with noise (seed + salt, noiseOffset + i)); returns the
    /// refined images and the refiner's NFE.
    public func refine(_ images: Tensor, prompts: [String], seed: UInt64, noiseOffset: Int = 0,
                       batchSize: Int = 256) throws -> (images: Tensor, nfe: Int) {
        let shape = Array(images.shape.dropFirst())
        guard shape == model.spec.itemShape else {
            throw ModelError("refiner \(path) makes items of shape \(model.spec.itemShape), the images to refine are \(shape)")
        }
        let z = itemNoise(seed: seed &+ Refiner.noiseSalt, first: noiseOffset, count: images.shape[0], itemShape: shape)
        let t = settings.t
        let xt = try noGrad { try images * t + z * (1 - t) }
        return try solveInBatches(model, x0: xt, prompts: prompts, guidance: guidance, batchSize: batchSize, op: "refine",
                                  interrupt: nil) { v, x in
            let r = try Euler(steps: settings.steps).solve(v, x0: x, from: t, to: 1)
            return (r.x, r.nfe)
        }
    }
}
