import Foundation
import Autograd
import TensorCore

/// A diffusion network's output at x_s: eps (or v, see `DiffusionPrediction`). `x` is a batch
/// [N, ...]; `timestep` is a [N] tensor of diffusion steps s as Float (0...trainSteps-1, the
/// step the sampler evaluates at). The result has x's shape. As with `Velocity`, text,
/// guidance and the network are captured by the closure; classifier-free guidance on the model
/// output, eps = eps(empty) + w (eps(text) - eps(empty)) as diffusers applies it, is
/// `guided(cond:uncond:scale:)` or `guidedBatched(_:scale:)` (they combine any such closure).
public typealias DiffusionModel = (_ x: Tensor, _ timestep: Tensor) throws -> Tensor

/// Integrates a VP diffusion model's probability-flow ODE from noise x_T to data with a fixed
/// number of model evaluations. Samplers run under `noGrad`. x_T is standard normal noise used
/// as the state at the first timestep (diffusers' `init_noise_sigma` is 1 for both), so it is
/// what a (text, noise, image) triplet stores as its noise.
///
/// The returned `SolveResult.trajectory` holds (step, x): x_T at the first timestep, then the
/// state after each update at the step whose noise level it has; a state with no noise left
/// (sigma = 0) is recorded at step -1. `nfe` counts calls of the closure (a guided closure
/// costs two network passes per call, one with `guidedBatched`).
public protocol DiffusionSampler {
    /// A short label for logs and file attributes, e.g. "ddim(25, leading+1, epsilon)".
    var name: String { get }
    /// The diffusion steps at which the model is evaluated, from noisy to clean.
    var timesteps: [Int] { get }
    func sample(_ model: DiffusionModel, xT: Tensor, record: Bool) throws -> SolveResult
}

extension DiffusionSampler {
    public func sample(_ model: DiffusionModel, xT: Tensor) throws -> SolveResult {
        try sample(model, xT: xT, record: false)
    }
}

/// How N inference steps are spread over 0..<trainSteps (diffusers' `timestep_spacing`).
/// The two schedulers place them slightly differently for the same name (see `timesteps`
/// of `DDIM` and `DPMSolverPP`); both are reproduced as diffusers has them.
public enum TimestepSpacing: String, CaseIterable, Codable, Sendable {
    /// Multiples of T / N counted up from 0, plus `stepsOffset` (SD's DDIM: 961, 921, ..., 1).
    case leading
    /// Rounded points of linspace(0, T - 1, ...) (diffusers' DPM-Solver default: 999, ..., 40).
    case linspace
    /// Multiples of T / N counted down from T, minus 1 (999, 959, ..., 39).
    case trailing

    /// The spacing as sampler names show it: "leading+1" when an offset applies.
    public func label(offset: Int) -> String {
        self == .leading && offset != 0 ? "\(rawValue)+\(offset)" : rawValue
    }

    public init(name: String) throws {
        guard let s = TimestepSpacing(rawValue: name) else {
            throw FlowError(op: "timestep spacing", "unknown spacing '\(name)'; valid: \(TimestepSpacing.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = s
    }
}

/// numpy's `linspace(start, stop, num)` element i, computed as numpy does (i * step + start,
/// the last point exactly stop) so that rounding a .5 lands the same way.
func numpyLinspace(_ start: Double, _ stop: Double, _ num: Int, _ i: Int) -> Double {
    if num == 1 { return start }
    if i == num - 1 { return stop }
    return Double(i) * ((stop - start) / Double(num - 1)) + start
}

/// numpy's `arange(start, stop, -step)` for step > 0: ceil((start - stop) / step) points.
func numpyArangeDown(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
    let n = Int(((start - stop) / step).rounded(.up))
    return (0..<max(n, 0)).map { start - Double($0) * step }
}

/// Round half to even, numpy's `round`.
func roundEven(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

func checkSamplerSettings(_ op: String, steps: Int, schedule: VPSchedule) throws {
    guard steps >= 1, steps <= schedule.trainSteps else {
        throw FlowError(op: op, "steps must be in 1...\(schedule.trainSteps) (the schedule's train steps), got \(steps)")
    }
}

/// Checks a model call's contract (x batched, one output per input element) like `evaluate`.
func evaluateDiffusion(_ model: DiffusionModel, _ x: Tensor, step: Int) throws -> Tensor {
    let out = try model(x, timeTensor(Float(step), count: x.shape[0]))
    guard out.shape == x.shape else {
        throw ShapeError(op: "diffusion model", "returned shape \(out.shape) for input of shape \(x.shape) at step \(step)")
    }
    return out
}

/// The coefficients (on x, on the model output) that turn a model output at a noise level
/// (alpha, sigma) into the predicted clean data x0 and the predicted noise eps:
///   epsilon: x0 = (x - sigma m) / alpha,  eps = m
///   v:       x0 = alpha x - sigma m,      eps = sigma x + alpha m   (alpha^2 + sigma^2 = 1)
struct PredictionCoefficients {
    let x0: (x: Double, m: Double)
    let eps: (x: Double, m: Double)

    init(_ p: DiffusionPrediction, alpha: Double, sigma: Double) {
        switch p {
        case .epsilon: x0 = (1 / alpha, -sigma / alpha); eps = (0, 1)
        case .v: x0 = (alpha, -sigma); eps = (sigma, alpha)
        }
    }
}

/// sum_k c_k * t_k elementwise into one fresh buffer, no tape (sampler arithmetic). The
/// coefficients are computed in Double and applied in Float, as diffusers applies its float32
/// coefficients to float32 tensors.
func weightedSum(_ terms: [(Double, Tensor)]) -> Tensor {
    let shape = terms[0].1.shape, n = terms[0].1.count
    for term in terms { precondition(term.1.count == n, "weightedSum: \(term.1.shape) vs \(shape)") }
    let out = Storage(uninitializedCount: n)
    let dst = out.ptr
    let ptrs = terms.map { (c: Float($0.0), p: UnsafePointer($0.1.storage.ptr)) }
    Parallel.chunks(n) { r in
        for i in r { dst[i] = 0 }
        for (c, p) in ptrs where c != 0 { for i in r { dst[i] += c * p[i] } }
    }
    return Tensor(shape: shape, storage: out)
}

/// The loop both samplers share: checks x_T, evaluates the model at each timestep under
/// `noGrad`, lets `update` advance the state, and records the trajectory.
func diffusionSampleLoop(_ op: String, _ model: DiffusionModel, timesteps: [Int], xT: Tensor, record: Bool,
                         recordedStep: (_ i: Int) -> Int,
                         _ update: (_ x: Tensor, _ i: Int, _ output: Tensor) throws -> Tensor) throws -> SolveResult {
    guard xT.rank >= 1, xT.shape[0] >= 1 else {
        throw ShapeError(op: op, "x_T must be a non-empty batch [N, ...], got shape \(xT.shape)")
    }
    return try noGrad {
        var x = xT
        var traj: [(t: Float, x: Tensor)]? = record ? [(Float(timesteps[0]), xT)] : nil
        for i in timesteps.indices {
            x = try update(x, i, try evaluateDiffusion(model, x, step: timesteps[i]))
            traj?.append((Float(recordedStep(i)), x))
        }
        return SolveResult(x: x, nfe: timesteps.count, steps: timesteps.count, trajectory: traj)
    }
}
