import Autograd
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// Adaptive Dormand-Prince 5(4) with the step control of scipy's `solve_ivp(method="RK45")`,
/// which gnobitab/RectifiedFlow uses to make its pairs (rtol = atol = 1e-5), so NFE counts
/// are comparable with the paper's:
/// - the whole batch is one state vector; the error norm is the RMS over all its elements of
///   err_i / (atol + rtol * max(|y_i|, |y_new_i|)), a step is accepted when the norm is < 1;
/// - the first step comes from Hairer-Norsett-Wanner's heuristic (II.4), costing one evaluation;
/// - FSAL: the last stage of an accepted step is the first of the next, so a step costs 6
///   evaluations and NFE = 2 + 6 * (accepted + rejected steps);
/// - step factor 0.9 * norm^(-1/5), clamped to [0.2, 10], and not growing right after a reject.
/// Times are tracked in Double, the state in Float32 (tolerances far above Float32 epsilon are
/// fine; below ~1e-6 the Float32 state itself is the limit).
public struct DormandPrince: ODESolver {
    public var rtol: Double
    public var atol: Double
    /// Cap on step attempts (accepted + rejected); exceeding it throws rather than looping on.
    public var maxSteps: Int
    /// First step size; nil uses the heuristic (as scipy's `first_step=None`).
    public var firstStep: Double?
    public var maxStep: Double

    public init(rtol: Double, atol: Double, maxSteps: Int = 10_000,
                firstStep: Double? = nil, maxStep: Double = .infinity) {
        self.rtol = rtol; self.atol = atol; self.maxSteps = maxSteps
        self.firstStep = firstStep; self.maxStep = maxStep
    }

    public var name: String { "dopri5(rtol=\(rtol), atol=\(atol))" }

    // Butcher tableau (Dormand & Prince 1980), 5th-order weights B, error weights E = B - B*.
    static let c: [Double] = [0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1]
    static let a: [[Double]] = [
        [],
        [1.0 / 5],
        [3.0 / 40, 9.0 / 40],
        [44.0 / 45, -56.0 / 15, 32.0 / 9],
        [19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729],
        [9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656],
    ]
    static let b: [Double] = [35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84]
    static let e: [Double] = [-71.0 / 57600, 0, 71.0 / 16695, -71.0 / 1920, 17253.0 / 339200, -22.0 / 525, 1.0 / 40]
    static let safety = 0.9, minFactor = 0.2, maxFactor = 10.0
    static let errorExponent = -1.0 / 5  // error estimator of order 4

    public func solve(_ v: Velocity, x0: Tensor, from t0: Float, to t1: Float, record: Bool) throws -> SolveResult {
        let op = "dopri5"
        try checkSolveInput(op, x0, t0, t1)
        guard rtol >= 0, atol >= 0, rtol + atol > 0, rtol.isFinite, atol.isFinite else {
            throw FlowError(op: op, "tolerances must be finite, >= 0 and not both 0, got rtol=\(rtol), atol=\(atol)")
        }
        guard maxSteps >= 1 else { throw FlowError(op: op, "maxSteps must be >= 1, got \(maxSteps)") }
        guard maxStep > 0 else { throw FlowError(op: op, "maxStep must be positive, got \(maxStep)") }
        if let h = firstStep, !(h > 0 && h.isFinite) {
            throw FlowError(op: op, "firstStep must be positive and finite, got \(h)")
        }
        let n = x0.shape[0]
        let tEnd = Double(t1)
        var t = Double(t0)
        if t == tEnd { return SolveResult(x: x0, nfe: 0, steps: 0, trajectory: record ? [(t0, x0)] : nil) }
        let dir: Double = tEnd > t ? 1 : -1
        let (rtol, atol, maxStep) = (self.rtol, self.atol, self.maxStep)

        return try noGrad {
            var nfe = 0
            func f(_ x: Tensor, _ time: Double) throws -> Tensor {
                nfe += 1
                return try evaluate(v, x, timeTensor(Float(time), count: n))
            }
            var y = x0
            var fy = try f(y, t)
            var hAbs = try firstStep ?? initialStep(f, t: t, y: y, fy: fy, tEnd: tEnd, dir: dir)
            guard hAbs.isFinite, hAbs > 0 else {
                throw FlowError(op: op, "non-finite first step at t = \(t): the velocity returned NaN or Inf")
            }
            var accepted = 0, rejected = 0
            var traj: [(t: Float, x: Tensor)]? = record ? [(t0, x0)] : nil

            while dir * (tEnd - t) > 0 {
                let minStep = 10 * Swift.abs((dir > 0 ? t.nextUp : t.nextDown) - t)
                hAbs = min(max(hAbs, minStep), maxStep)
                var stepRejected = false
                while true {
                    guard accepted + rejected < maxSteps else {
                        throw FlowError(op: op, "gave up after \(maxSteps) step attempts at t = \(t) (h = \(hAbs), \(nfe) evaluations); raise maxSteps or loosen rtol/atol")
                    }
                    guard hAbs >= minStep else {
                        throw FlowError(op: op, "step size \(hAbs) fell below \(minStep) at t = \(t); the field is too stiff or not smooth")
                    }
                    var tNew = t + hAbs * dir
                    if dir * (tNew - tEnd) > 0 { tNew = tEnd }
                    let h = tNew - t
                    hAbs = Swift.abs(h)

                    // Six stages; the seventh (k[6]) is f at the new point, reused next step (FSAL).
                    var k: [Tensor] = [fy]
                    for s in 1..<6 {
                        let terms = (0..<s).map { (Float(h * Self.a[s][$0]), k[$0]) }
                        k.append(try f(combine(y, terms), t + Self.c[s] * h))
                    }
                    let yNew = combine(y, (0..<6).map { (Float(h * Self.b[$0]), k[$0]) })
                    k.append(try f(yNew, tNew))

                    let errNorm = Self.errorNorm(k, h: h, y: y, yNew: yNew, rtol: rtol, atol: atol)
                    guard errNorm.isFinite else {
                        throw FlowError(op: op, "non-finite error estimate at t = \(t): the velocity returned NaN or Inf")
                    }
                    if errNorm < 1 {
                        var factor = errNorm == 0 ? Self.maxFactor
                            : min(Self.maxFactor, Self.safety * pow(errNorm, Self.errorExponent))
                        if stepRejected { factor = min(1, factor) }
                        hAbs *= factor
                        accepted += 1
                        t = tNew
                        y = yNew
                        fy = k[6]
                        traj?.append((Float(t), y))
                        break
                    }
                    hAbs *= max(Self.minFactor, Self.safety * pow(errNorm, Self.errorExponent))
                    stepRejected = true
                    rejected += 1
                }
            }
            return SolveResult(x: y, nfe: nfe, steps: accepted, rejectedSteps: rejected, trajectory: traj)
        }
    }

    /// Hairer-Norsett-Wanner's starting step (scipy's `select_initial_step`, order 4).
    func initialStep(_ f: (Tensor, Double) throws -> Tensor, t: Double, y: Tensor, fy: Tensor,
                     tEnd: Double, dir: Double) throws -> Double {
        let interval = Swift.abs(tEnd - t)
        let py = y.storage.ptr, pf = fy.storage.ptr
        let (rtol, atol) = (self.rtol, self.atol)
        @inline(__always) func scale(_ i: Int) -> Double { atol + Swift.abs(Double(py[i])) * rtol }
        let cnt = y.count
        let d0 = rms(cnt) { Double(py[$0]) / scale($0) }
        let d1 = rms(cnt) { Double(pf[$0]) / scale($0) }
        var h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1
        h0 = min(h0, interval)
        let y1 = combine(y, [(Float(h0 * dir), fy)])
        let f1 = try f(y1, t + h0 * dir)
        let pf1 = f1.storage.ptr
        let d2 = rms(cnt) { (Double(pf1[$0]) - Double(pf[$0])) / scale($0) } / h0
        let h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? max(1e-6, h0 * 1e-3) : pow(0.01 / max(d1, d2), 1.0 / 5)
        return min(100 * h0, h1, interval, maxStep)
    }

    /// RMS over all elements of (h * sum_k e_k K_k) / (atol + rtol * max(|y|, |y_new|)).
    static func errorNorm(_ k: [Tensor], h: Double, y: Tensor, yNew: Tensor, rtol: Double, atol: Double) -> Double {
        let ps = k.map { UnsafePointer($0.storage.ptr) }
        let py = y.storage.ptr, pn = yNew.storage.ptr
        let w = e.map { $0 * h }
        return rms(y.count) { i in
            var err = 0.0
            for s in 0..<7 where w[s] != 0 { err += w[s] * Double(ps[s][i]) }
            return err / (atol + max(Swift.abs(Double(py[i])), Swift.abs(Double(pn[i]))) * rtol)
        }
    }
}

/// sqrt(mean of term(i)^2) over i < n, in Double. Fixed blocks (not per thread) keep the
/// summation order, hence the step sizes, independent of the thread count.
func rms(_ n: Int, _ term: (Int) -> Double) -> Double {
    guard n > 0 else { return 0 }
    let blocks = max(1, min(64, n / 8192))
    var partial = [Double](repeating: 0, count: blocks)
    partial.withUnsafeMutableBufferPointer { buf in
        Parallel.items(blocks, costPerItem: n / blocks) { blk in
            var s = 0.0
            for i in (blk * n / blocks)..<((blk + 1) * n / blocks) { let x = term(i); s += x * x }
            buf[blk] = s
        }
    }
    return (partial.reduce(0, +) / Double(n)).squareRoot()
}
