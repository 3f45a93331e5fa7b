import Foundation
import Flow

/// The samplers a diffusion teacher is solved with (a setting separate from the ODE solver of
/// rectified flows). The raw values are the config's `pairs.sampler` / `sample.sampler` /
/// `eval.sampler` and the tools' `--sampler`.
public enum DiffusionSamplerKind: String, CaseIterable, Sendable {
    /// DDIM, eta = 0, Stable Diffusion's scheduler settings (leading spacing, offset 1).
    case ddim
    /// DPM-Solver++(2M) as diffusers' `DPMSolverMultistepScheduler` (linspace spacing).
    case dpmSolverPP = "dpmsolver++"

    public init(name: String) throws {
        guard let k = DiffusionSamplerKind(rawValue: name) else {
            throw DiffusionError("unknown diffusion sampler '\(name)'; valid: \(DiffusionSamplerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = k
    }

    /// The sampler for `teacher` with `steps` model evaluations.
    public func make(for teacher: DiffusionTeacher, steps: Int) throws -> DiffusionSampler {
        do {
            switch self {
            case .ddim: return try DDIM.stableDiffusion(schedule: teacher.schedule, steps: steps, prediction: teacher.prediction)
            case .dpmSolverPP: return try DPMSolverPP.stableDiffusion(schedule: teacher.schedule, steps: steps, prediction: teacher.prediction)
            }
        } catch let e as FlowError {
            throw DiffusionError("\(rawValue) with \(steps) steps: \(e.description)")
        }
    }
}
