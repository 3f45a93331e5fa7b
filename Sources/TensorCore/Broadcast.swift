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
        let sa = bstrides(a), sb = bstrides(b)
        rowLength = n == 0 ? 1 : out[n - 1]
        rows = rowLength == 0 ? 0 : ShapeUtil.count(out) / max(rowLength, 1)
        aInner = n == 0 ? 0 : sa[n - 1]
        bInner = n == 0 ? 0 : sb[n - 1]
        aStrides = n == 0 ? [] : Array(sa.dropLast())
        bStrides = n == 0 ? [] : Array(sb.dropLast())
        outer = n == 0 ? [] : Array(out.dropLast())
    }

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
        for r in 0..<plan.rows {
            let (oa, ob) = plan.offsets(row: r)
            let s = src + oa
            if plan.bInner == 0 {
                var acc: Float = 0
                for j in 0..<len { acc += s[j] }
                dst[ob] += acc
            } else {
                let d = dst + ob
                for j in 0..<len { d[j] += s[j] }
            }
        }
    }
}
