import TensorCore

// Winograd F(2x2, 3x3) for 3x3, stride-1 convolutions (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2015). Each 2x2 output tile is computed from a 4x4 input tile d:
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
// with 16 multiplications per (tile, channel pair) instead of 36. With U = G g G^T (per o, c),
// V = B^T d B (per c, tile) and xi one of the 16 positions of the 4x4 transformed tile, the
// products become 16 independent sgemms M_xi [O, T] = U_xi [O, C] * V_xi [C, T]. These are thin
// (O, C = 8..128): TensorCore's SmallGEMM runs them (and dV) without sgemm's packing passes.
//
// The pullback is the exact adjoint of that computation (so gradients match the forward to
// rounding, not only the convolution in exact arithmetic):
//   dM = A dY A^T,  dV_xi = U_xi^T dM_xi,  dd = B dV B^T (added into the overlapping input tiles),
//   dU_xi = sum over tiles of dM_xi V_xi^T,  dg = G^T dU G.
//
// Tiles are processed in blocks of whole tile rows, small enough that the 16 per-block
// matrices stay in L2; each thread takes a contiguous run of blocks (the pullback splits by
// images instead, so that the overlapping input-gradient tiles of an image have one writer).
// The transforms run on 16 tiles at a time in SIMD registers; rows of the layout are
// deinterleaved (even/odd columns) with 32-float loads, one vpermi2ps per half.
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]

struct Winograd3x3 {
    let n: Int, c: Int, h: Int, w: Int, o: Int, pad: Int
    let oh: Int, ow: Int      // output size
    let th: Int, tw: Int      // tile grid per image (2x2 outputs per tile)
    let rowsPerBlock: Int     // tile rows per block
    let tb: Int               // tiles per full block: the leading dimension of the block matrices

    /// Where Winograd pays: 3x3 kernels, stride 1, and enough channels for the sgemms to
    /// dominate the transforms (a 1-channel input layer is cheaper through im2col).
    static func applies(kh: Int, kw: Int, stride: Int, c: Int, o: Int, outH: Int, outW: Int) -> Bool {
        kh == 3 && kw == 3 && stride == 1 && c >= 8 && o >= 8 && outH >= 2 && outW >= 2
    }

    init(n: Int, c: Int, h: Int, w: Int, o: Int, pad: Int) {
        self.n = n; self.c = c; self.h = h; self.w = w; self.o = o; self.pad = pad
        oh = h + 2 * pad - 2; ow = w + 2 * pad - 2
        th = (oh + 1) / 2; tw = (ow + 1) / 2
        // About 16 * (c + o) * tiles floats per block (1 MB at 16k tiles x channels).
        let target = max(tw, 16_384 / (c + o))
        rowsPerBlock = max(1, target / tw)
        tb = rowsPerBlock * tw
    }

    /// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] applied to a 3-vector.
    @inline(__always) static func gTimes(_ a: Float, _ b: Float, _ c: Float) -> (Float, Float, Float, Float) {
        (a, 0.5 * (a + b + c), 0.5 * (a - b + c), c)
    }

    /// G^T applied to a 4-vector (the adjoint of gTimes).
    @inline(__always) static func gTransposeTimes(_ a: Float, _ b: Float, _ c: Float, _ d: Float) -> (Float, Float, Float) {
        (a + 0.5 * (b + c), 0.5 * (b - c), 0.5 * (b + c) + d)
    }

    /// U[xi][o][c] = (G g G^T)[xi] for weights [O, C, 3, 3].
    func transformWeights(_ wt: UnsafePointer<Float>) -> Storage {
        let u = Storage(uninitializedCount: 16 * o * c)
        let oc = o * c, up = u.ptr
        for i in 0..<oc {
            let k = wt + i * 9
            // Columns of g through G (4x3), then each of its 4 rows through G again.
            let c0 = Self.gTimes(k[0], k[3], k[6]), c1 = Self.gTimes(k[1], k[4], k[7]), c2 = Self.gTimes(k[2], k[5], k[8])
            @inline(__always) func row(_ a: Int, _ x: Float, _ y: Float, _ z: Float) {
                let r = Self.gTimes(x, y, z)
                up[(a * 4) * oc + i] = r.0; up[(a * 4 + 1) * oc + i] = r.1
                up[(a * 4 + 2) * oc + i] = r.2; up[(a * 4 + 3) * oc + i] = r.3
            }
            row(0, c0.0, c1.0, c2.0); row(1, c0.1, c1.1, c2.1); row(2, c0.2, c1.2, c2.2); row(3, c0.3, c1.3, c2.3)
        }
        return u
    }

    /// dW[o][c] (3x3) = G^T dU[o][c] G, from dU[xi][o][c].
    func weightGradient(_ du: UnsafePointer<Float>) -> Storage {
        let dw = Storage(uninitializedCount: o * c * 9)
        let oc = o * c, dp = dw.ptr
        for i in 0..<oc {
            @inline(__always) func at(_ xi: Int) -> Float { du[xi * oc + i] }
            // Each row of dU through G^T (4 -> 3 columns), then each column likewise.
            let r0 = Self.gTransposeTimes(at(0), at(1), at(2), at(3)), r1 = Self.gTransposeTimes(at(4), at(5), at(6), at(7))
            let r2 = Self.gTransposeTimes(at(8), at(9), at(10), at(11)), r3 = Self.gTransposeTimes(at(12), at(13), at(14), at(15))
            let k0 = Self.gTransposeTimes(r0.0, r1.0, r2.0, r3.0), k1 = Self.gTransposeTimes(r0.1, r1.1, r2.1, r3.1)
            let k2 = Self.gTransposeTimes(r0.2, r1.2, r2.2, r3.2)
            let k = dp + i * 9
            k[0] = k0.0; k[3] = k0.1; k[6] = k0.2
            k[1] = k1.0; k[4] = k1.1; k[7] = k1.2
            k[2] = k2.0; k[5] = k2.1; k[8] = k2.2
        }
        return dw
    }

    /// Global tile rows (image * th + tile row) in blocks of at most rowsPerBlock.
    func blocks(_ rows: Range<Int>, _ body: (Range<Int>) -> Void) {
        var r = rows.lowerBound
        while r < rows.upperBound {
            let next = min(rows.upperBound, r + rowsPerBlock)
            body(r..<next)
            r = next
        }
    }

    // MARK: passes

    /// Forward over the whole batch: y [N, O, oh, ow]. Tiles are independent here, so the
    /// tile rows of the whole batch are split over the threads (a single image uses them all).
    func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        let u = transformWeights(weight)
        let up = UnsafePointer(u.ptr), ld = ld
        let totalRows = n * th
        let parts = max(1, min(Runtime.threads, (totalRows + rowsPerBlock - 1) / rowsPerBlock))
        let per = (totalRows + parts - 1) / parts
        func run(_ part: Int) {
            let rows = min(totalRows, part * per)..<min(totalRows, (part + 1) * per)
            if rows.isEmpty { return }
            let buf = Storage(zeros: 16 * (c + o) * ld + scratchCount)
            let v = buf.ptr, m = v + 16 * c * ld, tmp = m + 16 * o * ld
            blocks(rows) { block in
                inputTransform(x, rows: block, into: v, scratch: tmp)
                for xi in 0..<16 {
                    SmallGEMM.multiply(m: o, n: block.count * tw, k: c, a: up + xi * o * c, aRow: c, aCol: 1, b: v + xi * c * ld, ldb: ld,
                                       c: m + xi * o * ld, ldc: ld, padded: true)
                }
                outputTransform(m, rows: block, bias: bias, into: y, scratch: tmp)
            }
        }
        if parts == 1 {
            run(0)
        } else {
            Parallel.items(parts, costPerItem: Parallel.grain) { run($0) }
        }
        withExtendedLifetime(u) {}
    }

    /// Pullback: gradients for x (into dx, when given) and for the weight (returned, when
    /// asked). Split by images: input tiles overlap, and one thread must own each image's dx.
    func backward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>?, needWeight: Bool) -> Storage? {
        let u = transformWeights(weight)
        let up = UnsafePointer(u.ptr), ld = ld
        let parts = ConvKernels.parts(n)
        let duParts = needWeight ? Storage(zeros: parts * 16 * o * c) : nil
        ConvKernels.images(n, scratch: 16 * (c + o) * ld + scratchCount, zeroed: true) { part, images, scratch in
            let v = scratch!, dm = v + 16 * c * ld, tmp = dm + 16 * o * ld
            if let dx {
                (dx + images.lowerBound * c * h * w).update(repeating: 0, count: images.count * c * h * w)
            }
            blocks(images.lowerBound * th..<images.upperBound * th) { rows in
                let nt = rows.count * tw
                gradOutputTransform(dy, rows: rows, into: dm, scratch: tmp)
                if let duParts {  // dU_xi += dM_xi V_xi^T
                    let du = duParts.ptr + part * 16 * o * c
                    inputTransform(x, rows: rows, into: v, scratch: tmp)
                    for xi in 0..<16 {
                        BLAS.sgemm(transB: true, m: o, n: c, k: nt, a: dm + xi * o * ld, lda: ld, b: v + xi * c * ld, ldb: ld,
                                   beta: 1, c: du + xi * o * c, ldc: c)
                    }
                }
                if let dx {  // dV_xi = U_xi^T dM_xi, into v's buffer
                    for xi in 0..<16 {
                        SmallGEMM.multiply(m: c, n: nt, k: o, a: up + xi * o * c, aRow: 1, aCol: c, b: dm + xi * o * ld, ldb: ld,
                                           c: v + xi * c * ld, ldc: ld, padded: true)
                    }
                    inputGradTransform(v, rows: rows, into: dx, scratch: tmp)
                }
            }
        }
        withExtendedLifetime(u) {}
        guard let duParts else { return nil }
        let du = ConvKernels.sumParts(duParts, parts: parts, size: 16 * o * c)
        return weightGradient(du.ptr)
    }
}
