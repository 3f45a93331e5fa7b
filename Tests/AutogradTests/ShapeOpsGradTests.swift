import XCTest
import Autograd
import TensorCore
import TestSupport

/// Reference permute by index arithmetic: output axis i is input axis perm[i].
func referencePermute(_ x: Tensor, _ perm: [Int]) -> [Float] {
    let shape = x.shape, r = shape.count
    let outShape = perm.map { shape[$0] }
    var inStrides = [Int](repeating: 1, count: r)
    for i in stride(from: r - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
    let src = x.scalars
    var out = [Float](repeating: 0, count: src.count)
    var idx = [Int](repeating: 0, count: r)
    for o in 0..<src.count {
        var rem = o
        for d in stride(from: r - 1, through: 0, by: -1) { idx[d] = rem % outShape[d]; rem /= outShape[d] }
        var off = 0
        for d in 0..<r { off += idx[d] * inStrides[perm[d]] }
        out[o] = src[off]
    }
    return out
}

/// All permutations of 0..<n.
func permutations(_ n: Int) -> [[Int]] {
    if n == 0 { return [[]] }
    return permutations(n - 1).flatMap { p in (0...p.count).map { i in var q = p; q.insert(n - 1, at: i); return q } }
}

func values(_ shape: [Int]) -> Tensor {
    Tensor((0..<ShapeUtil.count(shape)).map { Float($0) }, shape: shape)
}

final class ShapeOpsGradTests: XCTestCase {
    func testPermuteMatchesReferenceForEveryOrder() throws {
        for shape in [[2, 3, 4, 5], [1, 3, 1, 5], [3, 1, 4, 1], [2, 33, 5, 7]] {
            let x = values(shape)
            for p in permutations(4) {
                let y = try x.permuted(p)
                XCTAssertEqual(y.shape, p.map { shape[$0] })
                XCTAssertEqual(y.scalars, referencePermute(x, p), "permute \(shape) by \(p)")
            }
        }
        for shape in [[5], [4, 7], [3, 40, 37], [2, 3, 4, 5, 6]] {
            let x = values(shape)
            for p in permutations(shape.count) where p.count < 5 || p.first == 4 || p.last == 0 {
                XCTAssertEqual(try x.permuted(p).scalars, referencePermute(x, p), "permute \(shape) by \(p)")
            }
        }
        // Large enough for the parallel paths (tiled and row-copy).
        let big = values([4, 64, 16, 17])
        for p in [[0, 2, 3, 1], [0, 3, 1, 2], [0, 2, 1, 3], [3, 2, 1, 0]] {
            XCTAssertEqual(try big.permuted(p).scalars, referencePermute(big, p), "permute big by \(p)")
        }
        // Negative axes and the NCHW <-> NHWC round trip.
        let x = randn([2, 3, 4, 5])
        XCTAssertEqual(try x.permuted([0, -2, -1, 1]).permuted([0, 3, 1, 2]).scalars, x.scalars)
    }

    func testPermuteAndTransposeGradients() throws {
        try gradCheck("permute 0231", [randn([2, 3, 4, 5])]) { try $0[0].permuted([0, 2, 3, 1]) }
        try gradCheck("permute 3102", [randn([2, 3, 4, 5])]) { try $0[0].permuted([3, 1, 0, 2]) }
        try gradCheck("permute 3d", [randn([4, 1, 6])]) { try $0[0].permuted([2, 0, 1]) }
        try gradCheck("transpose", [randn([3, 4, 5])]) { try $0[0].transposed(0, -1) }
        let t = values([3, 4, 5])
        XCTAssertEqual(try t.transposed(1, 2).scalars, referencePermute(t, [0, 2, 1]))
        XCTAssertEqual(try t.transposed(1, 1).scalars, t.scalars)
    }

    func testSliceConcatPad() throws {
        let x = values([3, 4, 5])
        let s = try x.slice(axis: 1, range: 1..<3)
        XCTAssertEqual(s.shape, [3, 2, 5])
        var ref: [Float] = []
        for i in 0..<3 { for j in 1..<3 { for k in 0..<5 { ref.append(Float(i * 20 + j * 5 + k)) } } }
        XCTAssertEqual(s.scalars, ref)
        XCTAssertEqual(try x.slice(axis: -1, range: 4..<5).scalars, (0..<12).map { Float($0 * 5 + 4) })
        XCTAssertEqual(try x.slice(axis: 0, range: 2..<2).shape, [0, 4, 5])
        try gradCheck("slice mid", [randn([3, 4, 5])]) { try $0[0].slice(axis: 1, range: 1..<3) }
        try gradCheck("slice last", [randn([3, 4, 5])]) { try $0[0].slice(axis: -1, range: 2..<5) }
        try gradCheck("slice first", [randn([6, 4])]) { try $0[0].slice(axis: 0, range: 0..<2) }

        let a = values([2, 3, 4]), b = values([2, 1, 4]) + 100, c = values([2, 2, 4]) + 200
        let cat = try Tensor.concat([a, b, c], axis: 1)
        XCTAssertEqual(cat.shape, [2, 6, 4])
        XCTAssertEqual(try cat.slice(axis: 1, range: 0..<3).scalars, a.scalars)
        XCTAssertEqual(try cat.slice(axis: 1, range: 3..<4).scalars, b.scalars)
        XCTAssertEqual(try cat.slice(axis: 1, range: 4..<6).scalars, c.scalars)
        XCTAssertEqual(try Tensor.concat([a, a], axis: 0).scalars, a.scalars + a.scalars)
        XCTAssertEqual(try Tensor.concat([a, a], axis: -1).shape, [2, 3, 8])
        try gradCheck("concat axis 1", [randn([2, 3, 4], seed: 1), randn([2, 1, 4], seed: 2), randn([2, 2, 4], seed: 3)]) {
            try Tensor.concat($0, axis: 1)
        }
        try gradCheck("concat axis -1", [randn([3, 2], seed: 1), randn([3, 5], seed: 2)]) { try Tensor.concat($0, axis: -1) }
        // Only inputs that need it get a gradient.
        let frozen = randn([3, 2]), live = randn([3, 2]); live.requiresGrad = true
        try (try Tensor.concat([frozen, live], axis: 0)).sum().backward()
        XCTAssertNil(frozen.grad); XCTAssertEqual(live.grad?.scalars, [Float](repeating: 1, count: 6))

        let p = try values([2, 3]).padded([(1, 0), (2, 1)], value: -1)
        XCTAssertEqual(p.shape, [3, 6])
        XCTAssertEqual(p.scalars, [-1, -1, -1, -1, -1, -1,
                                   -1, -1, 0, 1, 2, -1,
                                   -1, -1, 3, 4, 5, -1])
        let q = try values([2, 3, 4, 5]).padded([(0, 0), (0, 0), (1, 1), (2, 2)])
        XCTAssertEqual(q.shape, [2, 3, 6, 9])
        XCTAssertEqual(try q.slice(axis: 2, range: 1..<5).slice(axis: 3, range: 2..<7).scalars, values([2, 3, 4, 5]).scalars)
        XCTAssertEqual(q.scalars.reduce(0, +), values([2, 3, 4, 5]).scalars.reduce(0, +))
        XCTAssertEqual(try Tensor(scalar: 3).padded([]).scalars, [3])
        try gradCheck("pad 4d", [randn([2, 3, 4, 5])]) { try $0[0].padded([(0, 0), (1, 0), (1, 1), (0, 2)]) }
        try gradCheck("pad 1d", [randn([5])]) { try $0[0].padded([(3, 1)], value: 2) }
    }

    func testErrorsNameOpAxesAndShapes() {
        let x = randn([2, 3, 4])
        XCTAssertThrowsError(try x.permuted([0, 1])) { e in
            XCTAssertEqual("\(e)", "permute: got 2 axes [0, 1] for shape [2, 3, 4] of rank 3")
        }
        XCTAssertThrowsError(try x.permuted([0, 1, 1])) { e in
            XCTAssertEqual("\(e)", "permute: axes [0, 1, 1] repeat an axis (shape [2, 3, 4])")
        }
        XCTAssertThrowsError(try x.permuted([0, 1, 3])) { e in
            XCTAssertEqual("\(e)", "permute: axis 3 is out of range for shape [2, 3, 4]")
        }
        XCTAssertThrowsError(try x.transposed(0, -4)) { e in
            XCTAssertEqual("\(e)", "transpose: axes (0, -4) are out of range for shape [2, 3, 4]")
        }
        XCTAssertThrowsError(try x.slice(axis: 3, range: 0..<1)) { e in
            XCTAssertEqual("\(e)", "slice: axis 3 is out of range for shape [2, 3, 4]")
        }
        XCTAssertThrowsError(try x.slice(axis: 1, range: 2..<4)) { e in
            XCTAssertEqual("\(e)", "slice: range 2..<4 is out of bounds for axis 1 of size 3 (shape [2, 3, 4])")
        }
        XCTAssertThrowsError(try Tensor.concat([x, randn([2, 5, 5])], axis: 1)) { e in
            XCTAssertEqual("\(e)", "concat: shapes [[2, 3, 4], [2, 5, 5]] differ outside axis 1: [2, 5, 5] vs [2, 3, 4]")
        }
        XCTAssertThrowsError(try Tensor.concat([x, randn([2, 3])], axis: 0)) { e in
            XCTAssertTrue("\(e)".hasPrefix("concat: shapes [[2, 3, 4], [2, 3]] differ"), "\(e)")
        }
        XCTAssertThrowsError(try Tensor.concat([], axis: 0)) { e in
            XCTAssertEqual("\(e)", "concat: needs at least one tensor")
        }
        XCTAssertThrowsError(try Tensor.concat([x], axis: -4)) { e in
            XCTAssertEqual("\(e)", "concat: axis -4 is out of range for shape [2, 3, 4]")
        }
        XCTAssertThrowsError(try x.padded([(1, 1), (1, 1)])) { e in
            XCTAssertEqual("\(e)", "pad: got 2 (before, after) pairs for shape [2, 3, 4] of rank 3; need one per axis")
        }
        XCTAssertThrowsError(try x.padded([(0, 0), (0, -1), (0, 0)])) { e in
            XCTAssertEqual("\(e)", "pad: negative padding (0, -1) on axis 1 (shape [2, 3, 4])")
        }
    }
}
