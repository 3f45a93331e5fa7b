import TensorCore

/// Elementwise kernels shared by the ops: parallel over chunks, SIMD16 inside a chunk.
enum K {
    typealias V = SIMD16<Float>

    /// out[i] = f(x[i]), vectorised and parallel.
    @inline(__always)
    static func map(_ x: Storage, _ f: (V) -> V) -> Storage {
        let out = Storage(uninitializedCount: x.count)
        let src = x.ptr, dst = out.ptr
        Parallel.chunks(x.count) { r in
            VMath.map(r.count, src + r.lowerBound, dst + r.lowerBound, f)
        }
        return out
    }

    /// out[i] = f(x[i], y[i]) for equal-size buffers.
    @inline(__always)
    static func zip(_ x: Storage, _ y: Storage, _ f: (V, V) -> V) -> Storage {
        precondition(x.count == y.count)
        let out = Storage(uninitializedCount: x.count)
        let a = x.ptr, b = y.ptr, dst = out.ptr
        Parallel.chunks(x.count) { r in
            NormKernels.zip(r.count, a + r.lowerBound, b + r.lowerBound, dst + r.lowerBound, f)
        }
        return out
    }

    /// out[i] = f(x[i], y[i], z[i]) for equal-size buffers (pullbacks of activations).
    @inline(__always)
    static func zip3(_ x: Storage, _ y: Storage, _ z: Storage, _ f: (V, V, V) -> V) -> Storage {
        precondition(x.count == y.count && y.count == z.count)
        let out = Storage(uninitializedCount: x.count)
        let a = x.ptr, b = y.ptr, c = z.ptr, dst = out.ptr
        Parallel.chunks(x.count) { r in
            LayerNormKernels.zip3(r.count, a + r.lowerBound, b + r.lowerBound, c + r.lowerBound, dst + r.lowerBound, f)
        }
        return out
    }

    /// Broadcasting binary kernel; F applies to 16 lanes or to single elements (a type, not a
    /// closure, so that it inlines into the loops: see Lanewise.swift).
    @inline(__always)
    static func broadcast<F: Binary>(_ a: Tensor, _ b: Tensor, out shape: [Int], _: F.Type) -> Storage {
        if a.shape == b.shape { return zip(a.storage, b.storage, F.self) }
        let out = Storage(uninitializedCount: ShapeUtil.count(shape))
        let pa = a.storage.ptr, pb = b.storage.ptr, po = out.ptr
        if b.count == 1 && a.count == out.count {
            let vb = V(repeating: pb[0])
            Parallel.chunks(out.count) { r in VMath.map(r.count, pa + r.lowerBound, po + r.lowerBound) { F.apply($0, vb) } }
            return out
        }
        if a.count == 1 && b.count == out.count {
            let va = V(repeating: pa[0])
            Parallel.chunks(out.count) { r in VMath.map(r.count, pb + r.lowerBound, po + r.lowerBound) { F.apply(va, $0) } }
            return out
        }
        let plan = BroadcastPlan(a.shape, b.shape, out: shape)
        let len = plan.rowLength
        Parallel.chunks(plan.rows, grain: max(1, Parallel.grain / max(len, 1))) { rows in
            for r in rows {
                let (oa, ob) = plan.offsets(row: r)
                let x = pa + oa, y = pb + ob, o = po + r * len
                switch (plan.aInner, plan.bInner) {
                case (1, 1):
                    var j = 0
                    while j + 16 <= len {
                        let v = F.apply(UnsafeRawPointer(x + j).loadUnaligned(as: V.self), UnsafeRawPointer(y + j).loadUnaligned(as: V.self))
                        UnsafeMutableRawPointer(o + j).storeBytes(of: v, as: V.self); j += 16
                    }
                    while j < len { o[j] = F.apply(x[j], y[j]); j += 1 }
                case (1, 0):
                    let vy = V(repeating: y[0])
                    VMath.map(len, x, o) { F.apply($0, vy) }
                case (0, 1):
                    let vx = V(repeating: x[0])
                    VMath.map(len, y, o) { F.apply(vx, $0) }
                default:
                    let v = F.apply(x[0], y[0])
                    for j in 0..<len { o[j] = v }
                }
            }
        }
        return out
    }

    /// Sums a gradient of the broadcast shape back down to an input's shape.
    static func unbroadcast(_ g: Tensor, to shape: [Int]) -> Tensor {
        if g.shape == shape { return g }
        let out = Storage(uninitializedCount: ShapeUtil.count(shape))
        Reduce.sumToShape(g.storage.ptr, from: g.shape, to: shape, into: out.ptr)
        return Tensor(shape: shape, storage: out)
    }
}
