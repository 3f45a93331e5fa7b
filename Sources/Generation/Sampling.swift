import Foundation
import Autograd
import Flow
import Models
import TensorCore

/// v(x, t) for fixed prompts under classifier-free guidance w: v = v(empty) + w (v(text) - v(empty)).
/// The prompts are encoded once; with w != 1 conditional and unconditional rows share one batch
/// (`guidedBatched`).
public func guidedVelocity(_ model: FlowModel, prompts: [String], guidance w: Float) throws -> Velocity {
    let n = prompts.count
    if w == 1 {
        let text = try model.encode(prompts)
        return { x, t in try model.velocity(x, t: t, text: text) }
    }
    let text = try model.encode(prompts + [String](repeating: "", count: n))
    return guidedBatched({ x2, t2 in try model.velocity(x2, t: t2, text: text) }, scale: w)
}

/// Standard normal noise for items [first, first + count): item i's noise depends only on
/// (seed, i), whatever the batch it is drawn in.
public func itemNoise(seed: UInt64, first: Int, count: Int, itemShape: [Int]) -> Tensor {
    let size = itemShape.reduce(1, *)
    let s = Storage(uninitializedCount: count * size)
    let p = Philox(seed: seed)
    for i in 0..<count { p.fillNormal(s.ptr + i * size, count: size, stream: UInt64(first + i)) }
    return Tensor(shape: [count] + itemShape, storage: s)
}

/// Solves the model's ODE from x0 for the prompts (no gradients), in batches. `interrupt` runs
/// before each function evaluation; what it throws ends the solve there (a server's time limit).
public func generate(_ model: FlowModel, x0: Tensor, prompts: [String], solver: ODESolver, guidance: Float,
                     batchSize: Int = 256, interrupt: (() throws -> Void)? = nil) throws -> (images: Tensor, nfe: Int) {
    try solveInBatches(model, x0: x0, prompts: prompts, guidance: guidance, batchSize: batchSize, op: "generate",
                       interrupt: interrupt) { v, x in
        let r = try solver.solve(v, x0: x, record: false)
        return (r.x, r.nfe)
    }
}

/// The batching every sampler shares: the model in eval mode, no gradients, each batch's
/// guided network (wrapped by `interrupt`) handed to `solve` with its start; the outputs
/// concatenated, NFE the largest of any batch.
func solveInBatches(_ model: FlowModel, x0: Tensor, prompts: [String], guidance: Float, batchSize: Int, op: String,
                    interrupt: (() throws -> Void)?, _ solve: (@escaping Velocity, Tensor) throws -> (x: Tensor, nfe: Int))
    throws -> (images: Tensor, nfe: Int) {
    let n = x0.shape[0]
    guard prompts.count == n else {
        throw ShapeError(op: op, "\(prompts.count) prompts for \(n) noise items")
    }
    model.eval()
    defer { model.train() }
    return try noGrad {
        var parts: [Tensor] = []
        var nfe = 0
        var lo = 0
        while lo < n {
            let hi = min(n, lo + batchSize)
            var v = try guidedVelocity(model, prompts: Array(prompts[lo..<hi]), guidance: guidance)
            if let interrupt {
                let inner = v
                v = { x, t in try interrupt(); return try inner(x, t) }
            }
            let r = try solve(v, x0.slice(axis: 0, range: lo..<hi))
            parts.append(r.x)
            nfe = max(nfe, r.nfe)
            lo = hi
        }
        return (parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 0), nfe)
    }
}
