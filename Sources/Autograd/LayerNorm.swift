import TensorCore

// Layer normalisation over the last axis, fused. Per row of length D, with
// xhat = (x - mean) * rstd, y = xhat * w + b and dxhat = dy * w:
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
//   dw = sum_rows dy * xhat,   db = sum_rows dy
// Rows run in parallel; dw and db are summed per thread, then across threads.

extension Tensor {
    /// Normalises each last-axis row of x [..., D] (biased variance, like
    /// torch.nn.functional.layer_norm), then applies the optional weight [D] and bias [D].
    public func layerNorm(weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
        let x = self
        guard x.rank >= 1 else {
            throw ShapeError(op: "layerNorm", "input must have at least one axis, got shape \(x.shape)")
        }
        let d = x.shape[x.rank - 1]
        if let weight, weight.shape != [d] {
            throw ShapeError(op: "layerNorm", "weight must have shape [\(d)] for input \(x.shape), got \(weight.shape)")
        }
        if let bias, bias.shape != [d] {
            throw ShapeError(op: "layerNorm", "bias must have shape [\(d)] for input \(x.shape), got \(bias.shape)")
        }
        let rows = d == 0 ? 0 : x.count / d
        let out = Storage(uninitializedCount: x.count)
        let meanS = Storage(uninitializedCount: rows), rstdS = Storage(uninitializedCount: rows)
        let xp = x.storage.ptr, yp = out.ptr, mp = meanS.ptr, rp = rstdS.ptr
        let wp = weight?.storage.ptr, bp = bias?.storage.ptr
        typealias V = SIMD16<Float>

        Parallel.chunks(rows, grain: max(1, Parallel.grain / max(d, 1))) { range in
            for r in range {
                let row = r * d
                let (mean, rstd) = NormKernels.moments(xp + row, d, eps: eps)
                mp[r] = mean; rp[r] = rstd
                let vm = V(repeating: mean), vr = V(repeating: rstd)
                switch (wp, bp) {
                case let (w?, b?):
                    LayerNormKernels.zip3(d, xp + row, w, b, yp + row) { xv, wv, bv in bv.addingProduct((xv - vm) * vr, wv) }
                case let (w?, nil):
                    NormKernels.zip(d, xp + row, w, yp + row) { xv, wv in (xv - vm) * vr * wv }
                case let (nil, b?):
                    NormKernels.zip(d, xp + row, b, yp + row) { xv, bv in bv.addingProduct(xv - vm, vr) }
                case (nil, nil):
                    VMath.map(d, xp + row, yp + row) { ($0 - vm) * vr }
                }
            }
        }

        let inputs = [x] + (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? [])
        return Tensor.result("layerNorm", shape: x.shape, storage: out, inputs: inputs) { g in
            let gp = g.storage.ptr
            // The saved statistics live as long as the pullback, through these captures.
            let mp = meanS.ptr, rp = rstdS.ptr
            let needX = x.requiresGrad
            let needW = weight?.requiresGrad ?? false, needB = bias?.requiresGrad ?? false
            let gx = needX ? Storage(uninitializedCount: x.count) : nil
            let dxp = gx?.ptr
            // Split rows into one range per thread so each owns a dw/db partial sum.
            let threads = Runtime.threads
            let parts = threads <= 1 || rows * d <= Parallel.grain ? 1 : min(threads, rows)
            let per = (rows + parts - 1) / max(parts, 1)
            let dwParts = needW ? Storage(zeros: parts * d) : nil
            let dbParts = needB ? Storage(zeros: parts * d) : nil
            let invD = 1 / Float(max(d, 1))

            Parallel.items(parts, costPerItem: Parallel.grain) { part in
                let dwAcc = dwParts.map { $0.ptr + part * d }, dbAcc = dbParts.map { $0.ptr + part * d }
                for r in min(rows, part * per)..<min(rows, (part + 1) * per) {
                    let row = r * d
                    let mean = mp[r], rstd = rp[r]
                    let vm = V(repeating: mean), vr = V(repeating: rstd)
                    if let dbAcc { LayerNormKernels.accumulate2(d, gp + row, gp + row, into: dbAcc) { dy, _ in dy } }
                    if let dwAcc {
                        LayerNormKernels.accumulate2(d, gp + row, xp + row, into: dwAcc) { dy, xv in dy * ((xv - vm) * vr) }
                    }
                    guard let dxp else { continue }
                    // c1 = mean(dxhat), c2 = mean(dxhat * xhat)
                    var a = V(repeating: 0), b = V(repeating: 0)
                    var i = 0
                    while i < d {
                        let m = min(16, d - i)
                        var dy = V(repeating: 0), xv = vm, wv = V(repeating: 1)
                        if m == 16 {
                            dy = UnsafeRawPointer(gp + row + i).loadUnaligned(as: V.self)
                            xv = UnsafeRawPointer(xp + row + i).loadUnaligned(as: V.self)
                            if let wp { wv = UnsafeRawPointer(wp + i).loadUnaligned(as: V.self) }
                        } else {
                            for j in 0..<m { dy[j] = gp[row + i + j]; xv[j] = xp[row + i + j]; if let wp { wv[j] = wp[i + j] } }
                        }
                        let dxh = dy * wv
                        a += dxh; b = b.addingProduct(dxh, (xv - vm) * vr)
                        i += 16
                    }
                    let c1 = V(repeating: a.sum() * invD), c2 = V(repeating: b.sum() * invD)
                    if let wp {
                        LayerNormKernels.zip3(d, gp + row, xp + row, wp, dxp + row) { dy, xv, wv in
                            let xh = (xv - vm) * vr
                            return vr * (dy * wv - c1 - xh * c2)
                        }
                    } else {
                        NormKernels.zip(d, gp + row, xp + row, dxp + row) { dy, xv in
                            let xh = (xv - vm) * vr
                            return vr * (dy - c1 - xh * c2)
                        }
                    }
                }
            }

            var grads: [Tensor?] = [gx.map { Tensor(shape: x.shape, storage: $0) }]
            if weight != nil { grads.append(dwParts.map { Tensor(shape: [d], storage: ConvKernels.sumParts($0, parts: parts, size: d)) }) }
            if bias != nil { grads.append(dbParts.map { Tensor(shape: [d], storage: ConvKernels.sumParts($0, parts: parts, size: d)) }) }
            return grads
        }
    }
}

enum LayerNormKernels {
    typealias V = SIMD16<Float>

    /// out[i] = f(a[i], b[i], c[i]) for n floats.
    @inline(__always)
    static func zip3(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
                     _ out: UnsafeMutablePointer<Float>, _ f: (V, V, V) -> V) {
        var i = 0
        while i + 16 <= n {
            let r = f(UnsafeRawPointer(a + i).loadUnaligned(as: V.self), UnsafeRawPointer(b + i).loadUnaligned(as: V.self),
                      UnsafeRawPointer(c + i).loadUnaligned(as: V.self))
            UnsafeMutableRawPointer(out + i).storeBytes(of: r, as: V.self)
            i += 16
        }
        if i < n {
            var va = V(repeating: 0), vb = V(repeating: 0), vc = V(repeating: 0)
            for j in 0..<(n - i) { va[j] = a[i + j]; vb[j] = b[i + j]; vc[j] = c[i + j] }
            let r = f(va, vb, vc)
            for j in 0..<(n - i) { out[i + j] = r[j] }
        }
    }

    /// acc[i] += f(a[i], b[i]) for n floats.
    @inline(__always)
    static func accumulate2(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                            into acc: UnsafeMutablePointer<Float>, _ f: (V, V) -> V) {
        var i = 0
        while i + 16 <= n {
            let r = f(UnsafeRawPointer(a + i).loadUnaligned(as: V.self), UnsafeRawPointer(b + i).loadUnaligned(as: V.self))
            let old = UnsafeRawPointer(acc + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(acc + i).storeBytes(of: old + r, as: V.self)
            i += 16
        }
        if i < n {
            var va = V(repeating: 0), vb = V(repeating: 0)
            for j in 0..<(n - i) { va[j] = a[i + j]; vb[j] = b[i + j] }
            let r = f(va, vb)
            for j in 0..<(n - i) { acc[i + j] += r[j] }
        }
    }
}
