import TensorCore

// Group normalisation, fused: one pass for the statistics of each (sample, group) block, one to
// normalise with the per-channel affine folded into a single multiply-add; the pullback is the
// closed form below, again two passes per block.
//
// A block is x[n, g*cpg ..< (g+1)*cpg, ...]: L = cpg * spatial contiguous floats. With
// xhat = (x - mean) * rstd, y = xhat * w_c + b_c and dy the output gradient:
//   db_c = sum_n sum_s dy                  dw_c = sum_n rstd * sum_s dy * (x - mean)
//   dx   = rstd * (w_c dy - A / L - xhat * B / L),  A = sum_block w_c dy,  B = sum_block w_c dy xhat
// which is dx = alpha_c * dy + beta * (x - mean) + gamma with alpha_c = rstd w_c,
// beta = -rstd^2 B / L, gamma = -rstd A / L.

extension Tensor {
    /// Normalises x [N, C, ...] over each of `groups` channel groups of each sample (biased
    /// variance, like torch.nn.functional.group_norm), then applies the optional per-channel
    /// affine weight [C] and bias [C].
    public func groupNorm(groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
        try groupNorm(groups: groups, weight: weight, bias: bias, eps: eps, then: NormOutput.self, op: "groupNorm")
    }

    /// silu(groupNorm(x)) as one op, equal bit for bit to the two ops in sequence, forward and
    /// gradients: the normalised tensor is neither written nor kept. It is recomputed from x and
    /// the block's statistics where the pullback needs it, which saves a write and a read of a
    /// full activation forward and the separate SiLU pullback's three streams backward (the
    /// U-Net's every GroupNorm is followed by SiLU).
    public func groupNormSiLU(groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
        try groupNorm(groups: groups, weight: weight, bias: bias, eps: eps, then: SiLU.self, op: "groupNormSiLU")
    }

    func groupNorm<Act: NormActivation>(groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, then: Act.Type,
                                        op: String) throws -> Tensor {
        let x = self
        guard x.rank >= 2 else {
            throw ShapeError(op: op, "input must have shape [N, C, ...], got \(x.shape)")
        }
        let n = x.shape[0], c = x.shape[1]
        guard groups >= 1, c % groups == 0 else {
            throw ShapeError(op: op, "\(c) channels of input \(x.shape) cannot be split into \(groups) groups")
        }
        if let weight, weight.shape != [c] {
            throw ShapeError(op: op, "weight must have shape [\(c)] for input \(x.shape), got \(weight.shape)")
        }
        if let bias, bias.shape != [c] {
            throw ShapeError(op: op, "bias must have shape [\(c)] for input \(x.shape), got \(bias.shape)")
        }
        let spatial = x.shape.dropFirst(2).reduce(1, *)
        let cpg = c / groups, len = cpg * spatial, blocks = n * groups
        let out = Storage(uninitializedCount: x.count)
        let meanS = Storage(uninitializedCount: blocks), rstdS = Storage(uninitializedCount: blocks)
        let xp = x.storage.ptr, yp = out.ptr, mp = meanS.ptr, rp = rstdS.ptr
        let wp = weight?.storage.ptr, bp = bias?.storage.ptr

        /// The affine of channel `ch` in block i: z = x * scale + shift.
        @inline(__always) func affine(_ ch: Int, mean: Float, rstd: Float) -> (SIMD16<Float>, SIMD16<Float>) {
            let scale = rstd * (wp?[ch] ?? 1)
            return (SIMD16<Float>(repeating: scale), SIMD16<Float>(repeating: (bp?[ch] ?? 0) - mean * scale))
        }

        Parallel.items(blocks, costPerItem: len) { i in
            let base = i * len
            let (mean, rstd) = NormKernels.moments(xp + base, len, eps: eps)
            mp[i] = mean; rp[i] = rstd
            let g = i % groups
            for cc in 0..<cpg {
                let (vs, vb) = affine(g * cpg + cc, mean: mean, rstd: rstd)
                let off = base + cc * spatial
                NormKernels.affine(spatial, xp + off, yp + off, vs, vb, Act.self)
            }
        }

        let inputs = [x] + (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? [])
        return Tensor.result(op, shape: x.shape, storage: out, inputs: inputs) { g in
            // The saved statistics live as long as the pullback, through these captures.
            let mp = meanS.ptr, rp = rstdS.ptr
            let needX = x.requiresGrad
            // Per (n, c): s1 = sum_s dz, s2 = sum_s dz * (x - mean), dz the gradient at the norm's output
            // (before the activation).
            let s1 = Storage(uninitializedCount: n * c), s2 = Storage(uninitializedCount: n * c)
            let gx = needX ? Storage(uninitializedCount: x.count) : nil
            let p1 = s1.ptr, p2 = s2.ptr, dxp = gx?.ptr, gp = UnsafePointer(g.storage.ptr)
            let invLen = 1 / Float(max(len, 1))

            /// Block i's sums and dx, given dz for the block's len floats.
            func block(_ i: Int, _ dz: UnsafePointer<Float>) {
                let base = i * len, gi = i % groups, nn = i / groups
                let mean = mp[i], rstd = rp[i]
                var a: Float = 0, b: Float = 0
                for cc in 0..<cpg {
                    let ch = gi * cpg + cc
                    let (d, dxc) = NormKernels.dotCentered(dz + cc * spatial, xp + base + cc * spatial, spatial, mean)
                    p1[nn * c + ch] = d; p2[nn * c + ch] = dxc
                    let wc = wp?[ch] ?? 1
                    a += wc * d; b += wc * dxc
                }
                guard let dxp else { return }
                // B = rstd * sum_c w_c s2_c (the sum of w dz xhat); beta = -rstd^2 B / L.
                let beta = -rstd * rstd * (rstd * b) * invLen, gamma = -rstd * a * invLen
                for cc in 0..<cpg {
                    let ch = gi * cpg + cc
                    let va = SIMD16<Float>(repeating: rstd * (wp?[ch] ?? 1)), vb = SIMD16<Float>(repeating: beta)
                    let vm = SIMD16<Float>(repeating: mean), vg = SIMD16<Float>(repeating: gamma)
                    let off = base + cc * spatial
                    NormKernels.zip(spatial, dz + cc * spatial, xp + off, dxp + off) { dz, xv in
                        vg.addingProduct(dz, va).addingProduct(xv - vm, vb)
                    }
                }
            }

            Parallel.items(blocks, costPerItem: needX ? 2 * len : len) { i in
                if Act.isIdentity { return block(i, gp + i * len) }
                // dz through the activation's pullback, into a block-sized buffer that stays in cache.
                withUnsafeTemporaryAllocation(of: Float.self, capacity: len) { t in
                    let dz = t.baseAddress!, base = i * len, gi = i % groups
                    for cc in 0..<cpg {
                        let (vs, vb) = affine(gi * cpg + cc, mean: mp[i], rstd: rp[i])
                        let off = cc * spatial
                        NormKernels.affinePullback(spatial, gp + base + off, xp + base + off, dz + off, vs, vb, Act.self)
                    }
                    block(i, dz)
                }
            }

            var grads: [Tensor?] = [gx.map { Tensor(shape: x.shape, storage: $0) }]
            if let weight {
                grads.append(weight.requiresGrad ? Tensor(shape: [c], storage: NormKernels.perChannel(c, n: n) { nn, ch in
                    Double(rp[nn * groups + ch / cpg]) * Double(p2[nn * c + ch])
                }) : nil)
            }
            if let bias {
                grads.append(bias.requiresGrad ? Tensor(shape: [c], storage: NormKernels.perChannel(c, n: n) { nn, ch in
                    Double(p1[nn * c + ch])
                }) : nil)
            }
            return grads
        }
    }
}

/// What a normalisation's output goes through before it is written: nothing (`NormOutput`) or
/// an activation fused into the same pass, with its pullback given the pre-activation z.
protocol NormActivation {
    static var isIdentity: Bool { get }
    static func apply(_ z: SIMD16<Float>) -> SIMD16<Float>
    static func pullback(_ g: SIMD16<Float>, _ z: SIMD16<Float>) -> SIMD16<Float>
}

/// The plain normalisation.
enum NormOutput: NormActivation {
    static let isIdentity = true
    @inline(__always) static func apply(_ z: SIMD16<Float>) -> SIMD16<Float> { z }
    @inline(__always) static func pullback(_ g: SIMD16<Float>, _ z: SIMD16<Float>) -> SIMD16<Float> { g }
}

extension SiLU: NormActivation {
    static let isIdentity = false
    @inline(__always) static func pullback(_ g: SIMD16<Float>, _ z: SIMD16<Float>) -> SIMD16<Float> { Pullback.apply(g, z) }
}

/// Reductions shared by groupNorm and layerNorm.
enum NormKernels {
    typealias V = SIMD16<Float>

    /// Mean and 1/sqrt(var + eps) of n floats, two-pass. SIMD float partial sums are flushed
    /// to Double every few thousand elements, so long blocks lose no precision.
    @inline(__always)
    static func moments(_ p: UnsafePointer<Float>, _ n: Int, eps: Float) -> (Float, Float) {
        if n == 0 { return (0, 1 / eps.squareRoot()) }
        var total = 0.0
        var i = 0
        while i < n {
            let end = min(n, i + 4096)
            var acc = V(repeating: 0)
            while i + 16 <= end { acc += UnsafeRawPointer(p + i).loadUnaligned(as: V.self); i += 16 }
            var s = acc.sum()
            while i < end { s += p[i]; i += 1 }
            total += Double(s)
        }
        let mean = Float(total / Double(n))
        let vm = V(repeating: mean)
        var sq = 0.0
        i = 0
        while i < n {
            let end = min(n, i + 4096)
            var acc = V(repeating: 0)
            while i + 16 <= end {
                let d = UnsafeRawPointer(p + i).loadUnaligned(as: V.self) - vm
                acc = acc.addingProduct(d, d); i += 16
            }
            var s = acc.sum()
            while i < end { let d = p[i] - mean; s += d * d; i += 1 }
            sq += Double(s)
        }
        let variance = sq / Double(n)
        return (mean, Float(1 / (variance + Double(eps)).squareRoot()))
    }

    /// (sum dy, sum dy * (x - mean)) over n floats.
    @inline(__always)
    static func dotCentered(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, _ mean: Float) -> (Float, Float) {
        var a = V(repeating: 0), b = V(repeating: 0)
        let vm = V(repeating: mean)
        var i = 0
        while i + 16 <= n {
            let g = UnsafeRawPointer(dy + i).loadUnaligned(as: V.self)
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            a += g; b = b.addingProduct(g, xv - vm); i += 16
        }
        var sa = a.sum(), sb = b.sum()
        while i < n { sa += dy[i]; sb += dy[i] * (x[i] - mean); i += 1 }
        return (sa, sb)
    }

    /// out[i] = f(a[i], b[i]) for n floats, 16 lanes at a time; `out` overlaps neither input:
    /// a ragged end (196 or 49 floats per channel at 14x14 and 7x7) is the last whole 16 lanes,
    /// recomputing a few, as in VMath.map (filling a vector lane by lane cost as much as the row).
    @inline(__always)
    static func zip(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ f: (V, V) -> V) {
        var i = 0
        while i + 16 <= n {
            let r = f(UnsafeRawPointer(a + i).loadUnaligned(as: V.self), UnsafeRawPointer(b + i).loadUnaligned(as: V.self))
            UnsafeMutableRawPointer(out + i).storeBytes(of: r, as: V.self)
            i += 16
        }
        if i < n && n >= 16 {
            let j = n - 16
            let r = f(UnsafeRawPointer(a + j).loadUnaligned(as: V.self), UnsafeRawPointer(b + j).loadUnaligned(as: V.self))
            UnsafeMutableRawPointer(out + j).storeBytes(of: r, as: V.self)
        } else if i < n {
            var va = V(repeating: 0), vb = V(repeating: 0)
            for j in 0..<(n - i) { va[j] = a[i + j]; vb[j] = b[i + j] }
            let r = f(va, vb)
            for j in 0..<(n - i) { out[i + j] = r[j] }
        }
    }

    // The activation passes are written out, not given to map/zip as closures: a closure that
    // calls the activation was compiled out of line (one call per 16 lanes, perf: 5% of a U-Net step).

    /// y = Act(x * vs + vb) for n floats; a ragged end as in VMath.map (y overlaps no input).
    @inline(__always)
    static func affine<Act: NormActivation>(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                            _ vs: V, _ vb: V, _: Act.Type) {
        @inline(__always) func at(_ i: Int) {
            let r = Act.apply(vb.addingProduct(UnsafeRawPointer(x + i).loadUnaligned(as: V.self), vs))
            UnsafeMutableRawPointer(y + i).storeBytes(of: r, as: V.self)
        }
        var i = 0
        while i + 16 <= n { at(i); i += 16 }
        if i < n && n >= 16 {
            at(n - 16)
        } else if i < n {
            var v = V(repeating: 0)
            for j in 0..<(n - i) { v[j] = x[i + j] }
            let r = Act.apply(vb.addingProduct(v, vs))
            for j in 0..<(n - i) { y[i + j] = r[j] }
        }
    }

    /// dz = Act'(g, z) with z = x * vs + vb recomputed, for n floats (dz overlaps no input).
    @inline(__always)
    static func affinePullback<Act: NormActivation>(_ n: Int, _ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                                    _ dz: UnsafeMutablePointer<Float>, _ vs: V, _ vb: V, _: Act.Type) {
        @inline(__always) func at(_ i: Int) {
            let z = vb.addingProduct(UnsafeRawPointer(x + i).loadUnaligned(as: V.self), vs)
            UnsafeMutableRawPointer(dz + i).storeBytes(of: Act.pullback(UnsafeRawPointer(g + i).loadUnaligned(as: V.self), z), as: V.self)
        }
        var i = 0
        while i + 16 <= n { at(i); i += 16 }
        if i < n && n >= 16 {
            at(n - 16)
        } else if i < n {
            var vx = V(repeating: 0), vg = V(repeating: 0)
            for j in 0..<(n - i) { vx[j] = x[i + j]; vg[j] = g[i + j] }
            let r = Act.pullback(vg, vb.addingProduct(vx, vs))
            for j in 0..<(n - i) { dz[i + j] = r[j] }
        }
    }

    /// A [c] storage whose entry ch is the sum over samples of term(sample, ch), in Double.
    static func perChannel(_ c: Int, n: Int, _ term: (Int, Int) -> Double) -> Storage {
        let out = Storage(uninitializedCount: c)
        for ch in 0..<c {
            var s = 0.0
            for nn in 0..<n { s += term(nn, ch) }
            out.ptr[ch] = Float(s)
        }
        return out
    }
}
