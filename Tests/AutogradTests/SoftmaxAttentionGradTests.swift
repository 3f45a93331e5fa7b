import XCTest
import Foundation
import Autograd
import TensorCore
import TestSupport

/// Double-precision softmax (or log-softmax) over `axis` of a contiguous tensor.
func referenceSoftmax(_ x: Tensor, axis: Int, log: Bool) -> [Double] {
    let a = axis < 0 ? axis + x.rank : axis
    let n = x.shape[a], inner = x.shape[(a + 1)...].reduce(1, *), outer = x.count / max(n * inner, 1)
    let v = x.scalars.map(Double.init)
    var out = [Double](repeating: 0, count: v.count)
    for o in 0..<outer {
        for i in 0..<inner {
            let idx = (0..<n).map { o * n * inner + $0 * inner + i }
            let m = idx.map { v[$0] }.max()!
            let s = idx.reduce(0.0) { $0 + Foundation.exp(v[$1] - m) }
            for j in idx { out[j] = log ? v[j] - m - Foundation.log(s) : Foundation.exp(v[j] - m) / s }
        }
    }
    return out
}

final class SoftmaxAttentionGradTests: XCTestCase {
    func testSoftmaxForwardAgainstDouble() throws {
        for (shape, axes) in [([5, 17], [0, 1, -1]), ([3, 4, 37], [0, 1, 2, -2]), ([2, 3, 20, 19], [1, -1]),
                              ([7], [0]), ([300, 130], [-1, 0])] as [([Int], [Int])] {
            let x = randn(shape, seed: 3, scale: 4)
            for axis in axes {
                for log in [false, true] {
                    let y = try log ? x.logSoftmax(axis: axis) : x.softmax(axis: axis)
                    XCTAssertEqual(y.shape, shape)
                    let ref = referenceSoftmax(x, axis: axis, log: log)
                    for (a, b) in zip(y.scalars, ref) {
                        if Swift.abs(Double(a) - b) > 1e-6 * max(Swift.abs(b), log ? 1 : 1e-3) {
                            XCTFail("\(log ? "logSoftmax" : "softmax") \(shape) axis \(axis): \(a) vs \(b)"); break
                        }
                    }
                }
            }
        }
    }

    func testSoftmaxIsStableAndHandlesMaskedEntries() throws {
        let x = Tensor([1000, 1001, 1002, -1000, -.infinity, 0], shape: [2, 3])
        let y = try x.softmax().scalars
        let e = [1, Foundation.exp(1.0), Foundation.exp(2.0)]
        for j in 0..<3 { XCTAssertEqual(Double(y[j]), e[j] / e.reduce(0, +), accuracy: 1e-6) }
        XCTAssertEqual(y[3], 0); XCTAssertEqual(y[4], 0); XCTAssertEqual(y[5], 1)
        let l = try x.logSoftmax().scalars
        XCTAssertEqual(l[5], 0); XCTAssertEqual(l[4], -.infinity); XCTAssertEqual(l[3], -1000)
        XCTAssertEqual(Double(l[2]), 2 - Foundation.log(e.reduce(0, +)), accuracy: 1e-5)
    }

    func testSoftmaxGradients() throws {
        for (shape, axis) in [([4, 7], -1), ([4, 7], 0), ([2, 3, 19], 1), ([2, 3, 19], -1), ([3, 20, 2], 1), ([6], 0)] as [([Int], Int)] {
            try gradCheck("softmax \(shape) axis \(axis)", [randn(shape, seed: 2)]) { try $0[0].softmax(axis: axis) }
            try gradCheck("logSoftmax \(shape) axis \(axis)", [randn(shape, seed: 2)]) { try $0[0].logSoftmax(axis: axis) }
        }
    }

    func testSoftmaxBadAxis() {
        XCTAssertThrowsError(try randn([2, 3]).softmax(axis: 2)) { e in
            XCTAssertEqual("\(e)", "softmax: axis 2 is out of range for shape [2, 3]")
        }
        XCTAssertThrowsError(try randn([2, 3]).logSoftmax(axis: -3)) { e in
            XCTAssertEqual("\(e)", "logSoftmax: axis -3 is out of range for shape [2, 3]")
        }
    }

    // MARK: attention

    /// Straightforward Double attention for one batch entry.
    func referenceAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, mask: Tensor?) -> [Double] {
        let (b, lq, d) = (q.shape[0], q.shape[1], q.shape[2]), lk = k.shape[1], dv = v.shape[2]
        let qs = q.scalars, ks = k.scalars, vs = v.scalars
        // The mask broadcast to [B, Lq, Lk].
        let m: [Float] = mask.map { m in (try? (m + Tensor.zeros([b, lq, lk])).scalars) ?? [] } ?? [Float](repeating: 0, count: b * lq * lk)
        var out = [Double](repeating: 0, count: b * lq * dv)
        for bi in 0..<b {
            for i in 0..<lq {
                var s = (0..<lk).map { j -> Double in
                    var acc = 0.0
                    for c in 0..<d { acc += Double(qs[(bi * lq + i) * d + c]) * Double(ks[(bi * lk + j) * d + c]) }
                    return acc / Double(d).squareRoot() + Double(m[(bi * lq + i) * lk + j])
                }
                let mx = s.max()!
                s = s.map { Foundation.exp($0 - mx) }
                let tot = s.reduce(0, +)
                for c in 0..<dv {
                    out[(bi * lq + i) * dv + c] = (0..<lk).reduce(0.0) { $0 + s[$1] / tot * Double(vs[(bi * lk + $1) * dv + c]) }
                }
            }
        }
        return out
    }

    func testAttentionForwardAndGradients() throws {
        let q = randn([2, 3, 8], seed: 1), k = randn([2, 5, 8], seed: 2), v = randn([2, 5, 4], seed: 3)
        // Key padding: batch 0 sees all 5 keys, batch 1 only the first 3.
        let keyPad = Tensor([0, 0, 0, 0, 0, 0, 0, 0, -1e9, -1e9], shape: [2, 1, 5])
        let masks: [Tensor?] = [nil, keyPad, randn([5], seed: 4), randn([2, 3, 5], seed: 5), randn([3, 1], seed: 6)]
        for mask in masks {
            let y = try scaledDotProductAttention(q: q, k: k, v: v, mask: mask)
            XCTAssertEqual(y.shape, [2, 3, 4])
            let ref = referenceAttention(q, k, v, mask: mask)
            for (a, b) in zip(y.scalars, ref) { XCTAssertEqual(Double(a), b, accuracy: 1e-5, "mask \(mask?.shape ?? [])") }
            try gradCheck("attention mask \(mask?.shape ?? [])", [q, k, v]) {
                try scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], mask: mask)
            }
        }
        // A padded key's value cannot reach the output, nor receive gradient.
        let v2 = Tensor(v.scalars, shape: v.shape)
        for c in 0..<4 { v2.storage.ptr[(5 + 4) * 4 + c] = 1e6 }  // batch 1, key 4
        let a = try scaledDotProductAttention(q: q, k: k, v: v, mask: keyPad)
        let b = try scaledDotProductAttention(q: q, k: k, v: v2, mask: keyPad)
        XCTAssertEqual(a.scalars, b.scalars)
        // The mask itself can be learned (a relative-position bias, say).
        try gradCheck("attention mask gradient", [q, k, v, randn([3, 5], seed: 7)]) {
            try scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], mask: $0[3])
        }
    }

    func testAttentionShapeErrors() {
        let q = randn([2, 3, 8]), k = randn([2, 5, 8]), v = randn([2, 5, 4])
        XCTAssertThrowsError(try scaledDotProductAttention(q: randn([3, 8]), k: k, v: v)) { e in
            XCTAssertEqual("\(e)", "attention: need q [B, Lq, d], k [B, Lk, d], v [B, Lk, dv]; got [3, 8], [2, 5, 8], [2, 5, 4]")
        }
        XCTAssertThrowsError(try scaledDotProductAttention(q: q, k: randn([2, 5, 7]), v: v)) { e in
            XCTAssertTrue("\(e)".hasPrefix("attention: incompatible q [2, 3, 8], k [2, 5, 7], v [2, 5, 4]"), "\(e)")
        }
        XCTAssertThrowsError(try scaledDotProductAttention(q: q, k: k, v: randn([2, 4, 4]))) { e in
            XCTAssertTrue("\(e)".hasPrefix("attention: incompatible"), "\(e)")
        }
        XCTAssertThrowsError(try scaledDotProductAttention(q: q, k: k, v: v, mask: randn([2, 3, 4]))) { e in
            XCTAssertEqual("\(e)", "attention: mask [2, 3, 4] does not broadcast to scores [2, 3, 5]")
        }
        XCTAssertThrowsError(try scaledDotProductAttention(q: q, k: k, v: v, mask: randn([1, 2, 3, 5]))) { e in
            XCTAssertEqual("\(e)", "attention: mask [1, 2, 3, 5] does not broadcast to scores [2, 3, 5]")
        }
    }

    // MARK: dropout

    func testDropout() throws {
        let x = randn([200, 500], seed: 1)
        var rng = RNG(seed: 9)
        XCTAssertTrue(x.dropout(p: 0.3, rng: &rng, training: false) === x)
        XCTAssertTrue(x.dropout(p: 0, rng: &rng, training: true) === x)
        XCTAssertEqual(rng, RNG(seed: 9), "identity cases draw nothing")

        let y = x.dropout(p: 0.3, rng: &rng, training: true)
        XCTAssertNotEqual(rng, RNG(seed: 9))
        var kept = 0
        for (a, b) in zip(x.scalars, y.scalars) {
            if b != 0 { kept += 1; XCTAssertEqual(b, a / 0.7, accuracy: 1e-6 * Swift.abs(a / 0.7)) }
        }
        XCTAssertEqual(Double(kept) / Double(x.count), 0.7, accuracy: 0.01)
        // The mask is u >= p for u from one rng.uniform draw: reproducible from the rng state.
        var r1 = RNG(seed: 4), r2 = RNG(seed: 4)
        let u = Tensor.rand([200, 500], rng: &r2)
        let z = x.dropout(p: 0.25, rng: &r1, training: true)
        XCTAssertEqual(r1, r2)
        let (zs, xs, us) = (z.scalars, x.scalars, u.scalars)
        XCTAssertTrue((0..<x.count).allSatisfy { (zs[$0] != 0 || xs[$0] == 0) == (us[$0] >= 0.25) })
        XCTAssertEqual(x.dropout(p: 1, rng: &rng, training: true).scalars, [Float](repeating: 0, count: x.count))

        // Same rng state on every call -> the same mask, so finite differences apply.
        try gradCheck("dropout", [randn([6, 9], seed: 2)]) { xs in
            var r = RNG(seed: 11)
            return xs[0].dropout(p: 0.4, rng: &r, training: true)
        }
        let w = randn([4, 5]); w.requiresGrad = true
        var r3 = RNG(seed: 12)
        let out = w.dropout(p: 0.5, rng: &r3, training: true)
        out.backward(Tensor.ones([4, 5]))
        XCTAssertEqual(w.grad!.scalars, out.scalars.map { $0 == 0 ? 0 : 2 })
    }

    // MARK: embedding

    func testEmbedding() throws {
        let w = values([5, 3])
        let y = try Tensor.embedding(w, indices: [4, 0, 4, 2, 1, 1], indexShape: [2, 3])
        XCTAssertEqual(y.shape, [2, 3, 3])
        XCTAssertEqual(y.scalars, [12, 13, 14, 0, 1, 2, 12, 13, 14, 6, 7, 8, 3, 4, 5, 3, 4, 5])
        // Repeated indices accumulate into the same weight row.
        try gradCheck("embedding", [randn([6, 20])]) { try Tensor.embedding($0[0], indices: [5, 0, 5, 3, 5, 1, 0], indexShape: [7]) }
        try gradCheck("embedding 2d", [randn([4, 3])]) { try Tensor.embedding($0[0], indices: [3, 3, 0, 2], indexShape: [2, 2]) }
        let w2 = randn([4, 17]); w2.requiresGrad = true
        try Tensor.embedding(w2, indices: [1, 1, 3], indexShape: [3]).sum().backward()
        XCTAssertEqual(w2.grad!.scalars, [Float](repeating: 0, count: 17) + [Float](repeating: 2, count: 17)
                       + [Float](repeating: 0, count: 17) + [Float](repeating: 1, count: 17))
        XCTAssertEqual(try Tensor.embedding(w, indices: [], indexShape: [0]).shape, [0, 3])
    }

    func testEmbeddingErrors() {
        let w = randn([5, 3])
        XCTAssertThrowsError(try Tensor.embedding(w, indices: [0, 7, 1], indexShape: [3])) { e in
            XCTAssertEqual("\(e)", "embedding: index 7 at position 1 is out of range for 5 rows (weight [5, 3])")
        }
        XCTAssertThrowsError(try Tensor.embedding(w, indices: [-1], indexShape: [1])) { e in
            XCTAssertEqual("\(e)", "embedding: index -1 at position 0 is out of range for 5 rows (weight [5, 3])")
        }
        XCTAssertThrowsError(try Tensor.embedding(w, indices: [0, 1, 2], indexShape: [2, 2])) { e in
            XCTAssertEqual("\(e)", "embedding: 3 indices do not fill index shape [2, 2]")
        }
        XCTAssertThrowsError(try Tensor.embedding(randn([5]), indices: [0], indexShape: [1])) { e in
            XCTAssertEqual("\(e)", "embedding: weight must be [V, D], got [5]")
        }
    }
}
