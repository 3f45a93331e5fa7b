import Autograd
import Distributed
import TensorCore

// Data parallelism: each rank computes the loss of its slice of the global batch (the mean over
// the slice) and its gradient; `averageGradients` turns those into the gradient of the mean
// over the global batch, the same on every rank, so that every rank applies the same update.

/// Sums `weight` x each rank's gradients over all ranks, in one flat buffer (one allreduce per
/// step: the models here are small, so the latency of many messages would cost more than the
/// overlap with backward could save). With `weight` = slice size / global batch size the result
/// is the global batch's mean gradient. `extra` values (the loss) are weighted and summed alongside.
///
/// A parameter without a gradient on every rank keeps none (AdamW then skips it, as in a
/// single process); one with a gradient on some rank gets the sum, zeros counting for the others.
/// Gradients are replaced, not changed in place: after backward() a gradient may be shared.
/// Returns the bytes each rank contributed to the allreduce.
@discardableResult
public func averageGradients(_ params: [Tensor], weight: Float, extra: inout [Float], comm: Communicator) -> Int {
    guard comm.isDistributed else { return 0 }
    // Layout: gradients, then one presence flag per parameter, then the extra values.
    let gradCount = params.reduce(0) { $0 + $1.count }
    let total = gradCount + params.count + extra.count
    let buf = Storage(uninitializedCount: total)
    var at = 0
    for (k, p) in params.enumerated() {
        if let g = p.grad {
            let src = g.storage.ptr
            for i in 0..<g.count { buf.ptr[at + i] = weight * src[i] }
            buf.ptr[gradCount + k] = 1
        } else {
            (buf.ptr + at).initialize(repeating: 0, count: p.count)
            buf.ptr[gradCount + k] = 0
        }
        at += p.count
    }
    for (i, v) in extra.enumerated() { buf.ptr[gradCount + params.count + i] = weight * v }
    comm.allreduceSum(buf.ptr, count: total)
    at = 0
    for (k, p) in params.enumerated() {
        if buf.ptr[gradCount + k] > 0 {
            let s = Storage(uninitializedCount: p.count)
            s.ptr.update(from: buf.ptr + at, count: p.count)
            p.grad = Tensor(shape: p.shape, storage: s)
        } else {
            p.grad = nil
        }
        at += p.count
    }
    for i in extra.indices { extra[i] = buf.ptr[gradCount + params.count + i] }
    return total * MemoryLayout<Float>.size
}

/// Rows `slice` of a [N, ...] tensor, copied.
func rows(_ t: Tensor, _ slice: Range<Int>) -> Tensor {
    let n = t.shape.first ?? 0
    guard slice != 0..<n else { return t }
    let item = n == 0 ? 0 : t.count / n
    let s = Storage(uninitializedCount: slice.count * item)
    s.ptr.update(from: t.storage.ptr + slice.lowerBound * item, count: slice.count * item)
    return Tensor(shape: [slice.count] + t.shape.dropFirst(), storage: s)
}
