import Autograd
import TensorCore

// Training objectives. Every loss returns a scalar tensor (shape []) that records a graph when
// the model's parameters require gradients. x0 is noise, x1 data, t a [N] tensor of times.

func checkPair(_ op: String, _ x0: Tensor, _ x1: Tensor, _ t: Tensor? = nil) throws {
    guard x0.shape == x1.shape else {
        throw ShapeError(op: op, "noise \(x0.shape) and data \(x1.shape) must have the same shape")
    }
    guard x0.rank >= 1 else { throw ShapeError(op: op, "need a batch axis, got shape \(x0.shape)") }
    if let t, t.shape != [x0.shape[0]] {
        throw ShapeError(op: op, "times must have shape [\(x0.shape[0])], got \(t.shape)")
    }
}

/// Axes 1..<rank: everything but the batch axis.
func itemAxes(_ x: Tensor) -> [Int] { Array(1..<max(x.rank, 1)) }

/// The point on the straight path: x_t = t * x1 + (1 - t) * x0 (written x0 + t * (x1 - x0)).
public func interpolate(x0: Tensor, x1: Tensor, t: Tensor) throws -> Tensor {
    try checkPair("interpolate", x0, x1, t)
    return try x0 + (try broadcastTimes(t, like: x0) * (try x1 - x0))
}

/// The model's velocity at x_t and the regression target x1 - x0.
func velocityAndTarget(_ op: String, _ model: Velocity, _ x0: Tensor, _ x1: Tensor, _ t: Tensor) throws -> (Tensor, Tensor) {
    try checkPair(op, x0, x1, t)
    let xt = try interpolate(x0: x0, x1: x1, t: t)
    return (try evaluate(model, xt, t), try x1 - x0)
}

/// Rectified-flow (flow-matching) loss: mean over all elements of (v(x_t, t) - (x1 - x0))^2,
/// the squared error averaged over pixels and batch as in gnobitab/RectifiedFlow. For reflow,
/// (x0, x1) are the teacher's coupled pairs; for the 1-rectified flow they are independent.
public func rectifiedFlowLoss(model: Velocity, x0: Tensor, x1: Tensor, t: Tensor) throws -> Tensor {
    let (v, target) = try velocityAndTarget("rectifiedFlowLoss", model, x0, x1, t)
    return try mseLoss(v, target)
}

/// The same loss per item, [N] (mean over each item's elements), to log it per time bin; its
/// mean equals `rectifiedFlowLoss`.
public func rectifiedFlowLossPerItem(model: Velocity, x0: Tensor, x1: Tensor, t: Tensor) throws -> Tensor {
    let (v, target) = try velocityAndTarget("rectifiedFlowLoss", model, x0, x1, t)
    let d = try v - target
    return try d.square().mean(axes: itemAxes(d))
}

/// The 2-RF++ velocity loss (rfpp's "huber" term): per item, w(t) · (sqrt(||d||² + c²) - c) / D
/// with d = v(x_t, t) - (x1 - x0) over the item's D elements and c = 0.00054 · D (rfpp's constant
/// for this form, not the consistency-models 0.00054 · sqrt(D)); averaged over the batch.
/// w(t) = t: rfpp weights by 1 - t in its time direction (t = 1 noise), which is our t (t = 0
/// noise): full weight at the data end, none at the noise end, where rfpp's perceptual term
/// carries the loss. Quadratic for small errors (≈ ||d||² / (2cD)), linear for large ones.
public func weightedPseudoHuberFlowLoss(model: Velocity, x0: Tensor, x1: Tensor, t: Tensor) throws -> Tensor {
    let (v, target) = try velocityAndTarget("weightedPseudoHuberFlowLoss", model, x0, x1, t)
    let d = try v - target
    let dim = Float(d.count / max(d.shape[0], 1))
    let c = 0.00054 * dim
    let sq = try d.square().sum(axes: itemAxes(d))
    // sqrt(s + c²) - c written as s / (sqrt(s + c²) + c): no cancellation when s << c².
    let huber = try sq / ((sq + c * c).sqrt() + c)
    return try (huber * t).mean() / dim
}

/// The velocity losses a flow stage (teacher, reflow) can train with.
public enum FlowLoss: String, CaseIterable, Codable, Sendable {
    /// `rectifiedFlowLoss`: mean squared velocity error (RectifiedFlow, InstaFlow).
    case l2
    /// `weightedPseudoHuberFlowLoss` (2-RF++).
    case weightedHuber = "weighted-huber"

    public func callAsFunction(model: Velocity, x0: Tensor, x1: Tensor, t: Tensor) throws -> Tensor {
        switch self {
        case .l2: return try rectifiedFlowLoss(model: model, x0: x0, x1: x1, t: t)
        case .weightedHuber: return try weightedPseudoHuberFlowLoss(model: model, x0: x0, x1: x1, t: t)
        }
    }
}

// MARK: - Distillation

/// The student's guess of the data point from x_t: x̂1 = x_t + (1 - t) * v(x_t, t). At t = 0
/// this is the one-step generator x̂1 = x0 + v(x0, 0); at the k-step grid points it is one
/// Euler step to t = 1, as in RectifiedFlow's k-step distillation.
public func studentPrediction(model: Velocity, x0: Tensor, x1: Tensor, t: Tensor) throws -> Tensor {
    try checkPair("studentPrediction", x0, x1, t)
    let xt = try interpolate(x0: x0, x1: x1, t: t)
    let v = try evaluate(model, xt, t)
    return try xt + (try broadcastTimes(1 - t, like: xt) * v)
}

/// Distillation loss: `loss(x̂1, x1)` with x̂1 from `studentPrediction`. Sample t with
/// `TimeSampler.t0` for a one-step student or `.discrete(steps: k)` for k steps.
public func distillationLoss(model: Velocity, x0: Tensor, x1: Tensor, t: Tensor,
                             loss: DistillationLoss = .l2) throws -> Tensor {
    let pred = try studentPrediction(model: model, x0: x0, x1: x1, t: t)
    return try loss(pred, x1)
}

/// A distance between a batch of predictions and targets ([N, ...]) reduced to a scalar.
/// The target side carries no gradient (it is data: the 2-RF's or the teacher's images).
public struct DistillationLoss {
    public let name: String
    let compute: (_ prediction: Tensor, _ target: Tensor) throws -> Tensor

    public init(name: String, _ compute: @escaping (_ prediction: Tensor, _ target: Tensor) throws -> Tensor) {
        self.name = name
        self.compute = compute
    }

    public func callAsFunction(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
        guard prediction.shape == target.shape else {
            throw ShapeError(op: "distillationLoss(\(name))", "prediction \(prediction.shape) and target \(target.shape) differ")
        }
        return try compute(prediction, target)
    }

    /// Mean squared error over all elements.
    public static var l2: DistillationLoss { DistillationLoss(name: "l2") { try l2Loss($0, $1) } }

    /// Pseudo-Huber per item, averaged over the batch; `c` nil means 0.00054 * sqrt(d).
    public static func pseudoHuber(c: Float? = nil) -> DistillationLoss {
        DistillationLoss(name: "pseudo-huber") { try pseudoHuberLoss($0, $1, c: c) }
    }

    /// A perceptual loss (LPIPS-like) in the features of `features`, e.g. a frozen evaluator.
    public static func perceptual(name: String = "perceptual",
                                  features: @escaping (Tensor) throws -> [Tensor]) -> DistillationLoss {
        DistillationLoss(name: name) { try perceptualLoss($0, $1, features: features) }
    }

    /// This loss times `w` (to weight terms of a sum).
    public func scaled(_ w: Float) -> DistillationLoss {
        let f = compute
        return DistillationLoss(name: "\(w)*\(name)") { try f($0, $1) * w }
    }

    /// The sum of two losses ("lpips+l2" in RectifiedFlow).
    public static func + (a: DistillationLoss, b: DistillationLoss) -> DistillationLoss {
        let fa = a.compute, fb = b.compute
        return DistillationLoss(name: "\(a.name)+\(b.name)") { p, q in try fa(p, q) + fb(p, q) }
    }
}

/// Mean over all elements of (prediction - target)^2.
public func l2Loss(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
    try mseLoss(prediction, target)
}

/// Pseudo-Huber loss, mean over items of sqrt(||d_i||^2 + c^2) - c with d_i = prediction_i -
/// target_i summed over the item's d elements. Quadratic (||d||^2 / 2c) for small errors, linear
/// for large ones, so outliers pull less than under L2. The default c = 0.00054 * sqrt(d) is
/// Song & Dhariwal, "Improved Techniques for Training Consistency Models" (2023), chosen there
/// for data in [-1, 1] (c = 0.03 for 3x32x32 images).
public func pseudoHuberLoss(_ prediction: Tensor, _ target: Tensor, c: Float? = nil) throws -> Tensor {
    guard prediction.shape == target.shape, prediction.rank >= 1 else {
        throw ShapeError(op: "pseudoHuberLoss", "prediction \(prediction.shape) and target \(target.shape) must match and be batched")
    }
    let dim = prediction.count / max(prediction.shape[0], 1)
    let cc = c ?? 0.00054 * Float(dim).squareRoot()
    guard cc > 0 else { throw FlowError(op: "pseudoHuberLoss", "c must be positive, got \(cc)") }
    let d = try prediction - target
    let sq = try d.square().sum(axes: itemAxes(d))
    // sqrt(s + c^2) - c written as s / (sqrt(s + c^2) + c): no cancellation in Float32 when s << c^2.
    return try (sq / ((sq + cc * cc).sqrt() + cc)).mean()
}

/// Perceptual loss: sum over feature maps of the mean squared difference between the features
/// of prediction and target. The target's features are computed under `noGrad`.
public func perceptualLoss(_ prediction: Tensor, _ target: Tensor,
                           features: (Tensor) throws -> [Tensor]) throws -> Tensor {
    let fp = try features(prediction)
    // Detached too: an extractor may hand back its input (or a view of it) unchanged.
    let ft = try noGrad { try features(target) }.map { $0.detached() }
    guard fp.count == ft.count, !fp.isEmpty else {
        throw ShapeError(op: "perceptualLoss", "feature extractor gave \(fp.count) maps for prediction, \(ft.count) for target")
    }
    var total = Tensor(scalar: 0)
    for (i, (a, b)) in zip(fp, ft).enumerated() {
        guard a.shape == b.shape else {
            throw ShapeError(op: "perceptualLoss", "feature map \(i): \(a.shape) vs \(b.shape)")
        }
        total = try total + l2Loss(a, b)
    }
    return total
}
