import CBLAS

/// The shape of one image's convolution: input [C, H, W], kernel kh x kw, square stride and
/// zero padding, output [outH, outW]. The column matrix is [C*kh*kw, outH*outW], row
/// (c, ki, kj) holding the input pixel each output position sees through kernel tap (ki, kj).
public struct ConvGeometry: Sendable, Equatable {
    public let channels: Int, height: Int, width: Int
    public let kh: Int, kw: Int, stride: Int, padding: Int
    public let outH: Int, outW: Int

    /// Callers validate the sizes (positive stride, kernel within the padded input).
    public init(channels: Int, height: Int, width: Int, kh: Int, kw: Int, stride: Int, padding: Int) {
        self.channels = channels; self.height = height; self.width = width
        self.kh = kh; self.kw = kw; self.stride = stride; self.padding = padding
        outH = (height + 2 * padding - kh) / stride + 1
        outW = (width + 2 * padding - kw) / stride + 1
    }

    public var colRows: Int { channels * kh * kw }
    public var colCols: Int { outH * outW }
    /// A 1x1 kernel with stride 1 and no padding: the image itself is the column matrix.
    public var isPointwise: Bool { kh == 1 && kw == 1 && stride == 1 && padding == 0 }
}

/// im2col / col2im for one image. Rows of the column matrix are written in (c, ki, kj) order so
/// one input plane stays in L1 while its kh*kw rows are produced. A zero-padded copy of each
/// plane (a few KB, on the stack) removes every boundary test from the inner loops: with stride
/// 1 each output row is a plain copy (or add) of outW floats.
public enum Im2col {
    typealias V16 = SIMD16<Float>

    /// cols[C*kh*kw, outH*outW] <- patches of x[C, H, W] (zeros where the kernel hits padding).
    public static func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, into cols: UnsafeMutablePointer<Float>) {
        let h = g.height, w = g.width, pad = g.padding
        let hp = h + 2 * pad, wp = w + 2 * pad
        if pad == 0 && g.stride == 1 {
            for c in 0..<g.channels { planeToCols(x + c * h * w, rowStride: w, g, cols + c * g.kh * g.kw * g.colCols) }
            return
        }
        // Stride 2 reads 32 floats at a time (keeping the even ones): 32 floats of slack.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: hp * wp + 32) { buf in
            let padded = buf.baseAddress!
            padded.initialize(repeating: 0, count: hp * wp + 32)  // the border stays zero for every channel
            for c in 0..<g.channels {
                let plane = x + c * h * w
                for i in 0..<h { copy(padded + (i + pad) * wp + pad, plane + i * w, w) }
                planeToCols(padded, rowStride: wp, g, cols + c * g.kh * g.kw * g.colCols)
            }
        }
    }

    /// The kh*kw column rows of one (already padded) plane.
    @inline(__always)
    static func planeToCols(_ plane: UnsafePointer<Float>, rowStride: Int, _ g: ConvGeometry, _ dst: UnsafeMutablePointer<Float>) {
        let s = g.stride, oh = g.outH, ow = g.outW
        var d = dst
        for ki in 0..<g.kh {
            for kj in 0..<g.kw {
                for i in 0..<oh {
                    let src = plane + (i * s + ki) * rowStride + kj
                    if s == 1 {
                        copy(d, src, ow)
                    } else if s == 2 {
                        // The even lanes of 32 consecutive floats are 16 stride-2 samples.
                        if ow >= 16 {
                            var j = 0
                            while j + 16 <= ow {
                                store(UnsafeRawPointer(src + 2 * j).loadUnaligned(as: SIMD32<Float>.self).evenHalf, d + j)
                                j += 16
                            }
                            if j < ow {
                                store(UnsafeRawPointer(src + 2 * (ow - 16)).loadUnaligned(as: SIMD32<Float>.self).evenHalf, d + ow - 16)
                            }
                        } else {
                            // All 16 lanes: the spill past this row lands where the next row (or
                            // the caller's slack, `im2colSlack`) is written next.
                            store(UnsafeRawPointer(src).loadUnaligned(as: SIMD32<Float>.self).evenHalf, d)
                        }
                    } else {
                        for j in 0..<ow { d[j] = src[j * s] }
                    }
                    d += ow
                }
            }
        }
    }

    /// dx[C, H, W] <- the sum, over column entries, of each entry into the pixel it was read
    /// from (the adjoint of `im2col`). Overwrites dx.
    public static func col2im(_ cols: UnsafePointer<Float>, _ g: ConvGeometry, into dx: UnsafeMutablePointer<Float>) {
        if g.stride == 2 { return col2imStride2(cols, g, into: dx) }
        let h = g.height, w = g.width, pad = g.padding, s = g.stride
        let hp = h + 2 * pad, wp = w + 2 * pad
        let oh = g.outH, ow = g.outW
        withUnsafeTemporaryAllocation(of: Float.self, capacity: hp * wp) { buf in
            let padded = buf.baseAddress!
            var src = cols
            for c in 0..<g.channels {
                padded.initialize(repeating: 0, count: hp * wp)
                for ki in 0..<g.kh {
                    for kj in 0..<g.kw {
                        for i in 0..<oh {
                            let d = padded + (i * s + ki) * wp + kj
                            if s == 1 {
                                add(d, src, ow)
                            } else {
                                for j in 0..<ow { d[j * s] += src[j] }
                            }
                            src += ow
                        }
                    }
                }
                let plane = dx + c * h * w
                for i in 0..<h { copy(plane + i * w, padded + (i + pad) * wp + pad, w) }
            }
        }
    }

    /// Stride 2: padded column 2j + kj is even column j + kj/2 (kj even) or odd column j (kj
    /// odd), so the padded plane is kept as separate even and odd column planes and every add
    /// is contiguous; they are interleaved back once per channel.
    static func col2imStride2(_ cols: UnsafePointer<Float>, _ g: ConvGeometry, into dx: UnsafeMutablePointer<Float>) {
        let h = g.height, w = g.width, pad = g.padding
        let hp = h + 2 * pad, wp = w + 2 * pad
        let oh = g.outH, ow = g.outW
        let wh = (wp + 1) / 2 + 16  // floats per parity row, with the interleave's slack
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * hp * wh) { buf in
            let even = buf.baseAddress!, odd = even + hp * wh, joined = odd + hp * wh  // joined: [hp][2 * wh]
            var src = cols
            for c in 0..<g.channels {
                even.initialize(repeating: 0, count: 2 * hp * wh)
                for ki in 0..<g.kh {
                    for kj in 0..<g.kw {
                        let base = (kj & 1 == 0 ? even : odd) + kj / 2
                        for i in 0..<oh {
                            let d = base + (2 * i + ki) * wh
                            if ow < 16 {  // one masked vector: lanes past the row add zero
                                let live = lanes .< SIMD16<Float>(repeating: Float(ow))
                                let v = V16().replacing(with: UnsafeRawPointer(src).loadUnaligned(as: V16.self), where: live)
                                store(UnsafeRawPointer(d).loadUnaligned(as: V16.self) + v, d)
                            } else {
                                add(d, src, ow)
                            }
                            src += ow
                        }
                    }
                }
                for r in pad..<(pad + h) {
                    var j = 0
                    while j < (wp + 1) / 2 {
                        var v = SIMD32<Float>()
                        v.evenHalf = UnsafeRawPointer(even + r * wh + j).loadUnaligned(as: V16.self)
                        v.oddHalf = UnsafeRawPointer(odd + r * wh + j).loadUnaligned(as: V16.self)
                        UnsafeMutableRawPointer(joined + r * 2 * wh + 2 * j).storeBytes(of: v, as: SIMD32<Float>.self)
                        j += 16
                    }
                }
                let plane = dx + c * h * w
                for i in 0..<h { copy(plane + i * w, joined + (i + pad) * 2 * wh + pad, w) }
            }
        }
    }

    static let lanes = V16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

    /// Floats a column buffer needs past its C*kh*kw*outH*outW entries (vector spill).
    public static let im2colSlack = 16

    @inline(__always)
    static func store(_ v: V16, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self) }

    /// d[0..<n] = s[0..<n] in 16-lane pieces; the last piece overlaps the previous one instead
    /// of falling back to a scalar tail (d and s never overlap).
    @inline(__always)
    static func copy(_ d: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, _ n: Int) {
        if n >= 16 {
            var i = 0
            while i + 16 <= n {
                UnsafeMutableRawPointer(d + i).storeBytes(of: UnsafeRawPointer(s + i).loadUnaligned(as: V16.self), as: V16.self)
                i += 16
            }
            if i < n {
                UnsafeMutableRawPointer(d + n - 16).storeBytes(of: UnsafeRawPointer(s + n - 16).loadUnaligned(as: V16.self), as: V16.self)
            }
        } else if n >= 4 {
            typealias V4 = SIMD4<Float>
            var i = 0
            while i + 4 <= n {
                UnsafeMutableRawPointer(d + i).storeBytes(of: UnsafeRawPointer(s + i).loadUnaligned(as: V4.self), as: V4.self)
                i += 4
            }
            if i < n {
                UnsafeMutableRawPointer(d + n - 4).storeBytes(of: UnsafeRawPointer(s + n - 4).loadUnaligned(as: V4.self), as: V4.self)
            }
        } else {
            for i in 0..<n { d[i] = s[i] }
        }
    }

    /// d[0..<n] += s[0..<n].
    @inline(__always)
    static func add(_ d: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + 16 <= n {
            let v = UnsafeRawPointer(d + i).loadUnaligned(as: V16.self) + UnsafeRawPointer(s + i).loadUnaligned(as: V16.self)
            UnsafeMutableRawPointer(d + i).storeBytes(of: v, as: V16.self)
            i += 16
        }
        typealias V4 = SIMD4<Float>
        while i + 4 <= n {
            let v = UnsafeRawPointer(d + i).loadUnaligned(as: V4.self) + UnsafeRawPointer(s + i).loadUnaligned(as: V4.self)
            UnsafeMutableRawPointer(d + i).storeBytes(of: v, as: V4.self)
            i += 4
        }
        while i < n { d[i] += s[i]; i += 1 }
    }
}
