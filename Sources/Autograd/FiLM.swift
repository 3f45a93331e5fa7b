import TensorCore

extension Tensor {
    /// Feature-wise modulation (FiLM) as one op: x [N, C, ...] with ss [N, 2C] (each sample's
    /// per-channel scale, then shift) -> x * (1 + scale) + shift over every channel's plane.
    ///
    /// The U-Net's residual blocks did this as slice, add 1, broadcast multiply and broadcast add:
    /// two full passes forward (one writing a temporary), and backward a full product tensor for
    /// the scale's gradient plus a separate reduction for the shift's. Here each plane is read and
    /// written once each way. The arithmetic is the same, in the same order (x * (scale + 1),
    /// then + shift; the scale's gradient sums g * x over the plane with `Reduce.sum`, as the
    /// broadcast multiply's pullback did), so values and gradients equal those ops' bit for bit.
    public func film(_ ss: Tensor) throws -> Tensor {
        let x = self
        guard x.rank >= 2 else {
            throw ShapeError(op: "film", "input must have shape [N, C, ...], got \(x.shape)")
        }
        let n = x.shape[0], c = x.shape[1]
        guard ss.shape == [n, 2 * c] else {
            throw ShapeError(op: "film", "scale and shift must have shape [\(n), \(2 * c)] for input \(x.shape), got \(ss.shape)")
        }
        let plane = x.shape.dropFirst(2).reduce(1, *)
        let out = Storage(uninitializedCount: x.count)
        let xp = x.storage.ptr, sp = ss.storage.ptr, yp = out.ptr
        typealias V = SIMD16<Float>
        Parallel.items(n * c, costPerItem: plane) { row in
            let i = row / c, ch = row % c
            let s1 = sp[i * 2 * c + ch] + 1, sh = sp[i * 2 * c + c + ch]
            let vs = V(repeating: s1), vh = V(repeating: sh)
            let src = xp + row * plane, dst = yp + row * plane
            var j = 0
            while j + 16 <= plane {
                let t = UnsafeRawPointer(src + j).loadUnaligned(as: V.self) * vs
                UnsafeMutableRawPointer(dst + j).storeBytes(of: t + vh, as: V.self)
                j += 16
            }
            while j < plane { dst[j] = src[j] * s1 + sh; j += 1 }
        }
        return Tensor.result("film", shape: x.shape, storage: out, inputs: [x, ss]) { g in
            let gx = x.requiresGrad ? Storage(uninitializedCount: x.count) : nil
            let gs = ss.requiresGrad ? Storage(uninitializedCount: n * 2 * c) : nil
            let gp = g.storage.ptr
            Parallel.items(n * c, costPerItem: plane) { row in
                let i = row / c, ch = row % c
                let src = gp + row * plane
                if let gx {  // dx = g * (1 + scale)
                    let s1 = sp[i * 2 * c + ch] + 1, vs = V(repeating: s1)
                    let dst = gx.ptr + row * plane
                    var j = 0
                    while j + 16 <= plane {
                        UnsafeMutableRawPointer(dst + j).storeBytes(of: UnsafeRawPointer(src + j).loadUnaligned(as: V.self) * vs, as: V.self)
                        j += 16
                    }
                    while j < plane { dst[j] = src[j] * s1; j += 1 }
                }
                // d scale = sum of g * x over the plane, d shift = sum of g; `0 +` as the unbroadcast
                // these replace, which added each plane's sum into a zeroed output (-0 becomes +0).
                if let gs {
                    let xr = xp + row * plane
                    gs.ptr[i * 2 * c + ch] = withUnsafeTemporaryAllocation(of: Float.self, capacity: plane) { buf in
                        let t = buf.baseAddress!
                        for j in 0..<plane { t[j] = src[j] * xr[j] }
                        return 0 + Reduce.sum(t, plane)
                    }
                    gs.ptr[i * 2 * c + c + ch] = 0 + Reduce.sum(src, plane)
                }
            }
            return [gx.map { Tensor(shape: x.shape, storage: $0) }, gs.map { Tensor(shape: ss.shape, storage: $0) }]
        }
    }
}
