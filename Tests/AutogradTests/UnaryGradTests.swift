import XCTest
import Foundation
import Autograd
import TensorCore
import TestSupport

/// Largest |y - ref| / max(|ref|, floor) of `op` over `xs`, against a Double reference.
func maxRelError(_ xs: [Float], floor: Double = 1e-30, _ op: (Tensor) -> Tensor, _ ref: (Double) -> Double) -> (err: Double, at: Float) {
    let y = op(Tensor(xs, shape: [xs.count])).scalars
    var worst = 0.0, at: Float = 0
    for (x, v) in zip(xs, y) {
        let r = ref(Double(x))
        let e = r == Double(v) ? 0 : Swift.abs(Double(v) - r) / max(Swift.abs(r), floor)
        if e > worst || e.isNaN { worst = e; at = x }
    }
    return (worst, at)
}

/// Evenly spaced points over [lo, hi] (both ends included).
func grid(_ lo: Float, _ hi: Float, _ n: Int = 200_001) -> [Float] {
    (0..<n).map { lo + (hi - lo) * Float($0) / Float(n - 1) }
}

final class UnaryGradTests: XCTestCase {
    func testForwardAccuracyAgainstDouble() {
        let g = grid(-10, 10)
        let pos = grid(1e-6, 100) + (0..<2000).map { Float(Foundation.exp(Double($0) * 0.05 - 80)) }
        let checks: [(String, [Float], (Tensor) -> Tensor, (Double) -> Double, Double)] = [
            ("exp", grid(-87, 88), { $0.exp() }, { Foundation.exp($0) }, 1e-6),
            ("log", pos, { $0.log() }, { Foundation.log($0) }, 1e-6),
            ("log near 1", grid(0.5, 2), { $0.log() }, { Foundation.log($0) }, 1e-6),
            ("sqrt", pos, { $0.sqrt() }, { $0.squareRoot() }, 1e-6),
            ("tanh", g, { $0.tanh() }, { Foundation.tanh($0) }, 1e-6),
            ("sigmoid", g, { $0.sigmoid() }, { 1 / (1 + Foundation.exp(-$0)) }, 1e-6),
            ("silu", g, { $0.silu() }, { $0 / (1 + Foundation.exp(-$0)) }, 1e-6),
            ("gelu", g, { $0.gelu() }, { 0.5 * $0 * Foundation.erfc(-$0 / 2.0.squareRoot()) }, 1e-6),
            // For negative x the float rounding of u shows in exp(-2u) (|2u| ~ 11 at x = -4,
            // ~70 at x = -9, where the relative error reaches ~1e-5): inherent to a float u.
            ("gelu tanh", grid(-4, 10), { $0.gelu(approximate: true) },
             { x in x / (1 + Foundation.exp(-2 * 0.7978845608028654 * (x + 0.044715 * x * x * x))) }, 2e-6),
            ("pow 3", g, { $0.pow(3) }, { $0 * $0 * $0 }, 1e-6),
            ("pow -2", g, { $0.pow(-2) }, { 1 / ($0 * $0) }, 1e-6),
            ("pow 1.7", pos, { $0.pow(1.7) }, { Foundation.pow($0, Double(Float(1.7))) }, 1e-6),
            ("pow 0.5", pos, { $0.pow(0.5) }, { $0.squareRoot() }, 1e-6),
            ("square", g, { $0.square() }, { $0 * $0 }, 1e-6),
            ("abs", g, { $0.abs() }, { Swift.abs($0) }, 0),
            ("relu", g, { $0.relu() }, { max($0, 0) }, 0),
        ]
        for (name, xs, op, ref, tol) in checks {
            let (e, at) = maxRelError(xs, op, ref)
            print("accuracy \(name): \(e) at \(at)")
            XCTAssertLessThanOrEqual(e, tol, "\(name): max relative error \(e) at x = \(at)")
        }
    }
}

extension UnaryGradTests {
    func testVMathExtraErfAgainstDouble() {
        // erf and erfc are not Tensor ops; GELU uses their building blocks (normalCDF).
        func check(_ name: String, _ xs: [Float], _ f: (SIMD16<Float>) -> SIMD16<Float>, _ ref: (Double) -> Double, _ tol: Double) {
            var worst = 0.0, at: Float = 0
            for base in stride(from: 0, to: xs.count - 15, by: 16) {
                var v = SIMD16<Float>()
                for j in 0..<16 { v[j] = xs[base + j] }
                let y = f(v)
                for j in 0..<16 {
                    let r = ref(Double(v[j]))
                    let e = Swift.abs(Double(y[j]) - r) / max(Swift.abs(r), 1e-37)
                    if e > worst { worst = e; at = v[j] }
                }
            }
            XCTAssertLessThanOrEqual(worst, tol, "\(name): max relative error \(worst) at \(at)")
        }
        check("erf", grid(-6, 6, 96_000), VMathExtra.erf, Foundation.erf, 5e-7)
        check("erfc", grid(-3, 9, 96_000), VMathExtra.erfc, Foundation.erfc, 1e-6)
        check("normalCDF", grid(-12, 6, 96_000), VMathExtra.normalCDF, { 0.5 * Foundation.erfc(-$0 / 2.0.squareRoot()) }, 1e-6)
        check("expNegSquare", grid(-9, 9, 96_000), VMathExtra.expNegSquare, { Foundation.exp(-$0 * $0) }, 5e-7)
    }

    func testEdgeValues() {
        func v(_ xs: [Float], _ f: (Tensor) -> Tensor) -> [Float] { f(Tensor(xs, shape: [xs.count])).scalars }
        let inf = Float.infinity
        let e = v([100, -100, 89, -.nan, 0], { $0.exp() })
        XCTAssertEqual(e[0], inf); XCTAssertLessThan(e[1], 1e-40); XCTAssertEqual(e[2], inf)
        XCTAssertTrue(e[3].isNaN); XCTAssertEqual(e[4], 1)
        let l = v([0, -1, inf, 1, 1e-40, .nan], { $0.log() })
        XCTAssertEqual(l[0], -inf); XCTAssertTrue(l[1].isNaN); XCTAssertEqual(l[2], inf); XCTAssertEqual(l[3], 0)
        XCTAssertEqual(Double(l[4]), Foundation.log(Double(Float(1e-40))), accuracy: 1e-5)
        XCTAssertTrue(l[5].isNaN)
        let s = v([0, -1, inf, 1e-40, 4, .nan], { $0.sqrt() })
        XCTAssertEqual(s[0], 0); XCTAssertTrue(s[1].isNaN); XCTAssertEqual(s[2], inf)
        XCTAssertEqual(Double(s[3]), Double(Float(1e-40)).squareRoot(), accuracy: 1e-26); XCTAssertEqual(s[4], 2)
        XCTAssertTrue(s[5].isNaN)
        XCTAssertEqual(v([20, -20, 1e30, -1e30, 0], { $0.tanh() }), [1, -1, 1, -1, 0])
        let sg = v([100, -100, 0], { $0.sigmoid() })
        XCTAssertEqual(sg[0], 1); XCTAssertLessThan(sg[1], 1e-37); XCTAssertEqual(sg[2], 0.5)
        for approximate in [false, true] {
            let g = v([-30, -1e30, 30, 0], { $0.gelu(approximate: approximate) })
            XCTAssertEqual(g[0], 0, accuracy: 1e-30); XCTAssertEqual(g[1], 0, accuracy: 1e-30)
            XCTAssertEqual(g[2], 30); XCTAssertEqual(g[3], 0)
        }
        XCTAssertEqual(v([0, -2, 3], { $0.pow(0) }), [1, 1, 1])
        XCTAssertEqual(v([-2, 2], { $0.pow(3) }), [-8, 8])
        XCTAssertTrue(v([-2], { $0.pow(0.5) })[0].isNaN)
        XCTAssertTrue(v([-2], { $0.pow(1.5) })[0].isNaN)
        XCTAssertEqual(v([0], { $0.pow(-1) })[0], inf)
        XCTAssertEqual(v([-1.5, 0, 2], { $0.abs() }), [1.5, 0, 2])
        XCTAssertEqual(v([-1.5, 0, 2], { $0.relu() }), [0, 0, 2])
    }

    /// Values at least 0.1 away from 0, so that finite differences don't straddle a kink.
    func awayFromZero(_ shape: [Int], seed: UInt64) -> Tensor {
        let t = randn(shape, seed: seed)
        return Tensor(t.scalars.map { $0 < 0 ? $0 - 0.1 : $0 + 0.1 }, shape: shape)
    }

    func testGradients() throws {
        for shape in [[], [7], [3, 5], [2, 3, 33]] as [[Int]] {
            let x = { self.awayFromZero(shape, seed: 3) }
            let pos = { self.awayFromZero(shape, seed: 4).abs() + 0.5 }
            try gradCheck("exp \(shape)", [x()]) { $0[0].exp() }
            try gradCheck("log \(shape)", [pos()]) { $0[0].log() }
            try gradCheck("sqrt \(shape)", [pos()]) { $0[0].sqrt() }
            try gradCheck("square \(shape)", [x()]) { $0[0].square() }
            try gradCheck("abs \(shape)", [x()]) { $0[0].abs() }
            try gradCheck("relu \(shape)", [x()]) { $0[0].relu() }
            try gradCheck("tanh \(shape)", [x()]) { $0[0].tanh() }
            try gradCheck("sigmoid \(shape)", [x()]) { $0[0].sigmoid() }
            try gradCheck("silu \(shape)", [x()]) { $0[0].silu() }
            try gradCheck("gelu \(shape)", [x()]) { $0[0].gelu() }
            try gradCheck("gelu tanh \(shape)", [x()]) { $0[0].gelu(approximate: true) }
            for p: Float in [2, 3, -1, -2, 0.5, -0.5, 1.7, 1, 0] {
                try gradCheck("pow \(p) \(shape)", [pos()]) { $0[0].pow(p) }
            }
            try gradCheck("pow 3 negative base \(shape)", [x()]) { $0[0].pow(3) }
        }
        // Wide range for the activations (tails and the |x| = 0.625 / 0.75 branch points).
        let wide = Tensor(grid(-6, 6, 97), shape: [97])
        for (name, f) in [("tanh", { (t: Tensor) in t.tanh() }), ("gelu", { $0.gelu() }),
                          ("gelu tanh", { $0.gelu(approximate: true) }), ("silu", { $0.silu() }),
                          ("sigmoid", { $0.sigmoid() })] as [(String, (Tensor) -> Tensor)] {
            try gradCheck("\(name) wide", [wide], eps: 1e-3, maxProbes: 97) { f($0[0]) }
        }
    }

    func testGeluDerivativeAgainstDouble() throws {
        // The pullbacks against exact derivatives (tighter than finite differences).
        let xs = grid(-8, 8, 4001)
        for approximate in [false, true] {
            let x = Tensor(xs, shape: [xs.count], requiresGrad: true)
            x.gelu(approximate: approximate).backward(Tensor.ones([xs.count]))
            let g = x.grad!.scalars
            for (xf, gf) in zip(xs, g) {
                let x = Double(xf)
                let ref: Double
                if approximate {
                    let c = 0.7978845608028654, u = c * (x + 0.044715 * x * x * x)
                    let s = 1 / (1 + Foundation.exp(-2 * u))
                    ref = s + 2 * x * s * (1 - s) * c * (1 + 3 * 0.044715 * x * x)
                } else {
                    ref = 0.5 * Foundation.erfc(-x / 2.0.squareRoot()) + x * Foundation.exp(-x * x / 2) / (2 * Double.pi).squareRoot()
                }
                XCTAssertEqual(Double(gf), ref, accuracy: 2e-6 * max(1, Swift.abs(ref)), "gelu'(\(xf)) approximate: \(approximate)")
            }
        }
    }

    /// SiLU's pullback against its exact derivative s (1 + x (1 - s)) over more than two parallel
    /// chunks with a ragged end (its loops are the type-specialised ones of Lanewise.swift).
    func testSiLUDerivativeAgainstDoubleAcrossChunks() throws {
        let xs = grid(-12, 12, 2 * Parallel.grain + 53)
        let up = (0..<xs.count).map { Float(($0 % 7) - 3) * 0.25 }
        let x = Tensor(xs, shape: [xs.count], requiresGrad: true)
        x.silu().backward(Tensor(up, shape: [xs.count]))
        let g = x.grad!.scalars
        for (i, xf) in xs.enumerated() {
            let xd = Double(xf), s = 1 / (1 + Foundation.exp(-xd))
            let ref = Double(up[i]) * s * (1 + xd * (1 - s))
            XCTAssertEqual(Double(g[i]), ref, accuracy: 2e-6 * max(1, Swift.abs(ref)), "silu'(\(xf)) at \(i)")
        }
    }

    func testMSELoss() throws {
        let a = randn([4, 9], seed: 1), b = randn([4, 9], seed: 2)
        let l = try mseLoss(a, b)
        XCTAssertEqual(l.shape, [])
        let ref = zip(a.scalars, b.scalars).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / 36
        XCTAssertEqual(Double(l.item), ref, accuracy: 1e-6 * ref)
        try gradCheck("mse", [a, b]) { try mseLoss($0[0], $0[1]) }
        // Large enough for the parallel partial sums.
        let big1 = randn([300_000], seed: 5), big2 = randn([300_000], seed: 6)
        let refBig = zip(big1.scalars, big2.scalars).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / 300_000
        XCTAssertEqual(Double(try mseLoss(big1, big2).item), refBig, accuracy: 1e-5 * refBig)
        XCTAssertThrowsError(try mseLoss(randn([4, 1]), randn([4]))) { e in
            XCTAssertEqual("\(e)", "mseLoss: shapes [4, 1] and [4] differ")
        }
    }
}
