import TensorCore

extension Tensor {
    /// x W^T + b over the last axis, as one op (torch.nn.functional.linear): x [..., in],
    /// weight [out, in], bias [out] or nil -> [..., out].
    ///
    /// The bias is written into the output first and the product accumulates onto it (sgemm with
    /// beta 1). A product followed by a broadcast add swept the output three times: OpenBLAS's own
    /// pass zeroing C for beta 0, the product, and the add; here the bias rows replace the zeroing
    /// and the add disappears (MLP training step: see README, "Engine speed against PyTorch").
    public func linear(weight: Tensor, bias: Tensor?) throws -> Tensor {
        let x = self
        guard weight.rank == 2 else {
            throw ShapeError(op: "linear", "weight must be [out, in], got \(weight.shape)")
        }
        let n = weight.shape[0], k = weight.shape[1]
        guard x.rank >= 1, x.shape[x.rank - 1] == k else {
            throw ShapeError(op: "linear", "input \(x.shape) must end in \(k) features (weight \(weight.shape))")
        }
        if let bias, bias.shape != [n] {
            throw ShapeError(op: "linear", "bias must be [\(n)] for weight \(weight.shape), got \(bias.shape)")
        }
        let m = x.count / max(k, 1)
        let out = Storage(uninitializedCount: m * n)
        if let bias {
            let b = bias.storage.ptr, o = out.ptr
            Parallel.chunks(m, grain: max(1, Parallel.grain / max(n, 1))) { rows in
                for i in rows { (o + i * n).update(from: b, count: n) }
            }
        }
        BLAS.sgemm(transB: true, m: m, n: n, k: k, a: x.storage.ptr, lda: k, b: weight.storage.ptr, ldb: k,
                   beta: bias == nil ? 0 : 1, c: out.ptr, ldc: n)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return Tensor.result("linear", shape: Array(x.shape.dropLast()) + [n], storage: out, inputs: inputs) { g in
            var grads: [Tensor?] = [nil, nil]
            let gx = x.requiresGrad ? Storage(uninitializedCount: m * k) : nil
            let gw = weight.requiresGrad ? Storage(uninitializedCount: n * k) : nil
            // dX and dW cost the same m·n·k multiply-adds. On two threads each runs whole on its own
            // thread: splitting each product over both packs its shared operand twice.
            let pair = gx != nil && gw != nil && Runtime.threads == 2 && m * n * k >= BLAS.parallelWork
            func product(_ which: Int) {
                if which == 0, let gx {  // dX = dY W: [m, out] x [out, in]
                    BLAS.sgemm(m: m, n: k, k: n, a: g.storage.ptr, lda: n, b: weight.storage.ptr, ldb: k,
                               c: gx.ptr, ldc: k, oneThread: pair)
                } else if which == 1, let gw {  // dW = dY^T X: [out, m] x [m, in]
                    BLAS.sgemm(transA: true, m: n, n: k, k: m, a: g.storage.ptr, lda: n, b: x.storage.ptr, ldb: k,
                               c: gw.ptr, ldc: k, oneThread: pair)
                }
            }
            if pair { ThreadPool.perform(2, product) } else { product(0); product(1) }
            grads[0] = gx.map { Tensor(shape: x.shape, storage: $0) }
            grads[1] = gw.map { Tensor(shape: weight.shape, storage: $0) }
            if let bias {  // db = the column sums of dY
                grads.append(bias.requiresGrad ? K.unbroadcast(Tensor(shape: [m, n], storage: g.storage), to: [n]) : nil)
            }
            return grads
        }
    }
}
