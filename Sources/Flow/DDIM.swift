import Foundation
import Autograd
import TensorCore

/// Deterministic DDIM (eta = 0) as diffusers' `DDIMScheduler` runs it: at each timestep s the
/// model output gives x0 and eps, and the state moves to s' = s - T / N (integer division):
///     x_{s'} = alpha_{s'} x0 + sigma_{s'} eps.
/// Below step 0 the final alpha is 1 (`setAlphaToOne`) or alphas_cumprod[0] (SD's choice).
/// No clipping or thresholding of x0 (SD's `clip_sample: false`). NFE = N.
///
/// diffusers always steps back by T / N, whichever spacing produced the timesteps, so with
/// `linspace` spacing the state lands near, not on, the next timestep; that is reproduced.
public struct DDIM: DiffusionSampler {
    public let schedule: VPSchedule
    public let steps: Int
    public let prediction: DiffusionPrediction
    public let spacing: TimestepSpacing
    /// Added to `leading` timesteps (diffusers' `steps_offset`; SD's config has 1).
    public let stepsOffset: Int
    /// Whether the step below 0 has alpha = 1 (clean) or alphas_cumprod[0].
    public let setAlphaToOne: Bool

    public init(schedule: VPSchedule, steps: Int, prediction: DiffusionPrediction, spacing: TimestepSpacing,
                stepsOffset: Int, setAlphaToOne: Bool) throws {
        try checkSamplerSettings("ddim", steps: steps, schedule: schedule)
        guard stepsOffset >= 0, stepsOffset < schedule.trainSteps else {
            throw FlowError(op: "ddim", "stepsOffset must be in 0..<\(schedule.trainSteps), got \(stepsOffset)")
        }
        self.schedule = schedule; self.steps = steps; self.prediction = prediction; self.spacing = spacing
        self.stepsOffset = stepsOffset; self.setAlphaToOne = setAlphaToOne
        if let bad = timesteps.first(where: { $0 < 0 || $0 >= schedule.trainSteps }) {
            throw FlowError(op: "ddim", "\(spacing.rawValue) spacing with offset \(stepsOffset) puts a timestep at \(bad), outside 0..<\(schedule.trainSteps)")
        }
    }

    /// `DDIMScheduler.from_config` of Stable Diffusion 1.5's scheduler config: "leading"
    /// spacing (diffusers' default), steps_offset 1, set_alpha_to_one false.
    public static func stableDiffusion(schedule: VPSchedule, steps: Int, prediction: DiffusionPrediction) throws -> DDIM {
        try DDIM(schedule: schedule, steps: steps, prediction: prediction, spacing: .leading, stepsOffset: 1, setAlphaToOne: false)
    }

    public var name: String {
        "ddim(\(steps), \(spacing.label(offset: stepsOffset)), \(prediction.rawValue))"
    }

    public var timesteps: [Int] {
        let t = schedule.trainSteps, n = steps
        switch spacing {
        case .leading:
            return (0..<n).reversed().map { $0 * (t / n) + stepsOffset }
        case .linspace:
            return (0..<n).reversed().map { roundEven(numpyLinspace(0, Double(t - 1), n, $0)) }
        case .trailing:
            return numpyArangeDown(Double(t), 0, Double(t) / Double(n)).map { roundEven($0) - 1 }
        }
    }

    /// The step a state lands on from `s`; -1 means alpha = 1 (no noise left).
    func previous(_ s: Int) -> Int {
        let p = s - schedule.trainSteps / steps
        return p >= 0 ? p : (setAlphaToOne ? -1 : 0)
    }

    public func sample(_ model: DiffusionModel, xT: Tensor, record: Bool) throws -> SolveResult {
        let ts = timesteps
        return try diffusionSampleLoop("ddim", model, timesteps: ts, xT: xT, record: record,
                                       recordedStep: { previous(ts[$0]) }) { x, i, out in
            let s = ts[i], p = previous(s)
            let c = PredictionCoefficients(prediction, alpha: schedule.alpha(s), sigma: schedule.sigma(s))
            let (aPrev, sPrev) = p >= 0 ? (schedule.alpha(p), schedule.sigma(p)) : (1.0, 0.0)
            // x_{s'} = aPrev x0 + sPrev eps, both linear in (x, out): one pass over the data.
            return weightedSum([(aPrev * c.x0.x + sPrev * c.eps.x, x), (aPrev * c.x0.m + sPrev * c.eps.m, out)])
        }
    }
}
