/// Row-wise iteration over a broadcast: the output is walked one last-axis row at a time, and
/// each operand contributes a base offset and an inner stride (1, or 0 when broadcast).
public struct BroadcastPlan {
    public let outShape: [Int]
    public let rows: Int
    public let rowLength: Int
    public let aInner: Int, bInner: Int
    let aStrides: [Int], bStrides: [Int], outer: [Int]

    public init(_ a: [Int], _ b: [Int], out: [Int]) {
        outShape = out
        let n = out.count
        func bstrides(_ s: [Int]) -> [Int] {
            let pad = [Int](repeating: 1, count: n - s.count) + s
            let st = ShapeUtil.strides(pad)
            return (0..<n).map { pad[$0] == 1 && out[$0] != 1 ? 0 : st[$0] }
        }
        // Coalesce axes: drop size-1 axes and merge neighbours that both operands walk the same
        // way (contiguous, or both broadcast), so [N, C, H, W] with [N, C, 1, 1] becomes rows of
        // H*W instead of rows of W (4x fewer offset computations, full SIMD rows).
        var dims: [Int] = [], sa: [Int] = [], sb: [Int] = []
        let fa = bstrides(a), fb = bstrides(b)
        for d in 0..<n where out[d] != 1 {
            if let last = dims.last, sa.last! == fa[d] * out[d], sb.last! == fb[d] * out[d] {
                dims[dims.count - 1] = last * out[d]
                sa[sa.count - 1] = fa[d]; sb[sb.count - 1] = fb[d]
            } else {
                dims.append(out[d]); sa.append(fa[d]); sb.append(fb[d])
            }
        }
        let m = dims.count
        let total = ShapeUtil.count(out)
        rowLength = m == 0 ? (total == 0 ? 0 : 1) : dims[m - 1]
        rows = rowLength == 0 ? 0 : total / rowLength
        aInner = m == 0 ? 0 : (sa[m - 1] == 0 ? 0 : 1)
        bInner = m == 0 ? 0 : (sb[m - 1] == 0 ? 0 : 1)
        aStrides = m == 0 ? [] : Array(sa.dropLast())
        bStrides = m == 0 ? [] : Array(sb.dropLast())
        outer = m == 0 ? [] : Array(dims.dropLast())
    }

    /// True when no outer axis of `b` is broadcast: every row maps to its own offset in b.
    public var bRowsDistinct: Bool { !bStrides.contains(0) }

    /// Base offsets of row r in a and b.
    @inline(__always)
    public func offsets(row: Int) -> (Int, Int) {
        var rem = row, oa = 0, ob = 0
        var d = outer.count - 1
        while d >= 0 {
            let dim = outer[d]
            let i = rem % dim
            rem /= dim
            oa += i * aStrides[d]; ob += i * bStrides[d]
            d -= 1
        }
        return (oa, ob)
    }
}

public enum Reduce {
    /// Sums `src` (shape `from`) down to shape `to`, where `from` is `to` broadcast.
    public static func sumToShape(_ src: UnsafePointer<Float>, from: [Int], to: [Int], into dst: UnsafeMutablePointer<Float>) {
        let n = ShapeUtil.count(to)
        dst.initialize(repeating: 0, count: n)
        let plan = BroadcastPlan(from, to, out: from)
        let len = plan.rowLength
        func row(_ r: Int) {
            let (oa, ob) = plan.offsets(row: r)
            let s = src + oa
            if plan.bInner == 0 {
                dst[ob] += sum(s, len)
            } else {
                let d = dst + ob
                for j in 0..<len { d[j] += s[j] }
            }
        }
        // Rows may run in parallel only when each writes its own part of dst.
        if plan.bRowsDistinct {
            Parallel.chunks(plan.rows, grain: max(1, Parallel.grain / max(len, 1))) { rs in for r in rs { row(r) } }
        } else {
            for r in 0..<plan.rows { row(r) }
        }
    }

    /// Sum of n floats with 16 SIMD accumulators.
    @inline(__always)
    public static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>(repeating: 0)
        var i = 0
        while i + 16 <= n { acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self); i += 16 }
        var s = acc.sum()
        while i < n { s += p[i]; i += 1 }
        return s
    }
}
