import TensorCore
#if canImport(Glibc)
import Glibc
#endif

// Softmax and log-softmax over any axis, numerically stable (max subtracted first).
// The tensor is viewed as [outer, n, inner] with the reduced axis in the middle. When it is
// the last axis (inner == 1) each row is contiguous and rows run in parallel; otherwise 16
// neighbouring inner positions form one SIMD vector and the reduction walks n with stride inner.

extension Tensor {
    // MARK: softmax
    public func softmax(axis: Int = -1) throws -> Tensor {
        let x = self
        let (outer, n, inner) = try Tensor.axisSplit("softmax", axis, shape: x.shape)
        let y = Storage(uninitializedCount: x.count)
        K.softmaxForward(x.storage.ptr, y.ptr, outer: outer, n: n, inner: inner, log: false)
        return Tensor.result("softmax", shape: x.shape, storage: y, inputs: [x]) { g in
            // dx = y * (g - sum(g * y))
            let gx = Storage(uninitializedCount: x.count)
            K.softmaxBackward(g.storage.ptr, y.ptr, gx.ptr, outer: outer, n: n, inner: inner, log: false)
            return [Tensor(shape: x.shape, storage: gx)]
        }
    }

    // MARK: logSoftmax
    public func logSoftmax(axis: Int = -1) throws -> Tensor {
        let x = self
        let (outer, n, inner) = try Tensor.axisSplit("logSoftmax", axis, shape: x.shape)
        let y = Storage(uninitializedCount: x.count)
        K.softmaxForward(x.storage.ptr, y.ptr, outer: outer, n: n, inner: inner, log: true)
        return Tensor.result("log_softmax", shape: x.shape, storage: y, inputs: [x]) { g in
            // dx = g - exp(y) * sum(g)
            let gx = Storage(uninitializedCount: x.count)
            K.softmaxBackward(g.storage.ptr, y.ptr, gx.ptr, outer: outer, n: n, inner: inner, log: true)
            return [Tensor(shape: x.shape, storage: gx)]
        }
    }

    /// (outer, n, inner) sizes around one axis; throws naming the op, axis and shape.
    static func axisSplit(_ op: String, _ axis: Int, shape: [Int]) throws -> (Int, Int, Int) {
        guard let a = ShapeUtil.axis(axis, rank: shape.count) else {
            throw ShapeError(op: op, "axis \(axis) is out of range for shape \(shape)")
        }
        return (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
    }
}

extension K {
    /// Loads `w` (<= 16) floats at stride 1, padding the other lanes with `pad`.
    @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ w: Int, pad: Float) -> V {
        if w == 16 { return UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        var v = V(repeating: pad)
        for j in 0..<w { v[j] = p[j] }
        return v
    }

    @inline(__always)
    static func storePartial(_ v: V, _ p: UnsafeMutablePointer<Float>, _ w: Int) {
        if w == 16 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self); return }
        for j in 0..<w { p[j] = v[j] }
    }

    static func softmaxForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                               outer: Int, n: Int, inner: Int, log: Bool) {
        if n == 0 || outer * inner == 0 { return }
        if inner == 1 {
            Parallel.items(outer, costPerItem: 4 * n) { r in
                softmaxRow(x + r * n, y + r * n, n, log: log)
            }
            return
        }
        let blocks = (inner + 15) / 16
        Parallel.items(outer * blocks, costPerItem: 4 * n * 16) { item in
            let o = item / blocks, b = item % blocks
            let w = min(16, inner - b * 16)
            let xs = x + o * n * inner + b * 16, ys = y + o * n * inner + b * 16
            var m = V(repeating: -.infinity)
            for k in 0..<n { m = VMathExtra.max(m, loadPartial(xs + k * inner, w, pad: 0)) }
            var s = V(repeating: 0), c = V(repeating: 0)  // Kahan: long columns lose digits otherwise
            for k in 0..<n {
                let e = VMathExtra.exp(loadPartial(xs + k * inner, w, pad: 0) - m)
                let y = e - c, t = s + y
                c = (t - s) - y
                s = t
                if !log { storePartial(e, ys + k * inner, w) }
            }
            if log {
                // (x - m) - log s: forming m + log s first would round at the scale of m.
                let ls = VMathExtra.log(s)
                for k in 0..<n { storePartial((loadPartial(xs + k * inner, w, pad: 0) - m) - ls, ys + k * inner, w) }
            } else {
                let inv = 1 / s
                for k in 0..<n { storePartial(loadPartial(ys + k * inner, w, pad: 0) * inv, ys + k * inner, w) }
            }
        }
    }

    /// One contiguous row: max, exp(x - max) with its sum, then scale (or subtract log-sum).
    @inline(__always)
    static func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, log: Bool) {
        var mv = V(repeating: -.infinity)
        var i = 0
        while i < n { mv = VMathExtra.max(mv, loadPartial(x + i, Swift.min(16, n - i), pad: -.infinity)); i += 16 }
        let m = mv.max()
        let vm = V(repeating: m)
        var sv = V(repeating: 0), c = V(repeating: 0)  // Kahan, per lane
        i = 0
        while i < n {
            let w = min(16, n - i)
            let e = VMathExtra.exp(loadPartial(x + i, w, pad: -.infinity) - vm)  // pad lanes -> 0
            let yv = e - c, t = sv + yv
            c = (t - sv) - yv
            sv = t
            if !log { storePartial(e, y + i, w) }
            i += 16
        }
        var sd = 0.0
        for j in 0..<16 { sd += Double(sv[j]) }
        let s = Float(sd)
        if log {
            // (x - m) - log s: forming m + log s first would round at the scale of m.
            let ls = V(repeating: Float(Glibc.log(sd)))
            i = 0
            while i < n { let w = min(16, n - i); storePartial((loadPartial(x + i, w, pad: 0) - vm) - ls, y + i, w); i += 16 }
        } else {
            let inv = V(repeating: 1 / s)
            i = 0
            while i < n { let w = min(16, n - i); storePartial(loadPartial(y + i, w, pad: 0) * inv, y + i, w); i += 16 }
        }
    }

    /// softmax: dx = y (g - <g, y>);  log-softmax: dx = g - exp(y) sum(g).
    static func softmaxBackward(_ g: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                outer: Int, n: Int, inner: Int, log: Bool) {
        if n == 0 || outer * inner == 0 { return }
        if inner == 1 {
            Parallel.items(outer, costPerItem: 3 * n) { r in
                let gr = g + r * n, yr = y + r * n, dr = dx + r * n
                var acc = V(repeating: 0)
                var i = 0
                while i < n {
                    let w = min(16, n - i)
                    let gv = loadPartial(gr + i, w, pad: 0)
                    acc = log ? acc + gv : acc.addingProduct(gv, loadPartial(yr + i, w, pad: 0))
                    i += 16
                }
                let s = V(repeating: acc.sum())
                i = 0
                while i < n {
                    let w = min(16, n - i)
                    let gv = loadPartial(gr + i, w, pad: 0), yv = loadPartial(yr + i, w, pad: 0)
                    storePartial(log ? gv - K.expFull(yv) * s : yv * (gv - s), dr + i, w)
                    i += 16
                }
            }
            return
        }
        let blocks = (inner + 15) / 16
        Parallel.items(outer * blocks, costPerItem: 3 * n * 16) { item in
            let o = item / blocks, b = item % blocks
            let w = min(16, inner - b * 16)
            let off = o * n * inner + b * 16
            var s = V(repeating: 0)
            for k in 0..<n {
                let gv = loadPartial(g + off + k * inner, w, pad: 0)
                s = log ? s + gv : s.addingProduct(gv, loadPartial(y + off + k * inner, w, pad: 0))
            }
            for k in 0..<n {
                let gv = loadPartial(g + off + k * inner, w, pad: 0), yv = loadPartial(y + off + k * inner, w, pad: 0)
                storePartial(log ? gv - K.expFull(yv) * s : yv * (gv - s), dx + off + k * inner, w)
            }
        }
    }
}
