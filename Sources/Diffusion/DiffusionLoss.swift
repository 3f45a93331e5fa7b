import Foundation
import Autograd
import Flow
import TensorCore

// The diffusion teacher's training objective (DDPM's "simple" loss): draw a step s uniformly
// from {0, ..., T-1}, noise the data to x_s = alpha_s x_data + sigma_s eps and regress the
// network's output on eps (epsilon prediction) or on v = alpha_s eps - sigma_s x_data
// (v prediction), mean squared error over all elements.

extension DiffusionTeacher {
    /// n steps drawn uniformly from {0, ..., T-1}, one draw of `rng` each.
    public func sampleSteps(_ n: Int, rng: inout RNG) -> [Int] {
        (0..<n).map { _ in rng.int(below: schedule.trainSteps) }
    }

    /// The noised inputs and regression targets for items with clean data `data`, noise `noise`
    /// (both [N, ...]) at steps `steps` ([N] integers in 0..<T). No graph: both are constants.
    public func noisedAndTarget(data: Tensor, noise: Tensor, steps: [Int]) throws -> (x: Tensor, target: Tensor) {
        guard data.shape == noise.shape, data.rank >= 1 else {
            throw ShapeError(op: "diffusionLoss", "noise \(noise.shape) and data \(data.shape) must have the same batched shape")
        }
        let n = data.shape[0]
        guard steps.count == n else { throw ShapeError(op: "diffusionLoss", "\(steps.count) steps for a batch of \(n)") }
        if let bad = steps.first(where: { $0 < 0 || $0 >= schedule.trainSteps }) {
            throw DiffusionError("diffusionLoss: step \(bad) is outside 0..<\(schedule.trainSteps)")
        }
        let size = data.count / max(n, 1)
        let x = Storage(uninitializedCount: data.count), y = Storage(uninitializedCount: data.count)
        let d = data.storage.ptr, e = noise.storage.ptr
        for i in 0..<n {
            // Coefficients in Double, applied in Float (as the samplers do).
            let a = Float(schedule.alpha(steps[i])), s = Float(schedule.sigma(steps[i]))
            let (tx, te): (Float, Float) = prediction == .epsilon ? (0, 1) : (-s, a)
            for j in (i * size)..<((i + 1) * size) {
                x.ptr[j] = a * d[j] + s * e[j]
                y.ptr[j] = tx * d[j] + te * e[j]
            }
        }
        return (Tensor(shape: data.shape, storage: x), Tensor(shape: data.shape, storage: y))
    }

    /// The loss for one batch: mean over all elements of (net(x_s, 1 - s/T) - target)^2, where
    /// `net` is the network in flow time (see the type's note on the time input). `noise` is
    /// eps, `data` the clean images (the trainer's x0 and x1).
    public func loss(net: @escaping Velocity, data: Tensor, noise: Tensor, steps: [Int]) throws -> Tensor {
        let (x, target) = try noisedAndTarget(data: data, noise: noise, steps: steps)
        let s = Tensor(steps.map(Float.init), shape: [steps.count])
        let out = try model(net)(x, s)
        guard out.shape == x.shape else {
            throw ShapeError(op: "diffusionLoss", "the network returned shape \(out.shape) for input of shape \(x.shape)")
        }
        return try mseLoss(out, target)
    }
}
