import XCTest
import Autograd
import TensorCore
import TestSupport

final class ArithmeticGradTests: XCTestCase {
    func testBinaryOpsWithBroadcasting() throws {
        let shapes: [([Int], [Int])] = [([3, 4], [3, 4]), ([2, 3, 4], [4]), ([2, 3, 1], [1, 5]), ([5], []), ([], [2, 2])]
        for (sa, sb) in shapes {
            try gradCheck("add \(sa) \(sb)", [randn(sa, seed: 1), randn(sb, seed: 2)]) { try $0[0] + $0[1] }
            try gradCheck("sub \(sa) \(sb)", [randn(sa, seed: 1), randn(sb, seed: 2)]) { try $0[0] - $0[1] }
            try gradCheck("mul \(sa) \(sb)", [randn(sa, seed: 1), randn(sb, seed: 2)]) { try $0[0] * $0[1] }
            // keep the divisor away from zero
            try gradCheck("div \(sa) \(sb)", [randn(sa, seed: 1), randn(sb, seed: 2) * 0.1 + 2]) { try $0[0] / $0[1] }
        }
    }

    /// [N, C, H, W] against [N, C, 1, 1] (a FiLM scale) walks rows of H*W; rows of 25 and 49 end
    /// ragged (not a multiple of 16 lanes), rows of 7 are shorter than a vector. Values, both orders.
    func testPerChannelBroadcastRowsMatchScalarMath() throws {
        for hw in [[5, 5], [7, 7], [1, 7], [4, 4]] {
            let a = randn([2, 3] + hw, seed: 5), b = randn([2, 3, 1, 1], seed: 6)
            let len = hw[0] * hw[1]
            let ab = try a * b, ba = try b - a
            for i in 0..<a.count {
                let bv = b.scalars[i / len]
                XCTAssertEqual(ab.scalars[i], a.scalars[i] * bv, "a * b at \(i), rows of \(len)")
                XCTAssertEqual(ba.scalars[i], bv - a.scalars[i], "b - a at \(i), rows of \(len)")
            }
        }
        try gradCheck("mul [2, 3, 7, 7] [2, 3, 1, 1]", [randn([2, 3, 7, 7], seed: 1), randn([2, 3, 1, 1], seed: 2)]) { try $0[0] * $0[1] }
    }

    /// Buffers larger than two parallel chunks with a ragged end (the type-specialised loops of
    /// Lanewise.swift): every element equals the scalar operation, same shape and against a
    /// one-element tensor, in both orders.
    func testLargeBinaryOpsMatchScalarMathAcrossChunks() throws {
        let n = 2 * Parallel.grain + 37
        let a = randn([n], seed: 7), b = randn([n], seed: 8) * 0.1 + 2, s = randn([1], seed: 9)
        let ops: [(String, (Tensor, Tensor) throws -> Tensor, (Float, Float) -> Float)] = [
            ("add", { try $0 + $1 }, { $0 + $1 }), ("sub", { try $0 - $1 }, { $0 - $1 }),
            ("mul", { try $0 * $1 }, { $0 * $1 }), ("div", { try $0 / $1 }, { $0 / $1 })]
        for (name, op, ref) in ops {
            let av = a.scalars, bv = b.scalars, sv = s.scalars[0]
            let cases: [(String, [Float], (Int) -> Float)] = [
                ("same shape", try op(a, b).scalars, { ref(av[$0], bv[$0]) }),
                ("against [1]", try op(a, s).scalars, { ref(av[$0], sv) }),
                ("[1] against it", try op(s, a).scalars, { ref(sv, av[$0]) })]
            for (form, got, want) in cases {
                // One assertion per case: the first element that differs, if any.
                let bad = (0..<n).first { got[$0] != want($0) }
                XCTAssertNil(bad, "\(name) \(form): element \(bad ?? -1) of \(n) is \(bad.map { got[$0] } ?? 0), want \(bad.map(want) ?? 0)")
            }
        }
    }

    func testScalarFormsAndNeg() throws {
        try gradCheck("scalar", [randn([4, 5]) * 0.5 + 2]) { x in
            let a = (x[0] * 3 + 1) - 0.5
            return try (2 / x[0]) + (-a) / 4
        }
    }

    func testMatmulAndBmm() throws {
        try gradCheck("matmul", [randn([5, 7], seed: 1), randn([7, 3], seed: 2)]) { try $0[0].matmul($0[1]) }
        try gradCheck("matmul 3d x 2d", [randn([2, 5, 7], seed: 1), randn([7, 3], seed: 2)]) { try $0[0].matmul($0[1]) }
        try gradCheck("bmm", [randn([2, 4, 6], seed: 1), randn([2, 6, 3], seed: 2)]) { try $0[0].bmm($0[1]) }
        try gradCheck("bmm^T", [randn([2, 4, 6], seed: 1), randn([2, 3, 6], seed: 2)]) { try $0[0].bmm($0[1], transposeRight: true) }
    }

    /// The fused x W^T + b: gradients of all three inputs, 2-D and 3-D inputs, with and without bias;
    /// and its output equals the product plus a broadcast bias in the split-sgemm case too.
    func testLinear() throws {
        try gradCheck("linear", [randn([5, 7], seed: 1), randn([3, 7], seed: 2), randn([3], seed: 3)]) {
            try $0[0].linear(weight: $0[1], bias: $0[2])
        }
        try gradCheck("linear 3d", [randn([2, 4, 6], seed: 1), randn([5, 6], seed: 2), randn([5], seed: 3)]) {
            try $0[0].linear(weight: $0[1], bias: $0[2])
        }
        try gradCheck("linear no bias", [randn([2, 4, 6], seed: 1), randn([5, 6], seed: 2)]) {
            try $0[0].linear(weight: $0[1], bias: nil)
        }
        let x = randn([96, 80], seed: 4), w = randn([112, 80], seed: 5), b = randn([112], seed: 6)
        let fused = try x.linear(weight: w, bias: b)
        let ref = try x.matmul(w.transposed(0, 1)) + b
        XCTAssertEqual(fused.shape, [96, 112])
        for i in 0..<fused.count { XCTAssertEqual(fused.scalars[i], ref.scalars[i], accuracy: 1e-4, "element \(i)") }
    }

    func testReductionsAndReshape() throws {
        try gradCheck("sum all", [randn([3, 4, 5])]) { try $0[0].sum() }
        try gradCheck("sum axes", [randn([3, 4, 5])]) { try $0[0].sum(axes: [0, 2]) }
        try gradCheck("mean keep", [randn([3, 4, 5])]) { try $0[0].mean(axes: [-1], keepDims: true) }
        try gradCheck("reshape", [randn([3, 4, 5])]) { try $0[0].reshaped([12, -1]) }
    }

    func testGradientsAccumulateAndSharedInputs() throws {
        let x = randn([3], seed: 3)
        x.requiresGrad = true
        let y = try (x * x).sum()  // d/dx = 2x, x used twice in one op
        y.backward()
        let y2 = try x.sum()
        y2.backward()  // accumulates +1
        for i in 0..<3 { XCTAssertEqual(x.grad!.scalars[i], 2 * x.scalars[i] + 1, accuracy: 1e-5) }
    }

    func testNoGradRecordsNothing() throws {
        let x = randn([3]); x.requiresGrad = true
        let y = try noGrad { try x * x }
        XCTAssertFalse(y.isRecorded)
        XCTAssertFalse(y.requiresGrad)
    }

    func testShapeMismatchNamesOpAndShapes() {
        XCTAssertThrowsError(try randn([2, 3]) + randn([4])) { e in
            XCTAssertEqual("\(e)", "add: shapes [2, 3] and [4] cannot be broadcast together")
        }
        XCTAssertThrowsError(try randn([2, 3]).matmul(randn([4, 5]))) { e in
            XCTAssertTrue("\(e)".contains("matmul") && "\(e)".contains("[2, 3]") && "\(e)".contains("[4, 5]"), "\(e)")
        }
        XCTAssertThrowsError(try randn([2, 3]).linear(weight: randn([4, 5]), bias: nil)) { e in
            XCTAssertEqual("\(e)", "linear: input [2, 3] must end in 5 features (weight [4, 5])")
        }
        XCTAssertThrowsError(try randn([2, 5]).linear(weight: randn([4, 5]), bias: randn([5]))) { e in
            XCTAssertEqual("\(e)", "linear: bias must be [4] for weight [4, 5], got [5]")
        }
    }
}
