import Autograd
import TensorCore

/// A velocity field v(x, t). `x` is a batch [N, ...]; `t` is a [N] tensor of times, one per item
/// (t = 0 is noise, t = 1 is data). The result has x's shape. Text conditioning, guidance and
/// the network itself are captured by the closure, so Flow never depends on a concrete model.
/// Inside a training step the closure records a graph (its parameters require gradients);
/// solvers call it under `noGrad`.
public typealias Velocity = (_ x: Tensor, _ t: Tensor) throws -> Tensor

/// Errors of the flow layer that are not shape mismatches (bad settings, a solver that gives up).
public struct FlowError: Error, CustomStringConvertible {
    public let op: String
    public let message: String
    public init(op: String, _ message: String) { self.op = op; self.message = message }
    public var description: String { "\(op): \(message)" }
}

/// A [N] tensor holding the same time for every item.
public func timeTensor(_ t: Float, count n: Int) -> Tensor { Tensor.full([n], t) }

/// Per-item times [N] reshaped to [N, 1, ..., 1] so that they broadcast against `x` ([N, ...]).
public func broadcastTimes(_ t: Tensor, like x: Tensor) throws -> Tensor {
    guard x.rank >= 1 else {
        throw ShapeError(op: "times", "x must have a batch axis, got shape \(x.shape)")
    }
    guard t.count == x.shape[0], t.rank <= 1 || t.shape.dropFirst().allSatisfy({ $0 == 1 }) else {
        throw ShapeError(op: "times", "times of shape \(t.shape) do not match a batch of shape \(x.shape) (need [\(x.shape[0])])")
    }
    return try t.reshaped([x.shape[0]] + Array(repeating: 1, count: x.rank - 1))
}

/// Checks the contract of a velocity call: x is batched, t is [N], the result has x's shape.
/// Solvers go through this so that a wrong network surfaces as an error, not a crash.
func evaluate(_ v: Velocity, _ x: Tensor, _ t: Tensor) throws -> Tensor {
    let out = try v(x, t)
    guard out.shape == x.shape else {
        throw ShapeError(op: "velocity", "returned shape \(out.shape) for input of shape \(x.shape)")
    }
    return out
}

// MARK: - Classifier-free guidance

/// Classifier-free guidance from two fields: v = v_uncond + w * (v_cond - v_uncond).
/// w = 1 is no guidance and calls only `cond`; w = 0 calls only `uncond`. Differentiable when
/// the closures are (distilling a guided teacher online needs no special case).
public func guided(cond: @escaping Velocity, uncond: @escaping Velocity, scale w: Float) -> Velocity {
    if w == 1 { return cond }
    if w == 0 { return uncond }
    return { x, t in
        let vu = try uncond(x, t)
        let vc = try cond(x, t)
        return try vu + (try vc - vu) * w
    }
}

/// Classifier-free guidance with one call over a doubled batch (one network pass instead of
/// two, which is what the big models do). `f` receives x2 = [x; x] and t2 = [t; t] (2N items)
/// and must evaluate the first N items with the text and the last N with the empty prompt; its
/// [2N, ...] result is combined as v_uncond + w * (v_cond - v_uncond), the same field as
/// `guided`. Concat and slice are differentiable, so gradients flow through.
public func guidedBatched(_ f: @escaping Velocity, scale w: Float) -> Velocity {
    return { x, t in
        guard x.rank >= 1 else {
            throw ShapeError(op: "guidedBatched", "x must have a batch axis, got shape \(x.shape)")
        }
        let n = x.shape[0]
        guard t.count == n else {
            throw ShapeError(op: "guidedBatched", "times of shape \(t.shape) for a batch of shape \(x.shape)")
        }
        let x2 = try Tensor.concat([x, x], axis: 0)
        let v2 = try f(x2, try Tensor.concat([t, t], axis: 0))
        guard v2.shape == x2.shape else {
            throw ShapeError(op: "guidedBatched", "velocity returned shape \(v2.shape) for a doubled batch of shape \(x2.shape)")
        }
        let vc = try v2.slice(axis: 0, range: 0..<n), vu = try v2.slice(axis: 0, range: n..<(2 * n))
        return try vu + (vc - vu) * w
    }
}
