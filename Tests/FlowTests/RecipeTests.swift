import XCTest
import Foundation
import Autograd
import TensorCore
import Flow
import TestSupport

// The 2-RF++ options: the U-shaped time density and the t-weighted pseudo-Huber velocity loss.

extension LossTests {
    /// rfpp's loss in Double: mean over items of t_i (sqrt(s_i + c²) - c) / d, s_i the squared
    /// velocity error of item i, c = 0.00054 d.
    func referenceWeightedHuber(_ w: [Double], _ b: [Double]) -> Double {
        let x0 = self.x0.scalars.map(Double.init), x1 = self.x1.scalars.map(Double.init), t = self.t.scalars.map(Double.init)
        let c = 0.00054 * Double(d)
        var total = 0.0
        for i in 0..<n {
            let xt = (0..<d).map { t[i] * x1[i * d + $0] + (1 - t[i]) * x0[i * d + $0] }
            var s = 0.0
            for j in 0..<d {
                var v = t[i] * b[j]
                for k in 0..<d { v += xt[k] * w[k * d + j] }
                let e = v - (x1[i * d + j] - x0[i * d + j])
                s += e * e
            }
            total += t[i] * ((s + c * c).squareRoot() - c) / Double(d)
        }
        return total / Double(n)
    }

    func testWeightedPseudoHuberValueAndGradient() throws {
        let wv = w.detached(), bv = b.detached()
        wv.requiresGrad = true; bv.requiresGrad = true
        let l = try FlowLoss.weightedHuber(model: model(wv, bv), x0: x0, x1: x1, t: t)
        XCTAssertEqual(l.shape, [])
        let ws = w.scalars.map(Double.init), bs = b.scalars.map(Double.init)
        XCTAssertEqual(Double(l.item), referenceWeightedHuber(ws, bs), accuracy: 1e-6)
        l.backward()
        let gw = finiteDifferences(ws) { referenceWeightedHuber($0, bs) }
        let gb = finiteDifferences(bs) { referenceWeightedHuber(ws, $0) }
        for (a, e) in zip(wv.grad!.scalars, gw) { XCTAssertEqual(Double(a), e, accuracy: 1e-5 + 1e-3 * Swift.abs(e)) }
        for (a, e) in zip(bv.grad!.scalars, gb) { XCTAssertEqual(Double(a), e, accuracy: 1e-5 + 1e-3 * Swift.abs(e)) }
        // The item at t = 0 (noise) carries no weight: changing its target changes nothing.
        var x1b = x1.scalars
        for j in 0..<d { x1b[j] += 5 }
        let moved = try FlowLoss.weightedHuber(model: model(w, b), x0: x0, x1: Tensor(x1b, shape: [n, d]), t: t)
        // x_t of item 0 is x0 at t = 0, so only the target moved, and its weight is 0.
        XCTAssertEqual(moved.item, try FlowLoss.weightedHuber(model: model(w, b), x0: x0, x1: x1, t: t).item, accuracy: 1e-7)
        // l2 is the plain rectified-flow loss.
        XCTAssertEqual(try FlowLoss.l2(model: model(w, b), x0: x0, x1: x1, t: t).item,
                       try rectifiedFlowLoss(model: model(w, b), x0: x0, x1: x1, t: t).item)
    }
}

extension TimeSamplerTests {
    /// Each t is the inverse CDF of the uniform draw it came from, and the ends are cosh(a/2)
    /// times as likely as the middle: the share of t in [0, 0.1) is
    /// (sinh(-0.4 a) + sinh(a/2)) / (2 sinh(a/2)), 17.25% for a = 4 against 10% uniform.
    func testUShaped() throws {
        let a: Float = 4
        var rng = RNG(seed: 5), same = RNG(seed: 5)
        let t = try TimeSampler.uShaped(a: a).sample(200_000, rng: &rng).scalars
        let u = Storage(uninitializedCount: 8)
        same.uniform(u.ptr, count: 8)
        for i in 0..<8 {
            let want = 0.5 + asinh((2 * Double(u.ptr[i]) - 1) * sinh(Double(a) / 2)) / Double(a)
            XCTAssertEqual(Double(t[i]), want, accuracy: 1e-6)
        }
        XCTAssertTrue(t.allSatisfy { $0 >= 0 && $0 <= 1 })
        let ends = Double(t.filter { $0 < 0.1 }.count) / Double(t.count)
        let want = (sinh(-0.4 * Double(a)) + sinh(Double(a) / 2)) / (2 * sinh(Double(a) / 2))
        XCTAssertEqual(want, 0.17250, accuracy: 1e-5)
        XCTAssertEqual(ends, want, accuracy: 0.005)  // ~5 binomial standard deviations
        let (m, _) = moments(t)
        XCTAssertEqual(m, 0.5, accuracy: 0.005, "symmetric about 1/2")
        XCTAssertThrowsError(try TimeSampler.uShaped(a: 0).sample(3, rng: &rng))
    }
}
