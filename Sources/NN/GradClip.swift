import Autograd
import TensorCore

/// Global L2 norm of the gradients (parameters without a gradient are skipped), in Double.
public func gradNorm(_ parameters: [Tensor]) -> Double {
    var total = 0.0
    for p in parameters {
        guard let g = p.grad else { continue }
        total += sumOfSquares(g.storage.ptr, g.count)
    }
    return total.squareRoot()
}

/// Like torch.nn.utils.clip_grad_norm_: scales every gradient by max_norm / (norm + 1e-6)
/// when that is below 1, and returns the norm measured before clipping. Gradients are
/// replaced, not scaled in place: after backward() a gradient tensor may be shared.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Double) -> Double {
    let norm = gradNorm(parameters)
    let coef = maxNorm / (norm + 1e-6)
    guard coef < 1 else { return norm }
    let c = Float(coef)
    for p in parameters {
        guard let g = p.grad else { continue }
        let s = Storage(uninitializedCount: g.count)
        let src = g.storage.ptr, dst = s.ptr
        Parallel.chunks(g.count) { r in VMath.map(r.count, src + r.lowerBound, dst + r.lowerBound) { $0 * c } }
        p.grad = Tensor(shape: g.shape, storage: s)
    }
    return norm
}

/// Sum of squares with SIMD Float accumulators over blocks, combined in Double.
func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0
    var i = 0
    while i < n {
        let end = min(n, i + 4096)
        var acc = SIMD16<Float>(repeating: 0)
        while i + 16 <= end {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            acc = acc.addingProduct(v, v)
            i += 16
        }
        var s = Double(acc.sum())
        while i < end { s += Double(x[i]) * Double(x[i]); i += 1 }
        total += s
    }
    return total
}
