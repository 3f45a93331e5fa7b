import Foundation
import Flow

/// The samplers a diffusion teacher is solved with (a setting separate from the ODE solver of
/// rectified flows). The raw values are the config's `pairs.sampler` / `sample.sampler` /
/// `eval.sampler` and the tools' `--sampler`.
public enum DiffusionSamplerKind: String, CaseIterable, Sendable {
    /// DDIM, eta = 0, Stable Diffusion's scheduler settings (leading spacing, offset 1).
    case ddim
    /// DDIM whose last step lands on the clean x0 prediction (diffusers' `set_alpha_to_one=True`)
    /// instead of SD's alphas_cumprod[0], which leaves noise of std sqrt(beta_0) (0.029 on the
    /// scaled-linear schedule) in every image; DPM-Solver++ ends on x0 too ("zero" final sigma).
    case ddimClean = "ddim-clean"
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
            case .ddimClean:
                return try DDIM(schedule: teacher.schedule, steps: steps, prediction: teacher.prediction, spacing: .leading,
                                stepsOffset: 1, setAlphaToOne: true)
            case .dpmSolverPP: return try DPMSolverPP.stableDiffusion(schedule: teacher.schedule, steps: steps, prediction: teacher.prediction)
            }
        } catch let e as FlowError {
            throw DiffusionError("\(rawValue) with \(steps) steps: \(e.description)")
        }
    }
}

/// A diffusion sampler and its step count, stored as one JSON value like `SolverSettings`
/// (a triplet file's `solver` attribute, a student's `pairs_solver` metadata):
///
///     {"name":"dpmsolver++","steps":25}
public struct DiffusionSamplerSettings: Equatable, Sendable {
    public var kind: DiffusionSamplerKind
    public var steps: Int

    public init(kind: DiffusionSamplerKind, steps: Int) { self.kind = kind; self.steps = steps }

    public func make(for teacher: DiffusionTeacher) throws -> DiffusionSampler { try kind.make(for: teacher, steps: steps) }

    public var json: String { "{\"name\":\"\(kind.rawValue)\",\"steps\":\(steps)}" }

    /// Reads `json`; nil when it names no diffusion sampler (an ODE solver's settings), an
    /// error when it names one with a bad step count.
    public init?(json text: String) throws {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let name = obj["name"] as? String, let kind = DiffusionSamplerKind(rawValue: name) else { return nil }
        guard let steps = (obj["steps"] as? NSNumber)?.intValue, steps >= 1 else {
            throw DiffusionError("sampler settings: '\(name)' needs a positive integer 'steps' in '\(text)'")
        }
        self.init(kind: kind, steps: steps)
    }
}
