import TensorCore

extension Tensor {
    // MARK: dropout
    /// Inverted dropout: in training each element is kept with probability 1 - p and scaled by
    /// 1 / (1 - p), so evaluation is the identity. The keep mask comes from one `rng.uniform`
    /// draw (element i kept when u_i >= p), so a given rng state always drops the same elements.
    /// p must lie in [0, 1] (a programming error otherwise); p = 1 drops everything.
    public func dropout(p: Float, rng: inout RNG, training: Bool) -> Tensor {
        precondition(p >= 0 && p <= 1, "dropout: p = \(p) is outside [0, 1]")
        if !training || p == 0 { return self }
        let x = self
        // The mask buffer first holds the uniforms, then the per-element factor (0 or 1/(1-p)).
        let mask = Storage(uninitializedCount: x.count)
        rng.uniform(mask.ptr, count: mask.count)
        let scale: Float = p < 1 ? 1 / (1 - p) : 0
        let pm = mask.ptr
        Parallel.chunks(mask.count) { r in
            VMath.map(r.count, pm + r.lowerBound, pm + r.lowerBound) { u in
                SIMD16<Float>(repeating: 0).replacing(with: scale, where: u .>= p)
            }
        }
        let y = K.zip(x.storage, mask) { $0 * $1 }
        return Tensor.result("dropout", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, mask) { $0 * $1 })]
        }
    }
}
