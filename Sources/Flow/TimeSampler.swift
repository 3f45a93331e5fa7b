import Autograd
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// How training draws the time t of each item (t = 0 noise, t = 1 data).
///
/// The default `uniform()` draws t ~ U[0, 1) and does not skip the noise end: our Euler grid
/// starts at t = 0 (t_i = i/N) and the one-step student is queried at exactly t = 0, so the
/// field must be trained there. gnobitab/RectifiedFlow draws U[eps, 1] with eps = 1e-3 (its
/// network came from score SDEs, which break down at the noise end); `uniform(eps: 1e-3)`
/// reproduces that: t = eps + (1 - eps) * u, u ~ U[0, 1), so t in [eps, 1).
public enum TimeSampler: Equatable, Sendable {
    /// t = eps + (1 - eps) * u with u ~ U[0, 1). Needs 0 <= eps < 1.
    case uniform(eps: Float = 0)
    /// t = sigmoid(mean + std * n), n ~ N(0, 1) (SD3 / minRF; weights the middle of the path).
    case logitNormal(mean: Float = 0, std: Float = 1)
    /// Every item at the same time; `.fixed(0)` is one-step distillation ("t0" in RectifiedFlow).
    case fixed(Float)
    /// k-step distillation: t uniform over the k Euler grid starts {0, 1/k, ..., (k-1)/k}.
    case discrete(steps: Int)
    /// The U-shaped density of 2-RF++ (Lee et al. 2024, rfpp): a truncated exponential
    /// e^{a t} on [0, 1] mixed half and half with its mirror, i.e. density ∝ cosh(a (t - 1/2)),
    /// cosh(a/2) times denser at the ends than in the middle (a = 4: 3.8x). Symmetric, so the
    /// time direction does not matter. Drawn by inverting its CDF:
    /// t = 1/2 + asinh((2u - 1) sinh(a/2)) / a, u ~ U[0, 1).
    case uShaped(a: Float)

    /// One-step distillation: every t = 0, the student learns x1 = x0 + v(x0, 0).
    public static let t0 = TimeSampler.fixed(0)

    /// Draws n times as a [n] tensor. Uses one stream of `rng` per call (none for `.fixed`).
    public func sample(_ n: Int, rng: inout RNG) throws -> Tensor {
        guard n >= 0 else { throw FlowError(op: "timeSampler", "negative sample count \(n)") }
        let s = Storage(uninitializedCount: n)
        switch self {
        case .uniform(let eps):
            guard eps >= 0, eps < 1 else { throw FlowError(op: "timeSampler", "uniform eps must be in [0, 1), got \(eps)") }
            rng.uniform(s.ptr, count: n)
            for i in 0..<n { s.ptr[i] = eps + (1 - eps) * s.ptr[i] }
        case .logitNormal(let mean, let std):
            guard std >= 0, mean.isFinite, std.isFinite else {
                throw FlowError(op: "timeSampler", "logit-normal needs finite mean and std >= 0, got (\(mean), \(std))")
            }
            rng.normal(s.ptr, count: n)
            for i in 0..<n { s.ptr[i] = 1 / (1 + exp(-(mean + std * s.ptr[i]))) }
        case .fixed(let t):
            guard t >= 0, t <= 1 else { throw FlowError(op: "timeSampler", "fixed time must be in [0, 1], got \(t)") }
            for i in 0..<n { s.ptr[i] = t }
        case .uShaped(let a):
            guard a > 0, a.isFinite else { throw FlowError(op: "timeSampler", "u-shaped needs a finite a > 0, got \(a)") }
            rng.uniform(s.ptr, count: n)
            let sh = sinh(Double(a) / 2)
            for i in 0..<n { s.ptr[i] = Float(0.5 + asinh((2 * Double(s.ptr[i]) - 1) * sh) / Double(a)) }
        case .discrete(let k):
            guard k >= 1 else { throw FlowError(op: "timeSampler", "discrete needs steps >= 1, got \(k)") }
            rng.uniform(s.ptr, count: n)
            for i in 0..<n { s.ptr[i] = Float(min(k - 1, Int(s.ptr[i] * Float(k)))) / Float(k) }
        }
        return Tensor(shape: [n], storage: s)
    }
}
