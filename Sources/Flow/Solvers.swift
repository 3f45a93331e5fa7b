import Autograd
import TensorCore

/// What a solve returns: the end state, the cost in velocity evaluations, and optionally the
/// visited states (for sample grids over time and for straightness).
public struct SolveResult {
    /// The state at the end time.
    public let x: Tensor
    /// Number of velocity evaluations (NFE), the solver's cost in network passes.
    public let nfe: Int
    /// Accepted steps (fixed-step solvers: their step count).
    public let steps: Int
    /// Rejected attempts (adaptive solvers only; each cost 6 evaluations for Dormand-Prince).
    public let rejectedSteps: Int
    /// (t, x) at the start and after every accepted step when `record` was set, else nil.
    public let trajectory: [(t: Float, x: Tensor)]?

    public init(x: Tensor, nfe: Int, steps: Int, rejectedSteps: Int = 0, trajectory: [(t: Float, x: Tensor)]?) {
        self.x = x; self.nfe = nfe; self.steps = steps; self.rejectedSteps = rejectedSteps; self.trajectory = trajectory
    }
}

/// Integrates dx/dt = v(x, t) from x(t0) = x0 to t1 (t0 > t1 integrates backwards, data to
/// noise). Solvers run under `noGrad`: sampling never records a graph.
public protocol ODESolver {
    /// A short label for logs and file attributes, e.g. "euler(25)" or "dopri5(rtol=1e-05, atol=1e-05)".
    var name: String { get }
    func solve(_ v: Velocity, x0: Tensor, from t0: Float, to t1: Float, record: Bool) throws -> SolveResult
}

extension ODESolver {
    /// Noise (t = 0) to data (t = 1).
    public func solve(_ v: Velocity, x0: Tensor, record: Bool = false) throws -> SolveResult {
        try solve(v, x0: x0, from: 0, to: 1, record: record)
    }
    public func solve(_ v: Velocity, x0: Tensor, from t0: Float, to t1: Float) throws -> SolveResult {
        try solve(v, x0: x0, from: t0, to: t1, record: false)
    }
}

func checkSolveInput(_ op: String, _ x0: Tensor, _ t0: Float, _ t1: Float) throws {
    guard x0.rank >= 1, x0.shape[0] >= 1 else {
        throw ShapeError(op: op, "x0 must be a non-empty batch [N, ...], got shape \(x0.shape)")
    }
    guard t0.isFinite, t1.isFinite else { throw FlowError(op: op, "times must be finite, got \(t0) to \(t1)") }
}

/// out = base + sum_k c_k * term_k elementwise, one fresh buffer, no tape (solver arithmetic).
func combine(_ base: Tensor, _ terms: [(Float, Tensor)]) -> Tensor {
    let n = base.count
    let out = Storage(uninitializedCount: n)
    let dst = out.ptr, src = base.storage.ptr
    let ptrs = terms.map { (c: $0.0, p: UnsafePointer($0.1.storage.ptr)) }
    for term in terms { precondition(term.1.count == n, "combine: \(term.1.shape) vs \(base.shape)") }
    Parallel.chunks(n) { r in
        for i in r { dst[i] = src[i] }
        for (c, p) in ptrs where c != 0 { for i in r { dst[i] += c * p[i] } }
    }
    return Tensor(shape: base.shape, storage: out)
}

/// The driver shared by the fixed-step solvers: a uniform grid t_i = t0 + (t1 - t0) * i / N
/// (computed in Double so the last point is exactly t1); `step` advances x from t_i to t_i+1
/// and returns the new state and the evaluations it spent.
func fixedStepSolve(_ op: String, steps: Int, x0: Tensor, from t0: Float, to t1: Float, record: Bool,
                    _ step: (_ x: Tensor, _ i: Int, _ t: Float, _ tNext: Float) throws -> (Tensor, Int)) throws -> SolveResult {
    try checkSolveInput(op, x0, t0, t1)
    guard steps >= 1 else { throw FlowError(op: op, "steps must be >= 1, got \(steps)") }
    return try noGrad {
        var x = x0
        var nfe = 0
        var traj: [(t: Float, x: Tensor)]? = record ? [(t0, x0)] : nil
        let a = Double(t0), b = Double(t1)
        func grid(_ i: Int) -> Float { i == steps ? t1 : Float(a + (b - a) * Double(i) / Double(steps)) }
        for i in 0..<steps {
            let (xn, used) = try step(x, i, grid(i), grid(i + 1))
            x = xn
            nfe += used
            traj?.append((grid(i + 1), x))
        }
        return SolveResult(x: x, nfe: nfe, steps: steps, trajectory: traj)
    }
}

// MARK: - Euler

/// Forward Euler on t_i = t0 + (t1 - t0) * i / N: x_{i+1} = x_i + h v(x_i, t_i). NFE = N.
/// The default grid starts at exactly t = 0, where the one-step student lives;
/// gnobitab/RectifiedFlow's grid t_i = i/N * (1 - eps) + eps is `solve(v, x0:, from: eps, to: 1)`.
public struct Euler: ODESolver {
    public var steps: Int
    public init(steps: Int) { self.steps = steps }
    public var name: String { "euler(\(steps))" }

    public func solve(_ v: Velocity, x0: Tensor, from t0: Float, to t1: Float, record: Bool) throws -> SolveResult {
        let n = x0.rank >= 1 ? x0.shape[0] : 0
        return try fixedStepSolve("euler", steps: steps, x0: x0, from: t0, to: t1, record: record) { x, _, t, tn in
            let d = try evaluate(v, x, timeTensor(t, count: n))
            return (combine(x, [(tn - t, d)]), 1)
        }
    }
}

// MARK: - Heun

/// Heun's method (explicit trapezoid, 2nd order): predictor x' = x + h d(x, t), corrector
/// x + h/2 (d(x, t) + d(x', t + h)). NFE = 2N. With `finalEuler` the last step keeps the Euler
/// predictor, as EDM does (there sigma = 0 makes the last correction undefined); NFE = 2N - 1.
/// That remains second order (one Euler step adds an O(h^2) error, the size of Heun's global
/// error) and lets a Heun run be compared with Euler at odd NFE.
public struct Heun: ODESolver {
    public var steps: Int
    public var finalEuler: Bool
    public init(steps: Int, finalEuler: Bool = false) { self.steps = steps; self.finalEuler = finalEuler }
    public var name: String { "heun(\(steps)\(finalEuler ? ", finalEuler" : ""))" }

    public func solve(_ v: Velocity, x0: Tensor, from t0: Float, to t1: Float, record: Bool) throws -> SolveResult {
        let n = x0.rank >= 1 ? x0.shape[0] : 0
        let last = steps - 1, skipLast = finalEuler
        return try fixedStepSolve("heun", steps: steps, x0: x0, from: t0, to: t1, record: record) { x, i, t, tn in
            let h = tn - t
            let d1 = try evaluate(v, x, timeTensor(t, count: n))
            let xe = combine(x, [(h, d1)])
            if skipLast && i == last { return (xe, 1) }
            let d2 = try evaluate(v, xe, timeTensor(tn, count: n))
            return (combine(x, [(h / 2, d1), (h / 2, d2)]), 2)
        }
    }
}

// MARK: - RK4

/// The classical fourth-order Runge-Kutta method. NFE = 4N.
public struct RK4: ODESolver {
    public var steps: Int
    public init(steps: Int) { self.steps = steps }
    public var name: String { "rk4(\(steps))" }

    public func solve(_ v: Velocity, x0: Tensor, from t0: Float, to t1: Float, record: Bool) throws -> SolveResult {
        let n = x0.rank >= 1 ? x0.shape[0] : 0
        return try fixedStepSolve("rk4", steps: steps, x0: x0, from: t0, to: t1, record: record) { x, _, t, tn in
            let h = tn - t
            let tm = t + h / 2
            let k1 = try evaluate(v, x, timeTensor(t, count: n))
            let k2 = try evaluate(v, combine(x, [(h / 2, k1)]), timeTensor(tm, count: n))
            let k3 = try evaluate(v, combine(x, [(h / 2, k2)]), timeTensor(tm, count: n))
            let k4 = try evaluate(v, combine(x, [(h, k3)]), timeTensor(tn, count: n))
            return (combine(x, [(h / 6, k1), (h / 3, k2), (h / 3, k3), (h / 6, k4)]), 4)
        }
    }
}
