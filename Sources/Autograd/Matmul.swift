import TensorCore

extension Tensor {
    /// Matrix product through sgemm. [m, k] x [k, n] -> [m, n]; with rank > 2 on the left and a
    /// 2-D right operand, leading axes are folded into m (a Linear layer's case); when both have
    /// rank 3 it is a batched product [b, m, k] x [b, k, n] -> [b, m, n].
    public func matmul(_ w: Tensor) throws -> Tensor {
        let a = self
        if a.rank >= 2 && w.rank == 2 {
            let k = a.shape[a.rank - 1]
            guard w.shape[0] == k else {
                throw ShapeError(op: "matmul", "inner dimensions differ: \(a.shape) x \(w.shape)")
            }
            let m = a.count / max(k, 1), n = w.shape[1]
            let outShape = Array(a.shape.dropLast()) + [n]
            let out = Storage(uninitializedCount: m * n)
            BLAS.sgemm(m: m, n: n, k: k, a: a.storage.ptr, lda: k, b: w.storage.ptr, ldb: n, c: out.ptr, ldc: n)
            return Tensor.result("matmul", shape: outShape, storage: out, inputs: [a, w]) { g in
                var ga: Tensor? = nil, gw: Tensor? = nil
                if a.requiresGrad {  // dA = dC * W^T
                    let s = Storage(uninitializedCount: m * k)
                    BLAS.sgemm(transB: true, m: m, n: k, k: n, a: g.storage.ptr, lda: n, b: w.storage.ptr, ldb: n, c: s.ptr, ldc: k)
                    ga = Tensor(shape: a.shape, storage: s)
                }
                if w.requiresGrad {  // dW = A^T * dC
                    let s = Storage(uninitializedCount: k * n)
                    BLAS.sgemm(transA: true, m: k, n: n, k: m, a: a.storage.ptr, lda: k, b: g.storage.ptr, ldb: n, c: s.ptr, ldc: n)
                    gw = Tensor(shape: w.shape, storage: s)
                }
                return [ga, gw]
            }
        }
        if a.rank == 3 && w.rank == 3 { return try bmm(w) }
        throw ShapeError(op: "matmul", "unsupported ranks: \(a.shape) x \(w.shape) (need [.., k] x [k, n] or [b, m, k] x [b, k, n])")
    }

    /// Batched matrix product [b, m, k] x [b, k, n] -> [b, m, n] (optionally transposing the
    /// right operand: [b, n, k]^T), one sgemm per batch entry.
    public func bmm(_ other: Tensor, transposeRight: Bool = false) throws -> Tensor {
        let a = self, w = other
        guard a.rank == 3, w.rank == 3, a.shape[0] == w.shape[0] else {
            throw ShapeError(op: "bmm", "need [b, m, k] and [b, k, n] with equal b, got \(a.shape) and \(w.shape)")
        }
        let bsz = a.shape[0], m = a.shape[1], k = a.shape[2]
        let kw = transposeRight ? w.shape[2] : w.shape[1]
        let n = transposeRight ? w.shape[1] : w.shape[2]
        guard kw == k else {
            throw ShapeError(op: "bmm", "inner dimensions differ: \(a.shape) x \(w.shape)\(transposeRight ? "^T" : "")")
        }
        let out = Storage(uninitializedCount: bsz * m * n)
        let tb = transposeRight
        let work = m * n * k
        Parallel.items(bsz, costPerItem: work) { i in  // one item per thread (many small products)
            BLAS.sgemm(transB: tb, m: m, n: n, k: k, a: a.storage.ptr + i * m * k, lda: k,
                       b: w.storage.ptr + i * k * n, ldb: tb ? k : n, c: out.ptr + i * m * n, ldc: n)
        }
        return Tensor.result("bmm", shape: [bsz, m, n], storage: out, inputs: [a, w]) { g in
            var ga: Tensor? = nil, gw: Tensor? = nil
            if a.requiresGrad {  // dA = dC * B^T   (B = W or W^T)
                let s = Storage(uninitializedCount: bsz * m * k)
                Parallel.items(bsz, costPerItem: work) { i in
                    BLAS.sgemm(transB: !tb, m: m, n: k, k: n, a: g.storage.ptr + i * m * n, lda: n,
                               b: w.storage.ptr + i * k * n, ldb: tb ? k : n, c: s.ptr + i * m * k, ldc: k)
                }
                ga = Tensor(shape: a.shape, storage: s)
            }
            if w.requiresGrad {
                let s = Storage(uninitializedCount: bsz * k * n)
                Parallel.items(bsz, costPerItem: work) { i in
                    if tb {  // W is [n, k]: dW = dC^T * A
                        BLAS.sgemm(transA: true, m: n, n: k, k: m, a: g.storage.ptr + i * m * n, lda: n,
                                   b: a.storage.ptr + i * m * k, ldb: k, c: s.ptr + i * k * n, ldc: k)
                    } else {  // W is [k, n]: dW = A^T * dC
                        BLAS.sgemm(transA: true, m: k, n: n, k: m, a: a.storage.ptr + i * m * k, lda: k,
                                   b: g.storage.ptr + i * m * n, ldb: n, c: s.ptr + i * k * n, ldc: n)
                    }
                }
                gw = Tensor(shape: w.shape, storage: s)
            }
            return [ga, gw]
        }
    }
}
