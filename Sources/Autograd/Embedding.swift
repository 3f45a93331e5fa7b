import TensorCore

extension Tensor {
    // MARK: embedding
    /// Row lookup: weight [V, D], `indices` (row-major over `indexShape`) -> indexShape + [D].
    /// The pullback scatter-adds each output row into the gradient of its weight row.
    public static func embedding(_ weight: Tensor, indices: [Int], indexShape: [Int]) throws -> Tensor {
        guard weight.rank == 2 else {
            throw ShapeError(op: "embedding", "weight must be [V, D], got \(weight.shape)")
        }
        guard indexShape.allSatisfy({ $0 >= 0 }), ShapeUtil.count(indexShape) == indices.count else {
            throw ShapeError(op: "embedding", "\(indices.count) indices do not fill index shape \(indexShape)")
        }
        let v = weight.shape[0], d = weight.shape[1]
        if let pos = indices.firstIndex(where: { $0 < 0 || $0 >= v }) {
            throw ShapeError(op: "embedding", "index \(indices[pos]) at position \(pos) is out of range for \(v) rows (weight \(weight.shape))")
        }
        let n = indices.count
        let out = Storage(uninitializedCount: n * d)
        let src = weight.storage.ptr, dst = out.ptr
        indices.withUnsafeBufferPointer { idx in
            Parallel.chunks(n, grain: max(1, Parallel.grain / max(d, 1))) { r in
                for i in r { (dst + i * d).update(from: src + idx[i] * d, count: d) }
            }
        }
        return Tensor.result("embedding", shape: indexShape + [d], storage: out, inputs: [weight]) { g in
            let gw = Storage(zeros: v * d)
            let gp = g.storage.ptr, wp = gw.ptr
            // Serial over indices (repeated indices add into the same row), SIMD along D.
            for (i, row) in indices.enumerated() {
                let o = wp + row * d, s = gp + i * d
                var j = 0
                while j + 16 <= d {
                    let a = UnsafeRawPointer(o + j).loadUnaligned(as: SIMD16<Float>.self)
                    let b = UnsafeRawPointer(s + j).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(o + j).storeBytes(of: a + b, as: SIMD16<Float>.self)
                    j += 16
                }
                while j < d { o[j] += s[j]; j += 1 }
            }
            return [Tensor(shape: weight.shape, storage: gw)]
        }
    }
}
