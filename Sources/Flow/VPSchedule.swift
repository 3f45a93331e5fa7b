import Foundation
import Autograd

/// How the betas of a discrete VP (variance-preserving) diffusion schedule are laid out. The raw
/// values are the names a config uses; `cosine` is what diffusers calls "squaredcos_cap_v2"
/// (that name is accepted too).
public enum BetaSchedule: String, CaseIterable, Codable, Sendable {
    /// Stable Diffusion's: betas = linspace(sqrt(beta_start), sqrt(beta_end), T)^2.
    case scaledLinear = "scaled_linear"
    /// DDPM's: betas = linspace(beta_start, beta_end, T).
    case linear
    /// Nichol & Dhariwal's: alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2 on s = i / T,
    /// beta_i = min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999).
    case cosine

    /// Reads a schedule name (a config value, a checkpoint's metadata); an unknown one is an
    /// error that lists the valid names.
    public init(name: String) throws {
        if let kind = BetaSchedule(rawValue: name) { self = kind; return }
        if name == "squaredcos_cap_v2" { self = .cosine; return }
        let valid = BetaSchedule.allCases.map(\.rawValue) + ["squaredcos_cap_v2 (= cosine)"]
        throw FlowError(op: "noise schedule", "unknown schedule '\(name)'; valid: \(valid.joined(separator: ", "))")
    }
}

/// What an epsilon-/v-prediction network outputs; the raw values are diffusers' `prediction_type`.
public enum DiffusionPrediction: String, CaseIterable, Codable, Sendable {
    /// The noise: x_t = alpha_t x0 + sigma_t eps, the model gives eps (Stable Diffusion 1.x).
    case epsilon
    /// v = alpha_t eps - sigma_t x0 (Salimans & Ho; Stable Diffusion 2.x at 768 px).
    case v = "v_prediction"

    public init(name: String) throws {
        guard let p = DiffusionPrediction(rawValue: name) else {
            throw FlowError(op: "prediction type", "unknown prediction type '\(name)'; valid: \(DiffusionPrediction.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = p
    }
}

/// A discrete VP noise schedule over the diffusion steps 0..<trainSteps: x_s = alpha_s x0 +
/// sigma_s eps with alpha_s = sqrt(alphas_cumprod[s]), sigma_s = sqrt(1 - alphas_cumprod[s]).
/// Step 0 is almost clean data and step T-1 almost pure noise (the opposite direction of flow
/// time; `diffusionStep(flowTime:)` maps between them).
///
/// Everything is kept in Double: diffusers computes the same numbers in float32 (its
/// alphas_cumprod is ~1e-6 relative off the exact value, 1e-5 on the cosine schedule, where
/// rounding the clipped beta 0.999 to float32 moves 1 - beta), so ours is the more accurate of
/// the two and the parity tests allow for that difference.
public struct VPSchedule: Equatable, Sendable {
    public let kind: BetaSchedule
    public let trainSteps: Int
    /// Used by the linear kinds; 0 for `cosine`, which has none (so equal schedules compare equal).
    public let betaStart: Double
    public let betaEnd: Double
    public let betas: [Double]
    /// prod_{i <= s} (1 - beta_i).
    public let alphasCumprod: [Double]

    /// The largest beta the cosine schedule allows (diffusers' `max_beta`): near s = T the
    /// ratio of alpha_bars tends to 0 and an unclipped beta of 1 would erase the signal.
    public static let cosineMaxBeta = 0.999
    /// The cosine schedule's offset s that keeps beta small near step 0.
    public static let cosineOffset = 0.008

    public init(kind: BetaSchedule, trainSteps: Int, betaStart: Double, betaEnd: Double) throws {
        guard trainSteps >= 2 else {
            throw FlowError(op: "noise schedule", "trainSteps must be >= 2, got \(trainSteps)")
        }
        if kind != .cosine {
            guard betaStart > 0, betaEnd < 1, betaStart <= betaEnd else {
                throw FlowError(op: "noise schedule", "\(kind.rawValue) needs 0 < beta_start <= beta_end < 1, got \(betaStart) and \(betaEnd)")
            }
        }
        self.init(checked: kind, trainSteps, betaStart, betaEnd)
    }

    /// The schedule itself, for arguments already checked.
    private init(checked kind: BetaSchedule, _ trainSteps: Int, _ betaStart: Double, _ betaEnd: Double) {
        self.kind = kind; self.trainSteps = trainSteps
        (self.betaStart, self.betaEnd) = kind == .cosine ? (0, 0) : (betaStart, betaEnd)
        let n = trainSteps
        func lerp(_ a: Double, _ b: Double, _ i: Int) -> Double { a + (b - a) * Double(i) / Double(n - 1) }
        switch kind {
        case .scaledLinear:
            let (a, b) = (betaStart.squareRoot(), betaEnd.squareRoot())
            betas = (0..<n).map { let r = lerp(a, b, $0); return r * r }
        case .linear:
            betas = (0..<n).map { lerp(betaStart, betaEnd, $0) }
        case .cosine:
            let s = VPSchedule.cosineOffset
            func alphaBar(_ u: Double) -> Double { let c = cos((u + s) / (1 + s) * Double.pi / 2); return c * c }
            betas = (0..<n).map { i in
                min(1 - alphaBar(Double(i + 1) / Double(n)) / alphaBar(Double(i) / Double(n)), VPSchedule.cosineMaxBeta)
            }
        }
        var acc = 1.0
        alphasCumprod = betas.map { acc *= 1 - $0; return acc }
    }

    /// Stable Diffusion 1.x/2.x: scaled_linear from 0.00085 to 0.012 over 1,000 steps.
    public static let stableDiffusion = VPSchedule(checked: .scaledLinear, 1000, 0.00085, 0.012)

    /// alpha_s = sqrt(alphas_cumprod[s]), the signal scale at step s.
    public func alpha(_ s: Int) -> Double { alphasCumprod[s].squareRoot() }
    /// sigma_s = sqrt(1 - alphas_cumprod[s]), the noise scale at step s.
    public func sigma(_ s: Int) -> Double { (1 - alphasCumprod[s]).squareRoot() }
    /// lambda_s = log(alpha_s / sigma_s), half the log signal-to-noise ratio; falls with s.
    public func lambda(_ s: Int) -> Double { log(alpha(s)) - log(sigma(s)) }

    /// A label for logs and file attributes, e.g. "scaled_linear(1000, 0.00085, 0.012)".
    public var name: String {
        kind == .cosine ? "cosine(\(trainSteps))" : "\(kind.rawValue)(\(trainSteps), \(betaStart), \(betaEnd))"
    }
}

// MARK: - Flow time <-> diffusion step

/// InstaFlow's mapping for initialising a rectified flow from a diffusion U-Net: the flow time
/// t (0 = noise, 1 = data) enters the network's timestep input as trainSteps * (1 - t)
/// (1000 (1 - t) for Stable Diffusion), so t = 0 is step 1000 and t = 1 is step 0.
/// t = 0 lands one step past the last trained step (999) on purpose: that is the input
/// InstaFlow's pipeline (`(1 - i/N) * 1000`) gives the U-Net, whose time embedding is continuous.
public func diffusionStep(flowTime t: Float, trainSteps: Int) -> Float {
    Float(trainSteps) * (1 - t)
}

/// The inverse of `diffusionStep(flowTime:trainSteps:)`: t = 1 - s / trainSteps.
public func flowTime(diffusionStep s: Float, trainSteps: Int) -> Float {
    1 - s / Float(trainSteps)
}

/// `diffusionStep(flowTime:trainSteps:)` on a [N] tensor of flow times: what a velocity closure
/// around a diffusion U-Net passes as its timestep input. Built from Autograd ops, so it can
/// sit inside a training step.
public func diffusionSteps(flowTimes t: Tensor, trainSteps: Int) -> Tensor {
    (1 - t) * Float(trainSteps)
}

// MARK: - A diffusion path in flow coordinates

extension VPSchedule {
    /// A recorded sampler trajectory ((step s, x_s), step -1 = no noise left) in the rectified
    /// flow's coordinates: x_s = alpha x1 + sigma eps divided by (alpha + sigma) is
    /// t x1 + (1 - t) eps with t = alpha / (alpha + sigma). There DDIM is exactly Euler with
    /// velocity x0_hat - eps_hat, so `straightness(of:)` of the result measures the teacher's
    /// path as it measures a flow's (over [t_first, t_last], not [0, 1]: x_T is not pure noise).
    public func flowCoordinates(_ trajectory: [(t: Float, x: Tensor)]) throws -> [(t: Float, x: Tensor)] {
        try trajectory.map { state in
            let s = Int(state.t)
            guard Float(s) == state.t, s >= -1, s < trainSteps else {
                throw FlowError(op: "flowCoordinates", "state at step \(state.t) is not a step of 0..<\(trainSteps) (or -1)")
            }
            let (a, sg) = s >= 0 ? (alpha(s), sigma(s)) : (1.0, 0.0)
            return (t: Float(a / (a + sg)), x: state.x * Float(1 / (a + sg)))
        }
    }
}
