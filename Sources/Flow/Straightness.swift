import Autograd
import TensorCore

/// Straightness of a flow, S = int_0^1 E||(x1 - x0) - dx_t/dt||^2 dt (Liu et al.; 0 means every
/// path is a straight line walked at constant speed, so one Euler step is exact).
///
/// Normalisation: `value` sums the squared error over an item's dimensions and averages over
/// items (the paper's E||.||^2); it grows with the data dimension d. `perDimension` is value / d,
/// comparable across image sizes.
public struct Straightness: Sendable {
    /// Mean over items of the per-item sum over dimensions.
    public let value: Double
    /// `value / dimension`.
    public let perDimension: Double
    /// The estimate for each item (summed over its dimensions).
    public let perItem: [Double]
    /// Elements per item d.
    public let dimension: Int

    init(perItem: [Double], dimension: Int) {
        self.perItem = perItem
        self.dimension = dimension
        value = perItem.isEmpty ? 0 : perItem.reduce(0, +) / Double(perItem.count)
        perDimension = value / Double(max(dimension, 1))
    }
}

/// Straightness on an N-step Euler trajectory from x0 (t_i = i/N):
/// S ≈ (1/N) sum_i mean over items ||(x_N - x_0) - v(x_{t_i}, t_i)||^2 (summed over dimensions).
public func straightness(_ v: Velocity, x0: Tensor, steps: Int) throws -> Double {
    try measureStraightness(v, x0: x0, steps: steps).straightness.value
}

/// As `straightness(_:x0:steps:)`, with per-item and per-dimension values and the solve itself
/// (its end point is the N-step Euler sample, NFE = N), so one pass yields both.
///
/// Velocities are not stored: a running per-element mean and sum of squared deviations
/// (Welford, in Double) give sum_i ||v_i - vbar||^2 stably, and
/// sum_i ||D - v_i||^2 = sum_i ||v_i - vbar||^2 + N ||vbar - D||^2 with D = x_N - x_0
/// (equal to vbar up to Float32 rounding on an Euler path).
public func measureStraightness(_ v: Velocity, x0: Tensor, steps: Int,
                                record: Bool = false) throws -> (straightness: Straightness, result: SolveResult) {
    try checkSolveInput("straightness", x0, 0, 1)
    guard steps >= 1 else { throw FlowError(op: "straightness", "steps must be >= 1, got \(steps)") }
    let n = x0.shape[0], count = x0.count, dim = count / n
    var mean = [Double](repeating: 0, count: count)
    var m2 = [Double](repeating: 0, count: count)
    var k = 0.0
    let result = try Euler(steps: steps).solve({ x, t in
        let vi = try evaluate(v, x, t)
        k += 1
        let p = vi.storage.ptr, kk = k
        mean.withUnsafeMutableBufferPointer { mu in
            m2.withUnsafeMutableBufferPointer { s2 in
                Parallel.chunks(count) { r in
                    for j in r {
                        let x = Double(p[j])
                        let d = x - mu[j]
                        mu[j] += d / kk
                        s2[j] += d * (x - mu[j])
                    }
                }
            }
        }
        return vi
    }, x0: x0, from: 0, to: 1, record: record)
    let pEnd = result.x.storage.ptr, pStart = x0.storage.ptr
    var perItem = [Double](repeating: 0, count: n)
    mean.withUnsafeBufferPointer { mu in
        m2.withUnsafeBufferPointer { s2 in
            perItem.withUnsafeMutableBufferPointer { out in
                Parallel.items(n, costPerItem: dim) { i in
                    var dev = 0.0, off = 0.0
                    for j in (i * dim)..<((i + 1) * dim) {
                        dev += s2[j]
                        let e = mu[j] - (Double(pEnd[j]) - Double(pStart[j]))
                        off += e * e
                    }
                    out[i] = dev / Double(steps) + off
                }
            }
        }
    }
    return (Straightness(perItem: perItem, dimension: dim), result)
}

/// Straightness from a recorded trajectory of any solver ((t, x) states, e.g.
/// `SolveResult.trajectory`), with dx/dt on each segment taken as its secant:
/// S ≈ (1/T) sum_k dt_k ||(x_end - x_start)/T - (x_k+1 - x_k)/dt_k||^2, T = t_end - t_start.
/// On [0, 1] this is the definition; on an Euler trajectory it equals `measureStraightness`.
public func straightness(of trajectory: [(t: Float, x: Tensor)]) throws -> Straightness {
    guard trajectory.count >= 2, let first = trajectory.first, let last = trajectory.last else {
        throw FlowError(op: "straightness", "a trajectory needs at least 2 states, got \(trajectory.count)")
    }
    let shape = first.x.shape
    guard shape.count >= 1, shape[0] >= 1 else {
        throw ShapeError(op: "straightness", "states must be batches [N, ...], got \(shape)")
    }
    let total = Double(last.t) - Double(first.t)
    guard total != 0 else { throw FlowError(op: "straightness", "trajectory spans no time (t = \(first.t))") }
    for (i, s) in trajectory.enumerated() {
        guard s.x.shape == shape else {
            throw ShapeError(op: "straightness", "state \(i) has shape \(s.x.shape), state 0 has \(shape)")
        }
        if i > 0, (Double(s.t) - Double(trajectory[i - 1].t)) * total <= 0 {
            throw FlowError(op: "straightness", "times must move monotonically from \(first.t) to \(last.t); state \(i) is at \(s.t)")
        }
    }
    let n = shape[0], dim = first.x.count / n
    let xs = trajectory.map { UnsafePointer($0.x.storage.ptr) }
    let ts = trajectory.map { Double($0.t) }
    var perItem = [Double](repeating: 0, count: n)
    perItem.withUnsafeMutableBufferPointer { out in
        Parallel.items(n, costPerItem: dim * trajectory.count) { i in
            var s = 0.0
            for seg in 0..<(trajectory.count - 1) {
                let dt = ts[seg + 1] - ts[seg]
                let a = xs[seg], b = xs[seg + 1]
                var acc = 0.0
                for j in (i * dim)..<((i + 1) * dim) {
                    let avg = (Double(xs[xs.count - 1][j]) - Double(xs[0][j])) / total
                    let e = avg - (Double(b[j]) - Double(a[j])) / dt
                    acc += e * e
                }
                s += dt * acc
            }
            out[i] = s / total
        }
    }
    return Straightness(perItem: perItem, dimension: dim)
}
