import Autograd
import TensorCore

/// Flow-guided distillation's data-free term (SlimFlow, ECCV 2024), for a one-step student: on
/// fresh noise z the student moves z by d = v_s(z, 0) (its image is z + d); the flow that made
/// its pairs (the 2-RF, frozen) checks that move at a random point of the student's own line,
/// x_t = z + t d, and the student is pulled toward the flow's velocity there:
///     loss = mean over items and elements of (d - v_guide(x_t, t))^2,
/// with the guide's side (its input point and output) carrying no gradient. A straight guide
/// whose path from z ends at z + d has v_guide = d all along the line: loss 0.
/// `t` is [N], one time per item (uniform in [0, 1] in training).
public func flowGuidedLoss(student: Velocity, guide: Velocity, z: Tensor, t: Tensor) throws -> Tensor {
    let n = z.shape[0]
    guard t.shape == [n] else { throw ShapeError(op: "flowGuidedLoss", "t must be [\(n)], one time per item, got \(t.shape)") }
    let d = try evaluate(student, z, Tensor.zeros([n]))
    let target = try noGrad { () -> Tensor in
        let xt = try z + (try broadcastTimes(t, like: z) * d.detached())
        return try evaluate(guide, xt, t).detached()
    }
    return try (d - target).square().mean()
}
