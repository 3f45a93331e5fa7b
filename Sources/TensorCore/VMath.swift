/// Vectorised float math for the elementwise kernels. `exp` uses Cody-Waite range reduction
/// and a degree-6 polynomial (max rel. error ~2 ulp on [-87, 88]); the 2^n scale is built from
/// bits (a magic-number round), which vectorises where Int32(x) conversions do not.
public enum VMath {
    public typealias V = SIMD16<Float>

    @inlinable @inline(__always)
    public static func exp(_ x: V) -> V {
        // Clamp with compare-and-blend: SIMD `clamped` compiles to a library call.
        var xc = x
        xc.replace(with: V(repeating: -87.3), where: xc .< V(repeating: -87.3))
        xc.replace(with: V(repeating: 88.3), where: xc .> V(repeating: 88.3))
        let magic = V(repeating: 12_582_912.0)  // 1.5 * 2^23: adding it rounds to an integer
        let k = (xc * V(repeating: 1.442_695_04)) + magic
        let n = k - magic
        var r = xc.addingProduct(n, V(repeating: -0.693_145_751_953_125))
        r = r.addingProduct(n, V(repeating: -1.428_606_765_330_187e-6))
        // exp(r) on |r| <= ln2/2
        var p = V(repeating: 1.987_569_1e-4)
        p = p * r + V(repeating: 1.398_199_9e-3)
        p = p * r + V(repeating: 8.333_452e-3)
        p = p * r + V(repeating: 4.166_579_6e-2)
        p = p * r + V(repeating: 1.666_666_5e-1)
        p = p * r + V(repeating: 5e-1)
        p = p * (r * r) + r + V(repeating: 1)
        let kb = unsafeBitCast(k, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let scale = unsafeBitCast((kb &+ 127) &<< 23, to: V.self)
        return p * scale
    }

    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let v = exp(V(repeating: x))
        return v[0]
    }

    /// Applies a SIMD16 function over a buffer, 16 lanes at a time; a ragged end is the last whole
    /// 16 lanes when dst does not overlap src, else a padded vector. Inlinable, so callers in
    /// other modules get `f` inlined instead of one closure call per vector.
    @inlinable @inline(__always)
    public static func map(_ n: Int, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ f: (V) -> V) {
        var i = 0
        while i + 16 <= n {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: f(v), as: V.self)
            i += 16
        }
        if i < n && n >= 16 && (UnsafePointer(dst) + n <= src || src + n <= UnsafePointer(dst)) {
            // A ragged end as the last whole 16 lanes (a few recomputed): rows of H*W = 196 or 49
            // (broadcast FiLM rows) paid more for filling a vector lane by lane than for the row.
            // Only when dst does not overlap src: in place, f would apply twice.
            let j = n - 16
            UnsafeMutableRawPointer(dst + j).storeBytes(of: f(UnsafeRawPointer(src + j).loadUnaligned(as: V.self)), as: V.self)
        } else if i < n {
            var v = V(repeating: 0)
            for j in 0..<(n - i) { v[j] = src[i + j] }
            let r = f(v)
            for j in 0..<(n - i) { dst[i + j] = r[j] }
        }
    }
}
