import TensorCore

// Direct stride-1 convolution for one or two output channels (the U-Net's last layer, 32 -> 1
// at 28x28). Through im2col each image's 9x-sized column matrix was written, then read by a
// matrix-vector product, and the pullback wrote and scattered it back again: 18 ms of a 610 ms
// teacher step for 0.03% of its multiply-adds.
//
// Each input plane is copied once into a zero-bordered plane with row stride wp = w + 2 pad. In
// that flat layout every tap (ki, kj) is a fixed offset ki * wp + kj, so with q = i * wp + j
//   Y[q]   = b + sum_c sum_taps w[c, tap] * XP_c[q + off(tap)]            (forward)
//   dXP[r] = sum_o sum_taps w[o, c, tap] * DY_o[r - off(tap)]             (input gradient)
//   dW[o, c, tap] = sum_q DY_o[q] * XP_c[q + off(tap)]                    (weight gradient)
// over whole rows of wp positions: the columns j >= ow are computed and dropped forward, and
// held at zero in DY (with zero margins around it), so they add nothing backward. Sums run in
// 32-position register blocks (4 x SIMD8), loads from L1-resident planes.

struct DirectConv {
    let n: Int, c: Int, h: Int, w: Int, o: Int, kh: Int, kw: Int, pad: Int
    let wp: Int, hp: Int, oh: Int, ow: Int
    /// Output positions (rows of wp) and the same rounded up to whole 32-position blocks.
    let positions: Int, blocked: Int
    /// Floats per padded input plane: room for the reads of the last block's last tap.
    let planeStride: Int
    /// Zero margin before each DY plane (the largest tap offset) and its float count.
    let margin: Int, dyStride: Int
    /// Padded-input positions, rounded up to whole blocks (the input gradient's range).
    let inputBlocked: Int
    let offsets: [Int]

    /// Stride 1, a kernel wider than 1x1 (pointwise kernels are one sgemm on the image itself),
    /// and at most two output channels: each output channel costs one pass over every input
    /// plane, against im2col's fixed 9x copy.
    static func applies(kh: Int, kw: Int, stride: Int, o: Int) -> Bool {
        stride == 1 && kh * kw > 1 && o <= 2
    }

    init(n: Int, c: Int, h: Int, w: Int, o: Int, kh: Int, kw: Int, pad: Int) {
        self.n = n; self.c = c; self.h = h; self.w = w; self.o = o; self.kh = kh; self.kw = kw; self.pad = pad
        wp = w + 2 * pad; hp = h + 2 * pad
        oh = hp - kh + 1; ow = wp - kw + 1
        positions = oh * wp
        blocked = (positions + 31) / 32 * 32
        margin = (kh - 1) * wp + kw - 1
        planeStride = blocked + margin + 8
        inputBlocked = (hp * wp + 31) / 32 * 32
        dyStride = margin + inputBlocked + 8
        var off: [Int] = []
        for ki in 0..<kh { for kj in 0..<kw { off.append(ki * wp + kj) } }
        offsets = off
    }

    typealias V = SIMD8<Float>
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// Copies image `img`'s planes into the zero-bordered planes at xp (borders stay zero).
    func padInput(_ x: UnsafePointer<Float>, image img: Int, into xp: UnsafeMutablePointer<Float>) {
        for ch in 0..<c {
            let src = x + (img * c + ch) * h * w, dst = xp + ch * planeStride + pad * wp + pad
            for r in 0..<h { (dst + r * wp).update(from: src + r * w, count: w) }
        }
    }

    /// sum over `planes` planes and every tap of weight * plane[base + q + sign * offset], for the
    /// 32 positions q0..<q0+32; weights of plane p, tap t at wt[p * wStride + t].
    @inline(__always)
    func block(_ planes: UnsafePointer<Float>, stride: Int, count: Int, base: Int, sign: Int,
               _ wt: UnsafePointer<Float>, wStride: Int, start: V) -> (V, V, V, V) {
        var a0 = start, a1 = start, a2 = start, a3 = start
        let taps = offsets.count
        offsets.withUnsafeBufferPointer { off in
            for p in 0..<count {
                let plane = planes + p * stride + base, wrow = wt + p * wStride
                for t in 0..<taps {
                    let s = V(repeating: wrow[t]), src = plane + sign * off[t]
                    a0 = a0.addingProduct(s, Self.load(src)); a1 = a1.addingProduct(s, Self.load(src + 8))
                    a2 = a2.addingProduct(s, Self.load(src + 16)); a3 = a3.addingProduct(s, Self.load(src + 24))
                }
            }
        }
        return (a0, a1, a2, a3)
    }

    func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        let taps = kh * kw
        ConvKernels.images(n, scratch: c * planeStride + blocked, zeroed: true) { _, images, scratch in
            let xp = scratch!, row = xp + c * planeStride
            for img in images {
                padInput(x, image: img, into: xp)
                for oc in 0..<o {
                    let start = V(repeating: bias?[oc] ?? 0)
                    for q0 in stride(from: 0, to: positions, by: 32) {
                        let (a0, a1, a2, a3) = block(xp, stride: planeStride, count: c, base: q0, sign: 1,
                                                     weight + oc * c * taps, wStride: taps, start: start)
                        Self.store(a0, row + q0); Self.store(a1, row + q0 + 8)
                        Self.store(a2, row + q0 + 16); Self.store(a3, row + q0 + 24)
                    }
                    let dst = y + (img * o + oc) * oh * ow
                    for i in 0..<oh { (dst + i * ow).update(from: row + i * wp, count: ow) }
                }
            }
        }
    }

    /// Gradients for x (into dx, when given) and the weight (returned, when asked).
    func backward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>?, needWeight: Bool) -> Storage? {
        let taps = kh * kw, wCount = o * c * taps
        let parts = ConvKernels.parts(n)
        let gwParts = needWeight ? Storage(zeros: parts * wCount) : nil
        // Input gradient weights regrouped as [c][o][tap], so that one channel's are contiguous.
        let wT = Storage(uninitializedCount: wCount)
        for oc in 0..<o { for ch in 0..<c { (wT.ptr + (ch * o + oc) * taps).update(from: weight + (oc * c + ch) * taps, count: taps) } }
        let scratch = (needWeight ? c * planeStride : 0) + o * dyStride + inputBlocked
        ConvKernels.images(n, scratch: scratch, zeroed: true) { part, images, buf in
            let xp = buf!, dyp = xp + (needWeight ? c * planeStride : 0), row = dyp + o * dyStride
            for img in images {
                // DY planes: rows of wp with zero columns past ow, zero margins on both sides.
                for oc in 0..<o {
                    let src = dy + (img * o + oc) * oh * ow, dst = dyp + oc * dyStride + margin
                    for i in 0..<oh { (dst + i * wp).update(from: src + i * ow, count: ow) }
                }
                if let gwParts {
                    padInput(x, image: img, into: xp)
                    let gw = gwParts.ptr + part * wCount
                    for oc in 0..<o {
                        let d = UnsafePointer(dyp + oc * dyStride + margin)
                        for ch in 0..<c {
                            let plane = UnsafePointer(xp + ch * planeStride)
                            for (t, off) in offsets.enumerated() {
                                gw[(oc * c + ch) * taps + t] += Self.dot(d, plane + off, blocked)
                            }
                        }
                    }
                }
                if let dx {
                    for ch in 0..<c {
                        for r0 in stride(from: 0, to: hp * wp, by: 32) {
                            let (a0, a1, a2, a3) = block(dyp, stride: dyStride, count: o, base: margin + r0, sign: -1,
                                                         wT.ptr + ch * o * taps, wStride: taps, start: V())
                            Self.store(a0, row + r0); Self.store(a1, row + r0 + 8)
                            Self.store(a2, row + r0 + 16); Self.store(a3, row + r0 + 24)
                        }
                        let dst = dx + (img * c + ch) * h * w, src = row + pad * wp + pad
                        for i in 0..<h { (dst + i * w).update(from: src + i * wp, count: w) }
                    }
                }
            }
        }
        withExtendedLifetime(wT) {}
        guard let gwParts else { return nil }
        return ConvKernels.sumParts(gwParts, parts: parts, size: wCount)
    }

    /// sum of a[i] * b[i] for i < count (a multiple of 32).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var s0 = V(), s1 = V(), s2 = V(), s3 = V()
        var i = 0
        while i < count {
            s0 = s0.addingProduct(load(a + i), load(b + i)); s1 = s1.addingProduct(load(a + i + 8), load(b + i + 8))
            s2 = s2.addingProduct(load(a + i + 16), load(b + i + 16)); s3 = s3.addingProduct(load(a + i + 24), load(b + i + 24))
            i += 32
        }
        return ((s0 + s1) + (s2 + s3)).sum()
    }
}
