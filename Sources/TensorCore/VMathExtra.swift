/// More vectorised float math for the activation kernels: exp, log, sqrt, tanh, sigmoid, erf,
/// erfc and the normal CDF, all on SIMD16 lanes. Polynomial coefficients were fitted for this
/// file (weighted least squares iterated towards minimax, against double-precision references);
/// measured errors are a few ulp (see the accuracy tests in AutogradTests/UnaryGradTests).
///
/// Only SIMD operations that the compiler inlines are used here. Some generic stdlib SIMD
/// members are *not* inlined and run lane by lane through a call: `clamped(lowerBound:
/// upperBound:)`, `squareRoot()` (16 scalar sqrtf calls) and `SIMD16<Float>(SIMD16<Int32>)`;
/// pointwiseMin/Max become scalar loops. Hence compare + blend, a Newton square root and a
/// magic-number int-to-float below.
public enum VMathExtra {
    public typealias V = SIMD16<Float>
    public typealias I = SIMD16<Int32>

    /// Lane-wise max / min as compare + blend (NaN in `a` propagates). The stdlib's
    /// pointwiseMax/Min compile to a scalar loop over the lanes.
    @inlinable @inline(__always)
    public static func max(_ a: V, _ b: V) -> V { a.replacing(with: b, where: a .< b) }
    @inlinable @inline(__always)
    public static func min(_ a: V, _ b: V) -> V { a.replacing(with: b, where: a .> b) }

    /// |x| and sign transfer by bit masks. (Blending -x under a mask can make LLVM split the
    /// surrounding code into 128-bit pieces, 4x the instructions.)
    @inlinable @inline(__always)
    public static func abs(_ x: V) -> V {
        unsafeBitCast(unsafeBitCast(x, to: I.self) & I(repeating: 0x7FFF_FFFF), to: V.self)
    }
    /// `mag` (>= 0) with the sign of `x`.
    @inlinable @inline(__always)
    static func withSign(_ mag: V, of x: V) -> V {
        unsafeBitCast(unsafeBitCast(mag, to: I.self) | (unsafeBitCast(x, to: I.self) & I(repeating: Int32(bitPattern: 0x8000_0000))), to: V.self)
    }

    /// exp: Cody-Waite reduction and the degree-6 polynomial of VMath.exp, accurate (~2 ulp) on
    /// [-87.3, 88.3]; 0 below and +inf above. The argument is clamped by compare + blend
    /// (VMath.exp's `clamped` costs a call).
    @inlinable @inline(__always)
    public static func exp(_ x: V) -> V {
        let xc = max(min(x, V(repeating: 88.3)), V(repeating: -87.3))
        let magic = V(repeating: 12_582_912.0)  // 1.5 * 2^23: adding it rounds to an integer
        let k = xc * V(repeating: 1.442_695_04) + magic
        let n = k - magic
        var r = xc.addingProduct(n, V(repeating: -0.693_145_751_953_125))
        r = r.addingProduct(n, V(repeating: -1.428_606_765_330_187e-6))
        var p = V(repeating: 1.987_569_1e-4)
        p = V(repeating: 1.398_199_9e-3).addingProduct(p, r)
        p = V(repeating: 8.333_452e-3).addingProduct(p, r)
        p = V(repeating: 4.166_579_6e-2).addingProduct(p, r)
        p = V(repeating: 1.666_666_5e-1).addingProduct(p, r)
        p = V(repeating: 5e-1).addingProduct(p, r)
        p = r.addingProduct(p, r * r) + V(repeating: 1)
        let kb = unsafeBitCast(k, to: I.self) &- unsafeBitCast(magic, to: I.self)
        let scale = unsafeBitCast((kb &+ 127) &<< 23, to: V.self)
        // Outside the clamp: flush to 0 below, saturate to inf above (so 1/(1 + e) is exactly
        // 0 or 1 in the tails). Tensor.exp() itself covers the denormal and top range exactly.
        return (p * scale).replacing(with: 0, where: x .< V(repeating: -87.3))
            .replacing(with: .infinity, where: x .> V(repeating: 88.3))
    }

    /// Exact Int32 -> Float for |i| < 2^22 (the stdlib conversion is an outlined call).
    @inlinable @inline(__always)
    static func float(_ i: I) -> V {
        unsafeBitCast(i &+ I(repeating: 0x4B40_0000), to: V.self) - V(repeating: 12_582_912.0)
    }

    /// Square root, correctly rounded (equal to Float.squareRoot() for every input; checked
    /// exhaustively over all 2^31 non-negative floats): rsqrt from a bit-trick guess and three
    /// Newton steps, one residual correction s + r/2 (x - s^2) (~0.5 ulp), then Tuckerman's
    /// test picks s or a neighbour: s = RN(sqrt x) iff s*pred(s) < x <= s*succ(s), each side's
    /// sign exact through an FMA. Inputs below 2^-64 are scaled by 2^64 so those residuals stay
    /// normal numbers. About 3x faster than the stdlib's lane-by-lane squareRoot().
    @inlinable @inline(__always)
    public static func sqrt(_ x: V) -> V {
        let tiny = x .< V(repeating: 0x1p-64)
        let xs = x.replacing(with: x * V(repeating: 0x1p64), where: tiny)
        var r = unsafeBitCast(I(repeating: 0x5F37_5A86) &- (unsafeBitCast(xs, to: I.self) &>> 1), to: V.self)
        let hx = xs * V(repeating: 0.5)
        for _ in 0..<3 { r = r * V(repeating: 1.5).addingProduct(-(hx * r), r) }
        var s = xs * r
        s = s.addingProduct(r * V(repeating: 0.5), xs.addingProduct(-s, s))
        let sb = unsafeBitCast(s, to: I.self)
        let below = unsafeBitCast(sb &- 1, to: V.self), above = unsafeBitCast(sb &+ 1, to: V.self)
        let tooBig = xs.addingProduct(-s, below) .<= V(repeating: 0)
        let tooSmall = xs.addingProduct(-s, above) .> V(repeating: 0)
        s = s.replacing(with: below, where: tooBig).replacing(with: above, where: tooSmall)
        s = s.replacing(with: s * V(repeating: 0x1p-32), where: tiny)
        s = s.replacing(with: x, where: (x .== V(repeating: 0)) .| (x .== V(repeating: .infinity)) .| (x .!= x))
        return s.replacing(with: V(repeating: .nan), where: x .< V(repeating: 0))
    }

    /// Natural log. x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log(1+f) = f - f^2/2 + f^3 P(f).
    /// Special values follow IEEE: log(0) = -inf, log(<0) = NaN, log(inf) = inf, NaN stays NaN.
    @inlinable @inline(__always)
    public static func log(_ x: V) -> V {
        // Denormals: scale into the normal range first so the exponent bits are meaningful.
        let tiny = x .< V(repeating: Float.leastNormalMagnitude)
        let xs = x.replacing(with: x * V(repeating: 8_388_608.0), where: tiny)  // * 2^23
        let bits = unsafeBitCast(xs, to: I.self)
        var e = ((bits &>> 23) & I(repeating: 0xFF)) &- I(repeating: 127)
        e = e.replacing(with: e &- I(repeating: 23), where: tiny)
        var m = unsafeBitCast((bits & I(repeating: 0x007F_FFFF)) | I(repeating: 0x3F80_0000), to: V.self)
        let big = m .> V(repeating: 1.414_213_56)
        m = m.replacing(with: m * V(repeating: 0.5), where: big)
        e = e.replacing(with: e &+ I(repeating: 1), where: big)
        let f = m - V(repeating: 1)
        var p = V(repeating: -0.076_344_601_809_978_49)
        p = V(repeating: 0.127_615_630_626_678_47).addingProduct(p, f)
        p = V(repeating: -0.131_601_899_862_289_43).addingProduct(p, f)
        p = V(repeating: 0.142_017_602_920_532_23).addingProduct(p, f)
        p = V(repeating: -0.166_233_569_383_621_22).addingProduct(p, f)
        p = V(repeating: 0.200_012_266_635_894_78).addingProduct(p, f)
        p = V(repeating: -0.250_008_195_638_656_6).addingProduct(p, f)
        p = V(repeating: 0.333_333_313_465_118_4).addingProduct(p, f)
        let ef = float(e)
        let f2 = f * f
        // ln2 split in a few-bit head (exact products with e) and a tail.
        var tail = (f2 * f) * p
        tail = tail.addingProduct(ef, V(repeating: -2.121_944_4e-4))
        tail = tail.addingProduct(f2, V(repeating: -0.5))
        var r = (f + tail).addingProduct(ef, V(repeating: 0.693_359_375))
        r = r.replacing(with: V(repeating: -.infinity), where: x .== V(repeating: 0))
        r = r.replacing(with: V(repeating: .nan), where: x .< V(repeating: 0))
        r = r.replacing(with: x, where: x .== V(repeating: .infinity))
        r = r.replacing(with: x, where: x .!= x)
        return r
    }

    /// tanh: an odd polynomial on |x| < 0.625 (where 1 - 2/(e^2x + 1) would cancel), else
    /// 1 - 2/(exp(2|x|) + 1) with the sign restored (exp saturates to inf: exactly +-1 far out).
    @inlinable @inline(__always)
    public static func tanh(_ x: V) -> V {
        let ax = abs(x)
        let u = x * x
        var p = V(repeating: 0.002_128_507_709_130_645)
        p = V(repeating: -0.008_159_114_047_884_941).addingProduct(p, u)
        p = V(repeating: 0.021_691_821_515_560_15).addingProduct(p, u)
        p = V(repeating: -0.053_944_699_466_228_485).addingProduct(p, u)
        p = V(repeating: 0.133_331_835_269_927_98).addingProduct(p, u)
        p = V(repeating: -0.333_333_283_662_796).addingProduct(p, u)
        let small = x.addingProduct(x * u, p)
        let e = exp(ax + ax)
        let big = withSign(V(repeating: 1) - V(repeating: 2) / (e + V(repeating: 1)), of: x)
        var r = big.replacing(with: small, where: ax .< V(repeating: 0.625))
        r = r.replacing(with: x, where: x .!= x)
        return r
    }

    /// 1 / (1 + exp(-x)); saturates cleanly to 0 and 1.
    @inlinable @inline(__always)
    public static func sigmoid(_ x: V) -> V {
        V(repeating: 1) / (V(repeating: 1) + exp(-x))
    }

    /// exp(-x^2) without the error of rounding x^2 first (which would cost x^2 * eps relative):
    /// x = h + l with h holding 12 bits, so h^2 is exact and x^2 - h^2 = l * (x + h) is small.
    /// Zero once x^2 > 87.3 (below Float's normal range).
    @inlinable @inline(__always)
    public static func expNegSquare(_ x: V) -> V {
        let h = unsafeBitCast(unsafeBitCast(x, to: I.self) & I(repeating: Int32(bitPattern: 0xFFFF_F000)), to: V.self)
        let r = exp(-(h * h)) * expSmall(-((x - h) * (x + h)))
        return r.replacing(with: 0, where: x * x .> V(repeating: 87.3))
    }

    /// exp(b) for the small remainder |b| < 0.09 of the x^2 splits: Taylor to b^5 (error < 1e-9).
    @inlinable @inline(__always)
    static func expSmall(_ b: V) -> V {
        var p = V(repeating: 1.0 / 120)
        p = V(repeating: 1.0 / 24).addingProduct(p, b)
        p = V(repeating: 1.0 / 6).addingProduct(p, b)
        p = V(repeating: 0.5).addingProduct(p, b)
        p = V(repeating: 1).addingProduct(p, b)
        return V(repeating: 1).addingProduct(p, b)
    }

    /// erfc(a) * exp(a^2) for a >= 0.75, as a polynomial in t = 1 / (1 + a/2).
    @inlinable @inline(__always)
    static func erfcxTail(_ a: V) -> V {
        let t = V(repeating: 1) / V(repeating: 1).addingProduct(a, V(repeating: 0.5))
        var p = V(repeating: 0.062_915_936_112_403_87)
        p = V(repeating: -0.127_641_707_658_767_7).addingProduct(p, t)
        p = V(repeating: -0.052_827_168_256_044_39).addingProduct(p, t)
        p = V(repeating: 0.163_897_022_604_942_32).addingProduct(p, t)
        p = V(repeating: 0.131_410_360_336_303_7).addingProduct(p, t)
        p = V(repeating: 0.260_460_764_169_693).addingProduct(p, t)
        p = V(repeating: 0.279_717_981_815_338_13).addingProduct(p, t)
        p = V(repeating: 0.282_318_681_478_500_37).addingProduct(p, t)
        p = V(repeating: -8.827_013_516_565_785e-6).addingProduct(p, t)
        return p
    }

    /// erf(x) / x on |x| < 0.75, as a polynomial in x^2.
    @inlinable @inline(__always)
    static func erfOverX(_ u: V) -> V {
        var p = V(repeating: -6.749_512_394_890_189e-4)
        p = V(repeating: 0.005_114_345_345_646_143).addingProduct(p, u)
        p = V(repeating: -0.026_834_623_888_134_956).addingProduct(p, u)
        p = V(repeating: 0.112_833_768_129_348_75).addingProduct(p, u)
        p = V(repeating: -0.376_126_199_960_708_6).addingProduct(p, u)
        p = V(repeating: 1.128_379_106_521_606_4).addingProduct(p, u)
        return p
    }

    /// Gauss error function.
    @inlinable @inline(__always)
    public static func erf(_ x: V) -> V {
        let ax = abs(x)
        let small = x * erfOverX(x * x)
        // Past a^2 > 87 the tail is below Float's normal range: treat erfc as 0.
        var tailc = expNegSquare(ax) * erfcxTail(ax)
        tailc = tailc.replacing(with: 0, where: ax .> V(repeating: 9.3))
        let big = withSign(V(repeating: 1) - tailc, of: x)
        var r = big.replacing(with: small, where: ax .< V(repeating: 0.75))
        r = r.replacing(with: x, where: x .!= x)
        return r
    }

    /// Complementary error function 1 - erf(x), accurate in relative terms for large x.
    /// (normalCDF repeats this body: moved into a shared inlined helper, LLVM split both
    /// into 128-bit pieces, 4x the instructions.)
    @inlinable @inline(__always)
    public static func erfc(_ x: V) -> V {
        let ax = abs(x)
        let small = V(repeating: 1) - x * erfOverX(x * x)
        var tail = expNegSquare(ax) * erfcxTail(ax)  // erfc(|x|)
        tail = tail.replacing(with: 0, where: ax .> V(repeating: 9.3))
        let big = tail.replacing(with: V(repeating: 2) - tail, where: x .< V(repeating: 0))
        let r = big.replacing(with: small, where: ax .< V(repeating: 0.75))
        return r.replacing(with: x, where: x .!= x)
    }

    /// exp(-x^2 / 2), with x^2 split as in `expNegSquare`.
    @inlinable @inline(__always)
    public static func expNegHalfSquare(_ x: V) -> V {
        let h = unsafeBitCast(unsafeBitCast(x, to: I.self) & I(repeating: Int32(bitPattern: 0xFFFF_F000)), to: V.self)
        let r = exp(-(h * h) * V(repeating: 0.5)) * expSmall(-((x - h) * (x + h)) * V(repeating: 0.5))
        return r.replacing(with: 0, where: x * x .> V(repeating: 174.6))
    }

    /// Standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2. exp(-z^2) is taken from x itself
    /// (z^2 = x^2 / 2), so rounding z costs nothing in the far tail.
    @inlinable @inline(__always)
    public static func normalCDF(_ x: V) -> V {
        let z = x * V(repeating: -0.707_106_781_186_547_5)
        let az = abs(z)
        let small = V(repeating: 1) - z * erfOverX(z * z)
        var tail = expNegHalfSquare(x) * erfcxTail(az)  // erfc(|z|)
        tail = tail.replacing(with: 0, where: az .> V(repeating: 9.3))
        let big = tail.replacing(with: V(repeating: 2) - tail, where: z .< V(repeating: 0))
        let r = big.replacing(with: small, where: az .< V(repeating: 0.75))
        return V(repeating: 0.5) * r.replacing(with: x, where: x .!= x)
    }
}
