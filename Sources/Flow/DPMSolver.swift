import Foundation
import Autograd
import TensorCore

/// DPM-Solver++(2M) (Lu et al. 2022, multistep, data prediction), as diffusers'
/// `DPMSolverMultistepScheduler` runs it with algorithm_type "dpmsolver++", solver_order 2,
/// solver_type "midpoint", lower_order_final true, final_sigmas_type "zero", no Karras sigmas,
/// no thresholding. NFE = N.
///
/// Each model output becomes a data prediction D = x0(x, m). With lambda = log(alpha / sigma)
/// and h = lambda_next - lambda_now, a step from (alpha_s, sigma_s) to (alpha_t, sigma_t) is
///     x_t = sigma_t / sigma_s x + alpha_t (1 - e^-h) (D_i + (D_i - D_{i-1}) / (2 r)),
/// r = h_prev / h, the ratio of this step's lambda increment to the previous one's (midpoint
/// form). The first step has no D_{i-1} and uses the first-order update (DDIM in lambda). The
/// last step goes to sigma = 0, where h is infinite: it is first order too, x = D_{N-1}. With
/// solver order 2 that makes `lower_order_final` (which diffusers applies below 15 steps) a
/// no-op, so it is not a setting here.
public struct DPMSolverPP: DiffusionSampler {
    public let schedule: VPSchedule
    public let steps: Int
    public let prediction: DiffusionPrediction
    public let spacing: TimestepSpacing
    /// Added to `leading` timesteps only (diffusers' `steps_offset`).
    public let stepsOffset: Int

    public init(schedule: VPSchedule, steps: Int, prediction: DiffusionPrediction, spacing: TimestepSpacing,
                stepsOffset: Int) throws {
        try checkSamplerSettings("dpm-solver++", steps: steps, schedule: schedule)
        guard stepsOffset >= 0, stepsOffset < schedule.trainSteps else {
            throw FlowError(op: "dpm-solver++", "stepsOffset must be in 0..<\(schedule.trainSteps), got \(stepsOffset)")
        }
        self.schedule = schedule; self.steps = steps; self.prediction = prediction; self.spacing = spacing
        self.stepsOffset = stepsOffset
        let ts = timesteps
        if let bad = ts.first(where: { $0 < 0 || $0 >= schedule.trainSteps }) {
            throw FlowError(op: "dpm-solver++", "\(spacing.rawValue) spacing with offset \(stepsOffset) puts a timestep at \(bad), outside 0..<\(schedule.trainSteps)")
        }
        // A repeated timestep would make h = 0 and the second-order ratio divide by zero.
        guard Set(ts).count == ts.count else {
            throw FlowError(op: "dpm-solver++", "\(steps) steps with \(spacing.rawValue) spacing repeat a timestep (\(ts)); use fewer steps")
        }
    }

    /// `DPMSolverMultistepScheduler.from_config` of Stable Diffusion 1.5's scheduler config:
    /// its timestep_spacing default "linspace" (SD's config names none; its steps_offset 1
    /// only affects "leading").
    public static func stableDiffusion(schedule: VPSchedule, steps: Int, prediction: DiffusionPrediction) throws -> DPMSolverPP {
        try DPMSolverPP(schedule: schedule, steps: steps, prediction: prediction, spacing: .linspace, stepsOffset: 1)
    }

    public var name: String {
        "dpm-solver++(2M, \(steps), \(spacing.label(offset: stepsOffset)), \(prediction.rawValue))"
    }

    public var timesteps: [Int] {
        let t = schedule.trainSteps, n = steps
        switch spacing {
        case .linspace:
            // N + 1 points from 0 to T - 1, the 0 dropped (sigma = 0 takes its place).
            return (1...n).reversed().map { roundEven(numpyLinspace(0, Double(t - 1), n + 1, $0)) }
        case .leading:
            return (1...n).reversed().map { $0 * (t / (n + 1)) + stepsOffset }
        case .trailing:
            return numpyArangeDown(Double(t), 0, Double(t) / Double(n)).map { roundEven($0) - 1 }
        }
    }

    public func sample(_ model: DiffusionModel, xT: Tensor, record: Bool) throws -> SolveResult {
        let ts = timesteps, last = ts.count - 1
        // (alpha, sigma) of each state: the timesteps, then the clean end.
        let levels = ts.map { (schedule.alpha($0), schedule.sigma($0)) } + [(1.0, 0.0)]
        func lambda(_ i: Int) -> Double { log(levels[i].0) - log(levels[i].1) }
        var previousD: Tensor? = nil
        return try diffusionSampleLoop("dpm-solver++", model, timesteps: ts, xT: xT, record: record,
                                       recordedStep: { $0 == last ? -1 : ts[$0 + 1] }) { x, i, out in
            let (alphaS, sigmaS) = levels[i], (alphaT, sigmaT) = levels[i + 1]
            let c = PredictionCoefficients(prediction, alpha: alphaS, sigma: sigmaS)
            let d = weightedSum([(c.x0.x, x), (c.x0.m, out)])
            defer { previousD = d }
            // e^-h = (sigma_t / alpha_t) / (sigma_s / alpha_s): finite (0) at the clean end.
            let decay = (sigmaT * alphaS) / (alphaT * sigmaS)
            let k = alphaT * (1 - decay)
            guard let dPrev = previousD, i != last else {
                return weightedSum([(sigmaT / sigmaS, x), (k, d)])
            }
            let r = (lambda(i) - lambda(i - 1)) / (lambda(i + 1) - lambda(i))
            return weightedSum([(sigmaT / sigmaS, x), (k * (1 + 0.5 / r), d), (-k * 0.5 / r, dPrev)])
        }
    }
}
