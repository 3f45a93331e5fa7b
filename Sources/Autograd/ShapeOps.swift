import TensorCore

// Copying shape ops: permute/transpose, slice, concat, pad. Tensors are always contiguous, so
// each op produces a fresh buffer. Two copy kernels serve them all (and their pullbacks):
// `K.permuteCopy` (tiled, so neither side is walked with a large stride for long) and
// `K.boxCopy` (a sub-box of a bigger tensor to or from a contiguous one, in long runs).

extension Tensor {
    // MARK: permute
    /// Reorders axes: output axis i is input axis `axes[i]` (negative axes count from the end).
    public func permuted(_ axes: [Int]) throws -> Tensor {
        let x = self
        guard axes.count == x.rank else {
            throw ShapeError(op: "permute", "got \(axes.count) axes \(axes) for shape \(x.shape) of rank \(x.rank)")
        }
        var perm: [Int] = []
        for a in axes {
            guard let r = ShapeUtil.axis(a, rank: x.rank) else {
                throw ShapeError(op: "permute", "axis \(a) is out of range for shape \(x.shape)")
            }
            perm.append(r)
        }
        guard Set(perm).count == perm.count else {
            throw ShapeError(op: "permute", "axes \(axes) repeat an axis (shape \(x.shape))")
        }
        let outShape = perm.map { x.shape[$0] }
        let out = Storage(uninitializedCount: x.count)
        K.permuteCopy(x.storage.ptr, shape: x.shape, perm: perm, into: out.ptr)
        var inverse = [Int](repeating: 0, count: perm.count)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return Tensor.result("permute", shape: outShape, storage: out, inputs: [x]) { g in
            let gx = Storage(uninitializedCount: x.count)
            K.permuteCopy(g.storage.ptr, shape: outShape, perm: inverse, into: gx.ptr)
            return [Tensor(shape: x.shape, storage: gx)]
        }
    }

    /// Swaps two axes (a copying transpose).
    public func transposed(_ a: Int, _ b: Int) throws -> Tensor {
        guard let ra = ShapeUtil.axis(a, rank: rank), let rb = ShapeUtil.axis(b, rank: rank) else {
            throw ShapeError(op: "transpose", "axes (\(a), \(b)) are out of range for shape \(shape)")
        }
        var perm = Array(0..<rank)
        perm.swapAt(ra, rb)
        return try permuted(perm)
    }

    // MARK: slice
    /// Elements `range` along `axis` (a copy).
    public func slice(axis: Int, range: Range<Int>) throws -> Tensor {
        let x = self
        guard let a = ShapeUtil.axis(axis, rank: x.rank) else {
            throw ShapeError(op: "slice", "axis \(axis) is out of range for shape \(x.shape)")
        }
        guard range.lowerBound >= 0, range.upperBound <= x.shape[a] else {
            throw ShapeError(op: "slice", "range \(range) is out of bounds for axis \(axis) of size \(x.shape[a]) (shape \(x.shape))")
        }
        var outShape = x.shape
        outShape[a] = range.count
        var origin = [Int](repeating: 0, count: x.rank)
        origin[a] = range.lowerBound
        let out = Storage(uninitializedCount: ShapeUtil.count(outShape))
        K.boxCopy(out.ptr, shape: outShape, big: x.storage.ptr, bigShape: x.shape, origin: origin, toBig: false)
        return Tensor.result("slice", shape: outShape, storage: out, inputs: [x]) { g in
            let gx = Storage(zeros: x.count)
            K.boxCopy(g.storage.ptr, shape: outShape, big: gx.ptr, bigShape: x.shape, origin: origin, toBig: true)
            return [Tensor(shape: x.shape, storage: gx)]
        }
    }

    // MARK: concat
    /// Joins tensors along `axis`; all other axes must match.
    public static func concat(_ xs: [Tensor], axis: Int) throws -> Tensor {
        guard let first = xs.first else { throw ShapeError(op: "concat", "needs at least one tensor") }
        guard let a = ShapeUtil.axis(axis, rank: first.rank) else {
            throw ShapeError(op: "concat", "axis \(axis) is out of range for shape \(first.shape)")
        }
        for x in xs where x.rank != first.rank || (0..<x.rank).contains(where: { $0 != a && x.shape[$0] != first.shape[$0] }) {
            throw ShapeError(op: "concat", "shapes \(xs.map { $0.shape }) differ outside axis \(axis): \(x.shape) vs \(first.shape)")
        }
        var outShape = first.shape
        outShape[a] = xs.reduce(0) { $0 + $1.shape[a] }
        let out = Storage(uninitializedCount: ShapeUtil.count(outShape))
        var origins: [[Int]] = []
        var at = 0
        for x in xs {
            var o = [Int](repeating: 0, count: first.rank)
            o[a] = at
            origins.append(o)
            at += x.shape[a]
            K.boxCopy(x.storage.ptr, shape: x.shape, big: out.ptr, bigShape: outShape, origin: o, toBig: true)
        }
        return Tensor.result("concat", shape: outShape, storage: out, inputs: xs) { g in
            zip(xs, origins).map { (x, o) -> Tensor? in
                guard x.requiresGrad else { return nil }
                let gx = Storage(uninitializedCount: x.count)
                K.boxCopy(gx.ptr, shape: x.shape, big: g.storage.ptr, bigShape: outShape, origin: o, toBig: false)
                return Tensor(shape: x.shape, storage: gx)
            }
        }
    }

    // MARK: pad
    /// Pads with `value`: `pads[i]` = (before, after) for axis i, one pair per axis.
    public func padded(_ pads: [(Int, Int)], value: Float = 0) throws -> Tensor {
        let x = self
        guard pads.count == x.rank else {
            throw ShapeError(op: "pad", "got \(pads.count) (before, after) pairs for shape \(x.shape) of rank \(x.rank); need one per axis")
        }
        if let bad = pads.firstIndex(where: { $0.0 < 0 || $0.1 < 0 }) {
            throw ShapeError(op: "pad", "negative padding \(pads[bad]) on axis \(bad) (shape \(x.shape))")
        }
        let outShape = zip(x.shape, pads).map { $0 + $1.0 + $1.1 }
        let origin = pads.map { $0.0 }
        let out = Storage(uninitializedCount: ShapeUtil.count(outShape))
        let po = out.ptr
        Parallel.chunks(out.count) { r in (po + r.lowerBound).update(repeating: value, count: r.count) }
        K.boxCopy(x.storage.ptr, shape: x.shape, big: out.ptr, bigShape: outShape, origin: origin, toBig: true)
        return Tensor.result("pad", shape: outShape, storage: out, inputs: [x]) { g in
            let gx = Storage(uninitializedCount: x.count)
            K.boxCopy(gx.ptr, shape: x.shape, big: g.storage.ptr, bigShape: outShape, origin: origin, toBig: false)
            return [Tensor(shape: x.shape, storage: gx)]
        }
    }
}

extension K {
    /// Copies between a contiguous tensor `small` (shape `shape`) and the box of `big`
    /// (shape `bigShape`) starting at `origin`: small -> big when `toBig`, else big -> small.
    /// Trailing axes the box covers fully fold into one run, so most copies are long memcpys.
    static func boxCopy(_ small: UnsafeMutablePointer<Float>, shape: [Int], big: UnsafeMutablePointer<Float>,
                        bigShape: [Int], origin: [Int], toBig: Bool) {
        let total = ShapeUtil.count(shape)
        if total == 0 { return }
        let r = shape.count
        if r == 0 { if toBig { big[0] = small[0] } else { small[0] = big[0] }; return }
        let bigStrides = ShapeUtil.strides(bigShape)
        // k: the innermost axis not fully covered; axes after it fold into the run.
        var k = r - 1
        var run = 1
        while k > 0 && shape[k] == bigShape[k] && origin[k] == 0 { run *= shape[k]; k -= 1 }
        run *= shape[k]
        let rows = total / run
        let base = origin[k] * bigStrides[k]
        let outerShape = Array(shape[..<k]), outerOrigin = Array(origin[..<k]), outerStrides = Array(bigStrides[..<k])
        Parallel.chunks(rows, grain: max(1, Parallel.grain / run)) { rr in
            // Odometer over the outer axes, started at rr.lowerBound.
            var idx = [Int](repeating: 0, count: k)
            var rem = rr.lowerBound
            var d = k - 1
            while d >= 0 { idx[d] = rem % outerShape[d]; rem /= outerShape[d]; d -= 1 }
            var off = base
            for d in 0..<k { off += (idx[d] + outerOrigin[d]) * outerStrides[d] }
            for row in rr {
                let s = small + row * run, b = big + off
                if toBig { b.update(from: s, count: run) } else { s.update(from: b, count: run) }
                var d = k - 1
                while d >= 0 {
                    idx[d] += 1
                    off += outerStrides[d]
                    if idx[d] < outerShape[d] { break }
                    off -= idx[d] * outerStrides[d]
                    idx[d] = 0
                    d -= 1
                }
            }
        }
    }

    /// dst (shape perm.map { shape[$0] }) = src (shape `shape`) with axes permuted.
    /// Size-1 axes are dropped and axes that stay adjacent are merged first, so e.g.
    /// [N, C, H, W] -> [N, H, W, C] becomes a batched [C, HW] transpose. If the input's last
    /// axis stays last, rows are memcpy'd; otherwise 32x32 tiles are transposed.
    static func permuteCopy(_ src: UnsafePointer<Float>, shape: [Int], perm: [Int], into dst: UnsafeMutablePointer<Float>) {
        let total = ShapeUtil.count(shape)
        if total == 0 { return }
        // Drop size-1 axes.
        let kept = (0..<shape.count).filter { shape[$0] != 1 }
        let renumber = Dictionary(uniqueKeysWithValues: kept.enumerated().map { ($1, $0) })
        var p = perm.compactMap { renumber[$0] }
        var s = kept.map { shape[$0] }
        // Merge runs of output axes that are consecutive input axes.
        var groups: [[Int]] = []
        for a in p {
            if let last = groups.last?.last, last + 1 == a { groups[groups.count - 1].append(a) } else { groups.append([a]) }
        }
        let byInput = groups.indices.sorted { groups[$0][0] < groups[$1][0] }  // group ids in input order
        var newIndex = [Int](repeating: 0, count: groups.count)
        for (ni, gi) in byInput.enumerated() { newIndex[gi] = ni }
        let merged = byInput.map { gi in groups[gi].reduce(1) { $0 * s[$1] } }
        p = groups.indices.map { newIndex[$0] }
        s = merged
        let r = s.count
        if r <= 1 || p == Array(0..<r) { dst.update(from: src, count: total); return }

        let inStrides = ShapeUtil.strides(s)
        let outShape = p.map { s[$0] }
        let outStrides = ShapeUtil.strides(outShape)
        if p[r - 1] == r - 1 {
            // Rows of the innermost axis move as whole runs.
            let run = s[r - 1]
            let rows = total / run
            let oShape = Array(outShape.dropLast()), oIn = p.dropLast().map { inStrides[$0] }
            Parallel.chunks(rows, grain: max(1, Parallel.grain / run)) { rr in
                var idx = [Int](repeating: 0, count: r - 1)
                var rem = rr.lowerBound
                var d = r - 2
                while d >= 0 { idx[d] = rem % oShape[d]; rem /= oShape[d]; d -= 1 }
                var off = 0
                for d in 0..<(r - 1) { off += idx[d] * oIn[d] }
                for row in rr {
                    (dst + row * run).update(from: src + off, count: run)
                    var d = r - 2
                    while d >= 0 {
                        idx[d] += 1
                        off += oIn[d]
                        if idx[d] < oShape[d] { break }
                        off -= idx[d] * oIn[d]
                        idx[d] = 0
                        d -= 1
                    }
                }
            }
            return
        }
        // Tiled transpose between axis A (innermost in the output) and axis B (innermost in
        // the input); every other axis is an outer loop.
        let axA = p[r - 1], axB = r - 1
        let nA = s[axA], nB = s[axB]
        let inA = inStrides[axA]
        let outB = outStrides[p.firstIndex(of: axB)!]
        let others = (0..<r).filter { $0 != axA && $0 != axB }  // input axes, in input order
        let oSize = others.map { s[$0] }
        let oIn = others.map { inStrides[$0] }
        let oOut = others.map { ax in outStrides[p.firstIndex(of: ax)!] }
        let outerCount = oSize.reduce(1, *)
        let tile = 32
        let tilesA = (nA + tile - 1) / tile
        Parallel.items(outerCount * tilesA, costPerItem: tile * nB) { item in
            var rem = item / tilesA
            let a0 = (item % tilesA) * tile, a1 = min(nA, a0 + tile)
            var ib = 0, ob = 0
            var d = others.count - 1
            while d >= 0 {
                let i = rem % oSize[d]; rem /= oSize[d]
                ib += i * oIn[d]; ob += i * oOut[d]
                d -= 1
            }
            var b0 = 0
            while b0 < nB {
                let b1 = min(nB, b0 + tile)
                for b in b0..<b1 {
                    let o = dst + ob + b * outB
                    let sp = src + ib + b
                    for a in a0..<a1 { o[a] = sp[a * inA] }
                }
                b0 = b1
            }
        }
    }
}
