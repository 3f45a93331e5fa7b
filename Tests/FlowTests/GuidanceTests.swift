import XCTest
import Autograd
import TensorCore
import Flow
import TestSupport

final class GuidanceTests: XCTestCase {
    // Two different fields standing in for v(x, t, text) and v(x, t, empty).
    let cond: Velocity = { x, t in try x * 2 + t.reshaped([-1, 1]) }
    let uncond: Velocity = { x, _ in x - 1 }

    func testGuidanceAlgebra() throws {
        let x = randn([3, 4], seed: 1), t = Tensor([0.1, 0.5, 0.9], shape: [3])
        let vc = try cond(x, t).scalars, vu = try uncond(x, t).scalars
        var calls = (c: 0, u: 0)
        let c: Velocity = { x, t in calls.c += 1; return try self.cond(x, t) }
        let u: Velocity = { x, t in calls.u += 1; return try self.uncond(x, t) }

        assertClose(try guided(cond: c, uncond: u, scale: 1)(x, t), vc, atol: 0, "w=1")
        XCTAssertEqual(calls.c, 1); XCTAssertEqual(calls.u, 0)  // w = 1 skips the empty prompt
        assertClose(try guided(cond: c, uncond: u, scale: 0)(x, t), vu, atol: 0, "w=0")
        let w2 = zip(vc, vu).map { 2 * $0 - $1 }
        assertClose(try guided(cond: c, uncond: u, scale: 2)(x, t), w2, atol: 1e-5, "w=2")
        let w15 = zip(vc, vu).map { $1 + 1.5 * ($0 - $1) }
        assertClose(try guided(cond: c, uncond: u, scale: 1.5)(x, t), w15, atol: 1e-5, "w=1.5")
    }

    /// The doubled-batch form gives the same field: the closure sees [x; x], [t; t] and
    /// answers cond for the first half, uncond for the second.
    func testBatchedMatchesTwoCalls() throws {
        let x = randn([3, 2, 2], seed: 2), t = Tensor([0.1, 0.5, 0.9], shape: [3])
        let cond3: Velocity = { x, t in try x * 2 + t.reshaped([-1, 1, 1]) }
        let uncond3: Velocity = { x, _ in x - 1 }
        var seen: [Int] = []
        let both: Velocity = { x2, t2 in
            seen = x2.shape
            let n = x2.shape[0] / 2, m = x2.count / 2
            XCTAssertEqual(Array(x2.scalars[0..<m]), Array(x2.scalars[m...]))
            XCTAssertEqual(t2.scalars, t.scalars + t.scalars)
            let h1 = Tensor(Array(x2.scalars[0..<m]), shape: [n, 2, 2])
            let vc = try cond3(h1, t), vu = try uncond3(h1, t)
            return Tensor(vc.scalars + vu.scalars, shape: x2.shape)
        }
        for w: Float in [0, 1, 2.5] {
            let a = try guidedBatched(both, scale: w)(x, t)
            let b = try guided(cond: cond3, uncond: uncond3, scale: w)(x, t)
            XCTAssertEqual(a.shape, x.shape)
            assertClose(a, b.scalars, atol: 1e-5, "w=\(w)")
        }
        XCTAssertEqual(seen, [6, 2, 2])
        let bad: Velocity = { x2, _ in try x2.reshaped([-1]) }
        XCTAssertThrowsError(try guidedBatched(bad, scale: 2)(x, t))
    }

    /// Gradients flow through both forms (e.g. distilling a guided student online).
    func testGuidedFieldsAreDifferentiable() throws {
        let x = randn([2, 3], seed: 3), t = Tensor([0.2, 0.7], shape: [2])
        let w = Tensor([0.5, -1, 2], shape: [3], requiresGrad: true)
        let c: Velocity = { x, _ in try x * w }
        let u: Velocity = { x, _ in try x * w * w }
        let both: Velocity = { x2, _ in try x2 * w }  // same field on both halves
        // u + 3(c - u) = 3xw - 2xw^2, so d/dw_j of the sum is (x_0j + x_1j)(3 - 4 w_j).
        let g1 = try guided(cond: c, uncond: u, scale: 3)(x, t).sum()
        g1.backward()
        let grad1 = w.grad!.scalars
        let xs = x.scalars, ws = w.scalars
        for j in 0..<3 {
            let sx = xs[j] + xs[3 + j]
            XCTAssertEqual(grad1[j], sx * (3 + (1 - 3) * 2 * ws[j]), accuracy: 1e-5)
        }
        w.grad = nil
        try guidedBatched(both, scale: 3)(x, t).sum().backward()
        for j in 0..<3 { XCTAssertEqual(w.grad!.scalars[j], xs[j] + xs[3 + j], accuracy: 1e-5) }
    }
}
