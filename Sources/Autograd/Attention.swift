import TensorCore

// MARK: scaledDotProductAttention
/// softmax(q k^T / sqrt(d) + mask) v for q [B, Lq, d], k [B, Lk, d], v [B, Lk, dv] -> [B, Lq, dv].
/// `mask` is additive and must broadcast to [B, Lq, Lk] (e.g. 0 / -1e9 per key for padding).
/// Built from recorded ops (bmm, scale, add, softmax), so its gradient needs no pullback here.
public func scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor? = nil) throws -> Tensor {
    guard q.rank == 3, k.rank == 3, v.rank == 3 else {
        throw ShapeError(op: "attention", "need q [B, Lq, d], k [B, Lk, d], v [B, Lk, dv]; got \(q.shape), \(k.shape), \(v.shape)")
    }
    guard q.shape[0] == k.shape[0], k.shape[0] == v.shape[0], q.shape[2] == k.shape[2], k.shape[1] == v.shape[1] else {
        throw ShapeError(op: "attention", "incompatible q \(q.shape), k \(k.shape), v \(v.shape) (need q [B, Lq, d], k [B, Lk, d], v [B, Lk, dv])")
    }
    let scoresShape = [q.shape[0], q.shape[1], k.shape[1]]
    var scores = try q.bmm(k, transposeRight: true) * (1 / Float(q.shape[2]).squareRoot())
    if let mask {
        guard ShapeUtil.broadcast(mask.shape, scoresShape) == scoresShape else {
            throw ShapeError(op: "attention", "mask \(mask.shape) does not broadcast to scores \(scoresShape)")
        }
        scores = try scores + mask
    }
    return try scores.softmax(axis: -1).bmm(v)
}
