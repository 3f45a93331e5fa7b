import XCTest
import Autograd
import TensorCore
import TestSupport

final class NormGradTests: XCTestCase {
    /// Group norm in Double, straight from the definition.
    func naiveGroupNorm(_ x: Tensor, groups: Int, _ w: Tensor?, _ b: Tensor?, eps: Double) -> [Double] {
        let n = x.shape[0], c = x.shape[1], sp = x.count / (n * c), cpg = c / groups, len = cpg * sp
        let xs = x.scalars.map(Double.init)
        var out = [Double](repeating: 0, count: x.count)
        for blk in 0..<(n * groups) {
            let seg = xs[blk * len..<(blk + 1) * len]
            let mean = seg.reduce(0, +) / Double(len)
            let v = seg.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(len)
            for i in 0..<len {
                let ch = (blk % groups) * cpg + i / sp
                let wv = w.map { Double($0.scalars[ch]) } ?? 1, bv = b.map { Double($0.scalars[ch]) } ?? 0
                out[blk * len + i] = (xs[blk * len + i] - mean) / (v + eps).squareRoot() * wv + bv
            }
        }
        return out
    }

    func naiveLayerNorm(_ x: Tensor, _ w: Tensor?, _ b: Tensor?, eps: Double) -> [Double] {
        let d = x.shape.last!, xs = x.scalars.map(Double.init)
        var out = [Double](repeating: 0, count: x.count)
        for r in 0..<(x.count / d) {
            let seg = xs[r * d..<(r + 1) * d]
            let mean = seg.reduce(0, +) / Double(d)
            let v = seg.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
            for i in 0..<d {
                let wv = w.map { Double($0.scalars[i]) } ?? 1, bv = b.map { Double($0.scalars[i]) } ?? 0
                out[r * d + i] = (xs[r * d + i] - mean) / (v + eps).squareRoot() * wv + bv
            }
        }
        return out
    }

    // (shape, groups)
    let gnCases: [([Int], Int)] = [([2, 4, 7, 7], 2), ([2, 6, 4, 5], 1), ([2, 6, 4, 5], 3), ([2, 6, 4, 5], 6), ([3, 4, 7], 2), ([2, 4], 2), ([1, 8, 3, 3], 4)]

    func testGroupNormForward() throws {
        for (k, (shape, groups)) in gnCases.enumerated() {
            let c = shape[1]
            // An offset mean: the statistics must not lose precision to it.
            let x = randn(shape, seed: UInt64(k), scale: 3) + 50
            let w = randn([c], seed: 20), b = randn([c], seed: 21)
            assertClose(try x.groupNorm(groups: groups, weight: w, bias: b), naiveGroupNorm(x, groups: groups, w, b, eps: 1e-5), atol: 1e-4, rtol: 1e-4, "groupNorm \(shape) g\(groups)")
            assertClose(try x.groupNorm(groups: groups, weight: nil, bias: nil, eps: 1e-3), naiveGroupNorm(x, groups: groups, nil, nil, eps: 1e-3), atol: 1e-4, rtol: 1e-4, "groupNorm \(shape) g\(groups) no affine")
        }
        // Long blocks (groups = 1 on a big image): the Double flush keeps the mean exact.
        let big = randn([1, 16, 40, 40], seed: 9) + 1000
        assertClose(try big.groupNorm(groups: 1, weight: nil, bias: nil), naiveGroupNorm(big, groups: 1, nil, nil, eps: 1e-5), atol: 5e-3, rtol: 5e-3, "groupNorm long block")
    }

    /// The plain op and the fused GroupNorm + SiLU, each with and without its affine parameters.
    func testGroupNormGradients() throws {
        typealias Norm = (Tensor, Int, Tensor?, Tensor?) throws -> Tensor
        let ops: [(String, Norm)] = [
            ("groupNorm", { try $0.groupNorm(groups: $1, weight: $2, bias: $3) }),
            ("groupNormSiLU", { try $0.groupNormSiLU(groups: $1, weight: $2, bias: $3) }),
        ]
        for (name, norm) in ops {
            for (k, (shape, groups)) in gnCases.enumerated() {
                let c = shape[1]
                try gradCheck("\(name) \(shape) g\(groups) affine",
                              [randn(shape, seed: UInt64(k)), randn([c], seed: 20) + 1, randn([c], seed: 21)]) {
                    try norm($0[0], groups, $0[1], $0[2])
                }
                try gradCheck("\(name) \(shape) g\(groups)", [randn(shape, seed: UInt64(k))]) { try norm($0[0], groups, nil, nil) }
                try gradCheck("\(name) \(shape) g\(groups) weight only", [randn(shape, seed: UInt64(k)), randn([c], seed: 20)]) {
                    try norm($0[0], groups, $0[1], nil)
                }
            }
        }
    }

    /// The fused op promises the two ops' values bit for bit (so no result of a chain moves):
    /// output and all three gradients, at the U-Net's ragged 14x14 and 7x7 rows and a 28x28
    /// batch large enough for the parallel path; also with the input a constant.
    func testGroupNormSiLUEqualsTheTwoOpsExactly() throws {
        for (shape, groups) in [([16, 32, 28, 28], 8), ([4, 64, 14, 14], 8), ([3, 16, 7, 7], 4), ([2, 8, 3, 5], 2)] {
            let c = shape[1]
            for needX in [true, false] {
                func run(_ fused: Bool) throws -> [[Float]] {
                    let x = randn(shape, seed: 7), w = randn([c], seed: 8) + 1, b = randn([c], seed: 9)
                    let proj = randn(shape, seed: 10)
                    x.requiresGrad = needX; w.requiresGrad = true; b.requiresGrad = true
                    let y = fused ? try x.groupNormSiLU(groups: groups, weight: w, bias: b)
                                  : try x.groupNorm(groups: groups, weight: w, bias: b).silu()
                    try (y * proj).sum().backward()
                    XCTAssertEqual(x.grad == nil, !needX)
                    return [y.scalars, x.grad?.scalars ?? [], w.grad!.scalars, b.grad!.scalars]
                }
                let fused = try run(true), plain = try run(false)
                for (k, what) in ["output", "dx", "dweight", "dbias"].enumerated() {
                    XCTAssertEqual(fused[k], plain[k], "groupNormSiLU \(shape) \(what), input needs grad: \(needX)")
                }
            }
        }
    }

    /// Parameters alone (the input a constant), as for a first layer fed with data.
    func testGroupNormParameterOnlyGradients() throws {
        let x = randn([2, 4, 3, 3], seed: 2)
        let w = randn([4], seed: 3) + 1, b = randn([4], seed: 4)
        w.requiresGrad = true; b.requiresGrad = true
        try gradCheck("groupNorm params", [w, b]) { try x.groupNorm(groups: 2, weight: $0[0], bias: $0[1]) }
        XCTAssertNil(x.grad)
    }

    let lnShapes: [[Int]] = [[3, 5], [2, 3, 17], [4, 32], [7]]

    func testLayerNormForward() throws {
        for (k, shape) in lnShapes.enumerated() {
            let d = shape.last!
            let x = randn(shape, seed: UInt64(k), scale: 2) + 30
            let w = randn([d], seed: 30), b = randn([d], seed: 31)
            assertClose(try x.layerNorm(weight: w, bias: b), naiveLayerNorm(x, w, b, eps: 1e-5), atol: 1e-4, rtol: 1e-4, "layerNorm \(shape)")
            assertClose(try x.layerNorm(weight: nil, bias: nil), naiveLayerNorm(x, nil, nil, eps: 1e-5), atol: 1e-4, rtol: 1e-4, "layerNorm \(shape) no affine")
            assertClose(try x.layerNorm(weight: w, bias: nil), naiveLayerNorm(x, w, nil, eps: 1e-5), atol: 1e-4, rtol: 1e-4, "layerNorm \(shape) weight")
            assertClose(try x.layerNorm(weight: nil, bias: b, eps: 0.1), naiveLayerNorm(x, nil, b, eps: 0.1), atol: 1e-4, rtol: 1e-4, "layerNorm \(shape) bias")
        }
    }

    func testLayerNormGradients() throws {
        for (k, shape) in lnShapes.enumerated() {
            let d = shape.last!
            try gradCheck("layerNorm \(shape) affine", [randn(shape, seed: UInt64(k)), randn([d], seed: 30) + 1, randn([d], seed: 31)]) {
                try $0[0].layerNorm(weight: $0[1], bias: $0[2])
            }
            try gradCheck("layerNorm \(shape)", [randn(shape, seed: UInt64(k))]) { try $0[0].layerNorm(weight: nil, bias: nil) }
            try gradCheck("layerNorm \(shape) bias only", [randn(shape, seed: UInt64(k)), randn([d], seed: 31)]) {
                try $0[0].layerNorm(weight: nil, bias: $0[1])
            }
        }
    }

    /// Enough rows to split over threads: the per-thread dw/db partial sums must add up.
    func testLayerNormManyRows() throws {
        let x = randn([600, 64], seed: 5), w = randn([64], seed: 6) + 1, b = randn([64], seed: 7)
        w.requiresGrad = true; b.requiresGrad = true
        let y = try x.layerNorm(weight: w, bias: b)
        let r = randn(y.shape, seed: 8)
        try (y * r).sum().backward()
        // db = column sums of r; dw = column sums of r * xhat.
        let xhat = try x.layerNorm(weight: nil, bias: nil)
        let rs = r.scalars, xh = xhat.scalars
        for j in 0..<64 {
            var sb = 0.0, sw = 0.0
            for i in 0..<600 { sb += Double(rs[i * 64 + j]); sw += Double(rs[i * 64 + j] * xh[i * 64 + j]) }
            XCTAssertEqual(Double(b.grad!.scalars[j]), sb, accuracy: 1e-3)
            XCTAssertEqual(Double(w.grad!.scalars[j]), sw, accuracy: 1e-3)
        }
    }

    func testErrorsNameOpAndShapes() {
        let x = randn([2, 6, 3, 3])
        XCTAssertThrowsError(try x.groupNorm(groups: 4, weight: nil, bias: nil)) { e in
            XCTAssertEqual("\(e)", "groupNorm: 6 channels of input [2, 6, 3, 3] cannot be split into 4 groups")
        }
        XCTAssertThrowsError(try x.groupNorm(groups: 0, weight: nil, bias: nil)) { e in
            XCTAssertEqual("\(e)", "groupNorm: 6 channels of input [2, 6, 3, 3] cannot be split into 0 groups")
        }
        XCTAssertThrowsError(try x.groupNorm(groups: 2, weight: randn([3]), bias: nil)) { e in
            XCTAssertEqual("\(e)", "groupNorm: weight must have shape [6] for input [2, 6, 3, 3], got [3]")
        }
        XCTAssertThrowsError(try x.groupNorm(groups: 2, weight: nil, bias: randn([6, 1]))) { e in
            XCTAssertEqual("\(e)", "groupNorm: bias must have shape [6] for input [2, 6, 3, 3], got [6, 1]")
        }
        XCTAssertThrowsError(try randn([6]).groupNorm(groups: 2, weight: nil, bias: nil)) { e in
            XCTAssertEqual("\(e)", "groupNorm: input must have shape [N, C, ...], got [6]")
        }
        XCTAssertThrowsError(try randn([4, 5]).layerNorm(weight: randn([4]), bias: nil)) { e in
            XCTAssertEqual("\(e)", "layerNorm: weight must have shape [5] for input [4, 5], got [4]")
        }
        XCTAssertThrowsError(try randn([4, 5]).layerNorm(weight: nil, bias: randn([4]))) { e in
            XCTAssertEqual("\(e)", "layerNorm: bias must have shape [5] for input [4, 5], got [4]")
        }
        XCTAssertThrowsError(try Tensor(scalar: 1).layerNorm(weight: nil, bias: nil)) { e in
            XCTAssertEqual("\(e)", "layerNorm: input must have at least one axis, got shape []")
        }
    }
}
