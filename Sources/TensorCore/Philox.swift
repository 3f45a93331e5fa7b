/// Philox4x32-10 counter-based generator (Salmon et al., SC'11). A draw is a pure function of
/// (key, counter), so the noise of item i depends only on (seed, i): never on batch size,
/// thread count, shard or resume point.
public struct Philox: Sendable {
    public let key: (UInt32, UInt32)

    public init(seed: UInt64) { key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)) }

    @inline(__always)
    static func mulhilo(_ a: UInt32, _ b: UInt32) -> (hi: UInt32, lo: UInt32) {
        let p = UInt64(a) &* UInt64(b)
        return (UInt32(truncatingIfNeeded: p >> 32), UInt32(truncatingIfNeeded: p))
    }

    /// Ten rounds of Philox4x32 on a 128-bit counter.
    @inline(__always)
    public func block(_ c0: UInt32, _ c1: UInt32, _ c2: UInt32, _ c3: UInt32) -> (UInt32, UInt32, UInt32, UInt32) {
        var x = (c0, c1, c2, c3)
        var k0 = key.0, k1 = key.1
        for _ in 0..<10 {
            let a = Philox.mulhilo(0xD251_1F53, x.0)
            let b = Philox.mulhilo(0xCD9E_8D57, x.2)
            x = (b.hi ^ x.1 ^ k0, b.lo, a.hi ^ x.3 ^ k1, a.lo)
            k0 = k0 &+ 0x9E37_79B9
            k1 = k1 &+ 0xBB67_AE85
        }
        return x
    }

    /// Uniform in (0, 1], never 0 so that log() is safe.
    @inline(__always)
    static func unit(_ u: UInt32) -> Float { (Float(u >> 8) + 1) * (1.0 / 16_777_216.0) }

    /// Fills `count` standard normals for stream `stream` (e.g. a pair index), element j of the
    /// stream at counter (j / 4, stream). Box-Muller over each block's four words.
    public func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, stream: UInt64, offset: Int = 0) {
        let s0 = UInt32(truncatingIfNeeded: stream), s1 = UInt32(truncatingIfNeeded: stream >> 32)
        var j = offset
        let end = offset + count
        while j < end {
            let blk = j / 4
            let r = block(UInt32(truncatingIfNeeded: blk), UInt32(truncatingIfNeeded: blk >> 32), s0, s1)
            let u1 = Philox.unit(r.0), u2 = Philox.unit(r.1), u3 = Philox.unit(r.2), u4 = Philox.unit(r.3)
            let ra = (-2 * log(u1)).squareRoot(), rb = (-2 * log(u3)).squareRoot()
            let ta = 2 * Float.pi * u2, tb = 2 * Float.pi * u4
            let vals = (ra * cos(ta), ra * sin(ta), rb * cos(tb), rb * sin(tb))
            for lane in (j % 4)..<4 where blk * 4 + lane < end {
                let v: Float
                switch lane { case 0: v = vals.0; case 1: v = vals.1; case 2: v = vals.2; default: v = vals.3 }
                out[blk * 4 + lane - offset] = v
            }
            j = blk * 4 + 4
        }
    }

    /// Fills `count` uniforms in [0, 1) for stream `stream`, element j at counter (j / 4, stream).
    public func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, stream: UInt64, offset: Int = 0) {
        let s0 = UInt32(truncatingIfNeeded: stream), s1 = UInt32(truncatingIfNeeded: stream >> 32)
        var j = offset
        let end = offset + count
        while j < end {
            let blk = j / 4
            let r = block(UInt32(truncatingIfNeeded: blk), UInt32(truncatingIfNeeded: blk >> 32), s0, s1)
            for lane in (j % 4)..<4 where blk * 4 + lane < end {
                let w: UInt32  // a switch, not an array: no allocation per block
                switch lane { case 0: w = r.0; case 1: w = r.1; case 2: w = r.2; default: w = r.3 }
                out[blk * 4 + lane - offset] = Float(w >> 8) * (1.0 / 16_777_216.0)
            }
            j = blk * 4 + 4
        }
    }
}

/// A sequential generator over Philox: a key and a running stream counter. Its whole state is
/// two integers, so a checkpoint can store and restore it exactly.
public struct RNG: Sendable, Codable, Equatable {
    public var seed: UInt64
    public var counter: UInt64

    public init(seed: UInt64, counter: UInt64 = 0) { self.seed = seed; self.counter = counter }

    /// `count` normals from a fresh stream; advances the counter by one stream.
    public mutating func normal(_ out: UnsafeMutablePointer<Float>, count: Int) {
        Philox(seed: seed).fillNormal(out, count: count, stream: counter | (1 << 63))
        counter &+= 1
    }

    public mutating func uniform(_ out: UnsafeMutablePointer<Float>, count: Int) {
        Philox(seed: seed).fillUniform(out, count: count, stream: counter | (1 << 63))
        counter &+= 1
    }

    /// A uniform integer in [0, n).
    public mutating func int(below n: Int) -> Int {
        let r = Philox(seed: seed).block(UInt32(truncatingIfNeeded: counter), UInt32(truncatingIfNeeded: counter >> 32), 0xFFFF_FFFF, 0x7FFF_FFFF)
        counter &+= 1
        let x = (UInt64(r.0) << 32) | UInt64(r.1)
        return Int(x % UInt64(n))
    }

    /// A Fisher-Yates permutation of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, int(below: i + 1)) }
        return p
    }
}

#if canImport(Glibc)
import Glibc
#endif
