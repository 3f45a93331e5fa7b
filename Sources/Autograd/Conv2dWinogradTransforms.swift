import TensorCore

// The per-tile Winograd transforms of Conv2dWinograd.swift (input, output and their adjoints),
// apart from the passes that schedule them over threads and sgemms.
extension Winograd3x3 {
    // MARK: transforms
    //
    // Block matrices are [16][channels][ld] with ld = tb + 16: a tile row's loops run in
    // 16-lane chunks and may spill up to 15 lanes past its last tile. Rows are written in
    // increasing order, so a spill lands on tiles written afterwards, or in the slack.

    var ld: Int { tb + 16 }
    /// Stride of the per-row scratch arrays: tw + 1 entries, rounded up, plus a spill chunk.
    var span: Int { (tw + 1 + 15) / 16 * 16 + 16 }

    typealias V = SIMD16<Float>
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
    @inline(__always) static func load32(_ p: UnsafePointer<Float>) -> SIMD32<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD32<Float>.self) }
    /// Stores the pairs (a[i], b[i]) as 32 consecutive floats (one vpermi2ps each half).
    @inline(__always) static func storeInterleaved(_ a: V, _ b: V, _ p: UnsafeMutablePointer<Float>) {
        var r = SIMD32<Float>()
        r.evenHalf = a; r.oddHalf = b
        UnsafeMutableRawPointer(p).storeBytes(of: r, as: SIMD32<Float>.self)
    }

    /// d[0..<n] = s[0..<n] in 16-float pieces, the last one overlapping its predecessor. Rows of
    /// 14 and 7 (the U-Net's lower levels) go as two overlapping 8- or 4-float pieces: copied
    /// float by float they were a visible share of the forward pass (perf).
    @inline(__always) static func copy(_ d: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, _ n: Int) {
        if n < 16 {
            @inline(__always) func pieces<P: SIMD>(_: P.Type) where P.Scalar == Float {
                let w = P.scalarCount
                let a = UnsafeRawPointer(s).loadUnaligned(as: P.self), b = UnsafeRawPointer(s + n - w).loadUnaligned(as: P.self)
                UnsafeMutableRawPointer(d).storeBytes(of: a, as: P.self)
                UnsafeMutableRawPointer(d + n - w).storeBytes(of: b, as: P.self)
            }
            if n >= 8 { pieces(SIMD8<Float>.self) } else if n >= 4 { pieces(SIMD4<Float>.self) } else { for i in 0..<n { d[i] = s[i] } }
            return
        }
        var i = 0
        while i + 16 <= n { store(load(s + i), d + i); i += 16 }
        if i < n { store(load(s + n - 16), d + n - 16) }
    }

    /// d[0..<n] += s[0..<n].
    @inline(__always) static func add(_ d: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + 16 <= n { store(load(d + i) + load(s + i), d + i); i += 16 }
        @inline(__always) func piece<P: SIMD>(_: P.Type) where P.Scalar == Float {
            let v = UnsafeRawPointer(d + i).loadUnaligned(as: P.self) + UnsafeRawPointer(s + i).loadUnaligned(as: P.self)
            UnsafeMutableRawPointer(d + i).storeBytes(of: v, as: P.self)
            i += P.scalarCount
        }
        if i + 8 <= n { piece(SIMD8<Float>.self) }
        if i + 4 <= n { piece(SIMD4<Float>.self) }
        while i < n { d[i] += s[i]; i += 1 }
    }

    /// Segments of a block: runs of consecutive tile rows of one image, as (image, first tile
    /// row, count, index of the first row within the block).
    func segments(_ rows: Range<Int>, _ body: (Int, Int, Int, Int) -> Void) {
        var r = rows.lowerBound
        while r < rows.upperBound {
            let img = r / th, ty = r % th
            let cnt = min(rows.upperBound - r, th - ty)
            body(img, ty, cnt, r - rows.lowerBound)
            r += cnt
        }
    }

    /// Padded rows per segment at most, and the stride of one padded row (its 2tw + 2 floats
    /// plus the slack of 32-float loads).
    var maxRows: Int { 2 * rowsPerBlock + 2 }
    var rowStride: Int { 2 * span + 32 }

    /// Scratch floats needed by the transforms of one block (per thread).
    var scratchCount: Int { maxRows * (rowStride + 4 * span + 32) + 8 * span + 64 }

    static let lanes = V(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

    /// V[xi][c][t] = (B^T d B)[xi] of the input tiles of the block.
    ///
    /// Each input row is first copied into a zero-bordered padded row; only after all rows of a
    /// segment are copied are they read back (with 32-float loads at other offsets), so the
    /// loads never wait on a store still in flight (a failed store-to-load forward). Going down
    /// a segment, the row combinations of a tile's bottom two rows are kept in registers as the
    /// next tile's top two.
    func inputTransform(_ x: UnsafePointer<Float>, rows: Range<Int>, into v: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let tw = tw, w = w, h = h, pad = pad, ld = ld, plane = c * ld, ps = rowStride
        let chunks = (tw + 15) / 16
        let padded = scratch  // padded[q][ps]
        // 2tw + 2 >= w + 2 pad: each row fits; borders and slack stay zero from here on.
        padded.update(repeating: 0, count: maxRows * ps)
        segments(rows) { img, ty0, cnt, k0 in
            let nr = 2 * cnt + 2
            for q in 0..<nr where 2 * ty0 + q - pad < 0 || 2 * ty0 + q - pad >= h {
                (padded + q * ps).update(repeating: 0, count: ps)  // outside the image
            }
            for ch in 0..<c {
                let src = x + (img * c + ch) * h * w
                for q in 0..<nr {
                    let row = 2 * ty0 + q - pad
                    if row >= 0 && row < h { Self.copy(padded + q * ps + pad, src + row * w, w) }
                }
                // Last chunk first: its spill past the row end lands on the next row's first
                // chunk, which is written after it.
                for ch16 in stride(from: chunks - 1, through: 0, by: -1) {
                    let t = ch16 * 16
                    // d B along padded row q: [e0 - e1, o0 + e1, e1 - o0, o0 - o1] with e = even
                    // columns, o = odd columns, 0/1 = this tile and the next.
                    @inline(__always) func combos(_ q: Int) -> (V, V, V, V) {
                        let prow = padded + q * ps + 2 * t
                        let here = Self.load32(prow), next = Self.load32(prow + 2)
                        let e0 = here.evenHalf, o0 = here.oddHalf, e1 = next.evenHalf, o1 = next.oddHalf
                        return (e0 - e1, o0 + e1, e1 - o0, o0 - o1)
                    }
                    var r0 = combos(0), r1 = combos(1)
                    for k in 0..<cnt {
                        let r2 = combos(2 * k + 2), r3 = combos(2 * k + 3)
                        let o = v + ch * ld + (k0 + k) * tw + t
                        // B^T down the columns: [r0 - r2, r1 + r2, r2 - r1, r1 - r3].
                        @inline(__always) func column(_ b: Int, _ a0: V, _ a1: V, _ a2: V, _ a3: V) {
                            Self.store(a0 - a2, o + b * plane)
                            Self.store(a1 + a2, o + (4 + b) * plane)
                            Self.store(a2 - a1, o + (8 + b) * plane)
                            Self.store(a1 - a3, o + (12 + b) * plane)
                        }
                        column(0, r0.0, r1.0, r2.0, r3.0)
                        column(1, r0.1, r1.1, r2.1, r3.1)
                        column(2, r0.2, r1.2, r2.2, r3.2)
                        column(3, r0.3, r1.3, r2.3, r3.3)
                        r0 = r2; r1 = r3
                    }
                }
            }
        }
    }

    /// Y tiles = A^T M A (+ bias) of the block, written into y [N, O, oh, ow]. A plane's rows
    /// are built in a buffer with whole 32-float stores, then copied out once all are done.
    func outputTransform(_ m: UnsafePointer<Float>, rows: Range<Int>, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        let tw = tw, ow = ow, oh = oh, ld = ld, plane = o * ld, ps = rowStride
        let chunks = (tw + 15) / 16
        let buf = scratch  // buf[row][ps]
        segments(rows) { img, ty0, cnt, k0 in
            for oc in 0..<o {
                let bv = V(repeating: bias?[oc] ?? 0)
                for k in 0..<cnt {
                    let base = m + oc * ld + (k0 + k) * tw
                    let b0 = buf + 2 * k * ps, b1 = b0 + ps
                    for ch16 in 0..<chunks {
                        let t = ch16 * 16
                        // P_r[b] = (A^T M)[r][b]: r = 0: m0 + m1 + m2, r = 1: m1 - m2 - m3 (rows of M).
                        @inline(__always) func p(_ b: Int) -> (V, V) {
                            let m0 = Self.load(base + b * plane + t), m1 = Self.load(base + (4 + b) * plane + t)
                            let m2 = Self.load(base + (8 + b) * plane + t), m3 = Self.load(base + (12 + b) * plane + t)
                            return (m0 + m1 + m2, m1 - m2 - m3)
                        }
                        let (p00, p10) = p(0), (p01, p11) = p(1), (p02, p12) = p(2), (p03, p13) = p(3)
                        Self.storeInterleaved(p00 + p01 + p02 + bv, p01 - p02 - p03 + bv, b0 + 2 * t)
                        Self.storeInterleaved(p10 + p11 + p12 + bv, p11 - p12 - p13 + bv, b1 + 2 * t)
                    }
                }
                let first = 2 * ty0, rowsOut = min(2 * cnt, oh - first)
                let dst = y + ((img * o + oc) * oh + first) * ow
                for r in 0..<rowsOut { Self.copy(dst + r * ow, buf + r * ps, ow) }
            }
        }
    }

    /// dM = A dY A^T for the block's tiles (dY zero beyond the output's edge).
    func gradOutputTransform(_ dy: UnsafePointer<Float>, rows: Range<Int>, into dm: UnsafeMutablePointer<Float>,
                             scratch: UnsafeMutablePointer<Float>) {
        let tw = tw, ow = ow, oh = oh, ld = ld, sp = span, plane = o * ld
        let chunks = (tw + 15) / 16
        let total = n * o * oh * ow
        let fallback = scratch  // a copy of a row read near the end of dY
        fallback.update(repeating: 0, count: 2 * sp + 32)
        // Tile column t + i holds output columns 2(t + i) (< ow while t + i < tw) and 2(t + i) + 1 (< ow while t + i < ow / 2).
        @inline(__always) func rowPair(_ p: UnsafePointer<Float>?, _ t: Int) -> (V, V) {
            guard let p else { return (V(), V()) }
            let start = p - dy
            let pair: SIMD32<Float>
            if start + 2 * t + 32 <= total {
                pair = Self.load32(p + 2 * t)
            } else {  // the last rows: don't read past the buffer
                Self.copy(fallback, p, ow)
                pair = Self.load32(fallback + 2 * t)
            }
            let i = Self.lanes + V(repeating: Float(t))
            return (V().replacing(with: pair.evenHalf, where: i .< V(repeating: Float(tw))),
                    V().replacing(with: pair.oddHalf, where: i .< V(repeating: Float(ow / 2))))
        }
        segments(rows) { img, ty0, cnt, k0 in
            for oc in 0..<o {
                for k in 0..<cnt {
                    let row = 2 * (ty0 + k)
                    let top = UnsafePointer(dy + ((img * o + oc) * oh + row) * ow)
                    let bottom: UnsafePointer<Float>? = row + 1 < oh ? top + ow : nil
                    let out = dm + oc * ld + (k0 + k) * tw
                    for ch16 in 0..<chunks {
                        let t = ch16 * 16
                        let (a0, a1) = rowPair(top, t), (c0, c1) = rowPair(bottom, t)
                        // Q_r[b] = [y0, y0 + y1, y0 - y1, -y1] along columns; rows: dM[a] = [Q0, Q0 + Q1, Q0 - Q1, -Q1].
                        let o = out + t
                        @inline(__always) func column(_ b: Int, _ q0: V, _ q1: V) {
                            Self.store(q0, o + b * plane)
                            Self.store(q0 + q1, o + (4 + b) * plane)
                            Self.store(q0 - q1, o + (8 + b) * plane)
                            Self.store(-q1, o + (12 + b) * plane)
                        }
                        column(0, a0, c0)
                        column(1, a0 + a1, c0 + c1)
                        column(2, a0 - a1, c0 - c1)
                        column(3, -a1, -c1)
                    }
                }
            }
        }
    }

    /// dx += B dV B^T of each tile, into the input [N, C, H, W] (tiles overlap by two rows and
    /// columns; the caller zeroes dx and owns every image of `rows`).
    ///
    /// Down a segment, tile k's last two padded rows are carried into tile k + 1's first two;
    /// finished rows are kept as four parity/shift parts (even columns from this tile, even
    /// columns from the tile to the left, odd likewise), joined and interleaved once the whole
    /// segment is done, then added into dx.
    func inputGradTransform(_ dv: UnsafePointer<Float>, rows: Range<Int>, into dx: UnsafeMutablePointer<Float>,
                            scratch: UnsafeMutablePointer<Float>) {
        let tw = tw, w = w, h = h, pad = pad, ld = ld, sp = span, plane = c * ld, ps = rowStride
        let chunks = (tw + 1 + 15) / 16  // tw + 1 column pairs per padded row
        // fin[q]: [evenA | 16 zeros | evenB | oddA | 16 zeros | oddB], each part sp floats; the
        // zeros are what evenB / oddB read one float before their start.
        let fs = 4 * sp + 32
        let fin = scratch, padded = fin + maxRows * fs, carry = padded + maxRows * ps
        for q in 0..<maxRows {
            (fin + q * fs + sp).update(repeating: 0, count: 16)
            (fin + q * fs + 3 * sp + 16).update(repeating: 0, count: 16)
        }
        @inline(__always) func parts(_ q: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                                   UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
            let f = fin + q * fs
            return (f, f + sp + 16, f + 2 * sp + 16, f + 3 * sp + 32)
        }
        let twv = V(repeating: Float(tw))
        segments(rows) { img, ty0, cnt, k0 in
            let nr = 2 * cnt + 2
            for ch in 0..<c {
                carry.update(repeating: 0, count: 8 * sp)
                for k in 0..<cnt {
                    let base = dv + ch * ld + (k0 + k) * tw
                    for ch16 in 0..<chunks {
                        let t = ch16 * 16
                        // Lanes past the row's last tile hold the next row's tiles (or slack): zero.
                        let live = Self.lanes + V(repeating: Float(t)) .< twv
                        @inline(__always) func dvAt(_ xi: Int) -> V { V().replacing(with: Self.load(base + xi * plane + t), where: live) }
                        // Columns (B along b): padded column 2tx + s gets [R0, R1 - R2 + R3, -R0 + R1 + R2, -R3][s];
                        // s = 0, 1 go to this tile's pair (A parts), s = 2, 3 to the next pair (B parts).
                        @inline(__always) func emit(_ r: Int, _ q0: V, _ q1: V, _ q2: V, _ q3: V) {
                            var ea = q0, oa = q1 - q2 + q3, eb = q1 + q2 - q0, ob = -q3
                            let cr = carry + (r & 1) * 4 * sp + t
                            if r < 2 {  // finish padded row 2k + r with the carry of tile k - 1
                                ea += Self.load(cr); eb += Self.load(cr + sp); oa += Self.load(cr + 2 * sp); ob += Self.load(cr + 3 * sp)
                                let (pa, pb, pc, pd) = parts(2 * k + r)
                                Self.store(ea, pa + t); Self.store(eb, pb + t); Self.store(oa, pc + t); Self.store(ob, pd + t)
                            } else {
                                Self.store(ea, cr); Self.store(eb, cr + sp); Self.store(oa, cr + 2 * sp); Self.store(ob, cr + 3 * sp)
                            }
                        }
                        // Rows (B along a, v[a*4 + b]): R_0 = v0, R_1 = v1 - v2 + v3, R_2 = -v0 + v1 + v2, R_3 = -v3.
                        let v0 = dvAt(0), v1 = dvAt(1), v2 = dvAt(2), v3 = dvAt(3)
                        let v4 = dvAt(4), v5 = dvAt(5), v6 = dvAt(6), v7 = dvAt(7)
                        let v8 = dvAt(8), v9 = dvAt(9), v10 = dvAt(10), v11 = dvAt(11)
                        let v12 = dvAt(12), v13 = dvAt(13), v14 = dvAt(14), v15 = dvAt(15)
                        emit(0, v0, v1, v2, v3)
                        emit(1, v4 - v8 + v12, v5 - v9 + v13, v6 - v10 + v14, v7 - v11 + v15)
                        emit(2, v4 + v8 - v0, v5 + v9 - v1, v6 + v10 - v2, v7 + v11 - v3)
                        emit(3, -v12, -v13, -v14, -v15)
                    }
                }
                // The last tile's bottom rows are the segment's last two padded rows.
                for r in 0..<2 {
                    let (pa, pb, pc, pd) = parts(2 * cnt + r)
                    let cr = carry + r * 4 * sp
                    for ch16 in 0..<chunks {
                        let t = ch16 * 16
                        Self.store(Self.load(cr + t), pa + t); Self.store(Self.load(cr + sp + t), pb + t)
                        Self.store(Self.load(cr + 2 * sp + t), pc + t); Self.store(Self.load(cr + 3 * sp + t), pd + t)
                    }
                }
                // Join the parts (column pair i gets A[i] + B[i - 1]) and interleave.
                for q in 0..<nr {
                    let (pa, pb, pc, pd) = parts(q)
                    let prow = padded + q * ps
                    for ch16 in 0..<chunks {
                        let t = ch16 * 16
                        Self.storeInterleaved(Self.load(pa + t) + Self.load(pb + t - 1), Self.load(pc + t) + Self.load(pd + t - 1), prow + 2 * t)
                    }
                }
                let dplane = dx + (img * c + ch) * h * w
                for q in 0..<nr {
                    let row = 2 * ty0 + q - pad
                    if row < 0 || row >= h { continue }
                    // Padded column j is input column j - pad.
                    Self.add(dplane + row * w, padded + q * ps + pad, w)
                }
            }
        }
    }
}
