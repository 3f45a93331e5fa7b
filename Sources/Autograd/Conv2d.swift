import TensorCore

// 2-D convolution. 3x3 stride-1 convolutions with 8+ channels in and out run through Winograd
// F(2x2, 3x3) (Conv2dWinograd.swift: 2.25x fewer multiplications), stride-1 ones with one or two
// output channels directly (Conv2dDirect.swift); all others through im2col +
// sgemm, one image at a time per worker thread, with 1x1 stride-1 unpadded kernels using the
// image itself as the column matrix.
//
// Per image n, with cols_n = im2col(x_n) of shape [C*kh*kw, Ho*Wo]:
//   forward   Y_n  = W [O, C*kh*kw] * cols_n                (+ bias, preloaded into Y_n)
//   backward  dW  += dY_n * cols_n^T (computed transposed),   db += rowsum(dY_n)
//             dX_n = col2im(W^T * dY_n)
// The batch is split into one contiguous range per thread; each thread keeps its column buffer
// (about 1-2 MB, L2-sized for our layers) hot between im2col and its sgemm, and runs BLAS on a
// single thread. The pullback rebuilds cols_n instead of keeping the whole batch's column
// matrix alive between forward and backward (9x the input's size).

extension Tensor {
    /// Cross-correlation (PyTorch's conv2d) of x [N, C, H, W] with weight [O, C, kh, kw] and an
    /// optional bias [O], square stride and zero padding -> [N, O, Ho, Wo].
    public func conv2d(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) throws -> Tensor {
        let x = self
        guard x.rank == 4 else {
            throw ShapeError(op: "conv2d", "input must have shape [N, C, H, W], got \(x.shape)")
        }
        guard weight.rank == 4 else {
            throw ShapeError(op: "conv2d", "weight must have shape [O, C, kh, kw], got \(weight.shape)")
        }
        guard stride >= 1, padding >= 0 else {
            throw ShapeError(op: "conv2d", "stride must be >= 1 and padding >= 0, got stride \(stride), padding \(padding)")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        guard weight.shape[1] == c else {
            throw ShapeError(op: "conv2d", "input \(x.shape) has \(c) channels but weight \(weight.shape) expects \(weight.shape[1])")
        }
        guard kh >= 1, kw >= 1, kh <= h + 2 * padding, kw <= w + 2 * padding else {
            throw ShapeError(op: "conv2d", "kernel \(kh)x\(kw) of weight \(weight.shape) does not fit the input \(x.shape) "
                             + "padded to \(h + 2 * padding)x\(w + 2 * padding)")
        }
        if let bias, bias.shape != [o] {
            throw ShapeError(op: "conv2d", "bias must have shape [\(o)] for weight \(weight.shape), got \(bias.shape)")
        }
        let geo = ConvGeometry(channels: c, height: h, width: w, kh: kh, kw: kw, stride: stride, padding: padding)
        let kc = geo.colRows, p = geo.colCols, inSize = c * h * w
        let outShape = [n, o, geo.outH, geo.outW]
        let out = Storage(uninitializedCount: n * o * p)
        let xp = x.storage.ptr, wp = weight.storage.ptr, yp = out.ptr
        let bp = bias?.storage.ptr
        let wino = Winograd3x3.applies(kh: kh, kw: kw, stride: stride, c: c, o: o, outH: geo.outH, outW: geo.outW)
            ? Winograd3x3(n: n, c: c, h: h, w: w, o: o, pad: padding) : nil
        let direct = wino == nil && DirectConv.applies(kh: kh, kw: kw, stride: stride, o: o)
            ? DirectConv(n: n, c: c, h: h, w: w, o: o, kh: kh, kw: kw, pad: padding) : nil

        if let wino {
            wino.forward(x: xp, weight: wp, bias: bp, y: yp)
        } else if let direct {
            direct.forward(x: xp, weight: wp, bias: bp, y: yp)
        } else {
            ConvKernels.images(n, scratch: geo.isPointwise ? 0 : kc * p + Im2col.im2colSlack) { _, images, cols in
                for img in images {
                    let xi = xp + img * inSize, yi = yp + img * o * p
                    var src = UnsafePointer(xi)
                    if let cols {
                        Im2col.im2col(xi, geo, into: cols)
                        src = UnsafePointer(cols)
                    }
                    if let bp { for oo in 0..<o { (yi + oo * p).update(repeating: bp[oo], count: p) } }
                    BLAS.sgemm(m: o, n: p, k: kc, a: wp, lda: kc, b: src, ldb: p, beta: bp == nil ? 0 : 1, c: yi, ldc: p)
                }
            }
        }

        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        // With profiling on, each conv shape gets its own row.
        let name = OpProfile.enabled ? "conv2d \(c)->\(o) \(kh)x\(kw)/\(stride) at \(h)x\(w)" : "conv2d"
        return Tensor.result(name, shape: outShape, storage: out, inputs: inputs) { g in
            let needX = x.requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad ?? false
            let gp = g.storage.ptr
            let gx = needX ? Storage(uninitializedCount: n * inSize) : nil
            let gb = needB ? ConvKernels.biasGradient(gp, n: n, o: o, p: p) : nil
            func result(_ gw: Storage?) -> [Tensor?] {
                var grads: [Tensor?] = [gx.map { Tensor(shape: x.shape, storage: $0) }, gw.map { Tensor(shape: weight.shape, storage: $0) }]
                if bias != nil { grads.append(gb.map { Tensor(shape: [o], storage: $0) }) }
                return grads
            }
            if let wino {
                return result(wino.backward(x: xp, weight: wp, dy: gp, dx: gx?.ptr, needWeight: needW))
            }
            if let direct {
                return result(direct.backward(x: xp, weight: wp, dy: gp, dx: gx?.ptr, needWeight: needW))
            }
            let parts = ConvKernels.parts(n)
            // Per-thread partial sums of dW^T, added up (and transposed) after the parallel loop.
            let gwParts = needW ? Storage(zeros: parts * o * kc) : nil
            // The column buffer holds cols_n for dW, then is reused for W^T * dY_n.
            let scratch = geo.isPointwise || !(needW || needX) ? 0 : kc * p + Im2col.im2colSlack

            ConvKernels.images(n, scratch: scratch) { part, images, cols in
                for img in images {
                    let xi = xp + img * inSize, gi = gp + img * o * p
                    if let gwParts {
                        var src = UnsafePointer(xi)
                        if let cols {
                            Im2col.im2col(xi, geo, into: cols)
                            src = UnsafePointer(cols)
                        }
                        // dW^T [kc, o] += cols_n * dY_n^T: OpenBLAS runs this orientation faster
                        // than dY_n * cols_n^T when o is small (32 channels: ~10%).
                        BLAS.sgemm(transB: true, m: kc, n: o, k: p, a: src, lda: p, b: gi, ldb: p, beta: 1,
                                   c: gwParts.ptr + part * o * kc, ldc: o)
                    }
                    if let gx {
                        let dxi = gx.ptr + img * inSize
                        if let cols {
                            BLAS.sgemm(transA: true, m: kc, n: p, k: o, a: wp, lda: kc, b: gi, ldb: p, c: cols, ldc: p)
                            Im2col.col2im(cols, geo, into: dxi)
                        } else {  // pointwise: dX_n = W^T dY_n directly
                            BLAS.sgemm(transA: true, m: c, n: p, k: o, a: wp, lda: c, b: gi, ldb: p, c: dxi, ldc: p)
                        }
                    }
                }
            }
            return result(gwParts.map { ConvKernels.sumPartsTransposed($0, parts: parts, rows: kc, cols: o) })
        }
    }
}

/// Batch splitting and small reductions shared by the conv forward and pullback.
enum ConvKernels {
    /// Number of contiguous image ranges the batch is split into (one per thread).
    static func parts(_ n: Int) -> Int { max(1, min(Runtime.threads, n)) }

    /// Runs `body(part, images, scratch)` over one contiguous range of images per thread, each
    /// with its own scratch buffer of `scratch` floats (nil when 0). With one part, sgemm splits
    /// itself over the pool (a single image still uses both cores); otherwise the pool is taken
    /// and each sgemm runs on its own thread.
    static func images(_ n: Int, scratch: Int, zeroed: Bool = false, _ body: (Int, Range<Int>, UnsafeMutablePointer<Float>?) -> Void) {
        let parts = parts(n)
        let per = (n + parts - 1) / parts
        func run(_ part: Int) {
            let range = min(n, part * per)..<min(n, (part + 1) * per)
            if range.isEmpty { return }
            let buf = scratch > 0 ? (zeroed ? Storage(zeros: scratch) : Storage(uninitializedCount: scratch)) : nil
            withExtendedLifetime(buf) { body(part, range, buf?.ptr) }
        }
        if parts == 1 { run(0); return }
        Parallel.items(parts, costPerItem: Parallel.grain) { run($0) }
    }

    /// Elementwise sum of `parts` consecutive blocks of `size` floats.
    static func sumParts(_ s: Storage, parts: Int, size: Int) -> Storage {
        if parts == 1 { return s }
        let out = Storage(uninitializedCount: size)
        out.ptr.update(from: s.ptr, count: size)
        for q in 1..<parts {
            let src = s.ptr + q * size
            for i in 0..<size { out.ptr[i] += src[i] }
        }
        return out
    }

    /// The transpose [cols, rows] of the sum of `parts` consecutive [rows, cols] blocks.
    static func sumPartsTransposed(_ s: Storage, parts: Int, rows: Int, cols: Int) -> Storage {
        let out = Storage(uninitializedCount: rows * cols)
        let size = rows * cols
        for r in 0..<rows {
            for c in 0..<cols {
                var acc: Float = 0
                for q in 0..<parts { acc += s.ptr[q * size + r * cols + c] }
                out.ptr[c * rows + r] = acc
            }
        }
        return out
    }

    /// db[o] = sum over images and positions of dY [N, O, P].
    static func biasGradient(_ gp: UnsafePointer<Float>, n: Int, o: Int, p: Int) -> Storage {
        let gb = Storage(uninitializedCount: o)
        let out = gb.ptr
        Parallel.items(o, costPerItem: n * p) { oc in
            var acc: Float = 0
            for img in 0..<n { acc += Reduce.sum(gp + (img * o + oc) * p, p) }
            out[oc] = acc
        }
        return gb
    }
}
