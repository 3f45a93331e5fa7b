import XCTest
import Autograd
import TensorCore
import Flow
import TestSupport

/// A tiny linear velocity model v(x, t) = x W + t b, with W [D, D] and b [1, D] trainable.
final class LossTests: XCTestCase {
    let n = 4, d = 3
    lazy var x0 = randn([n, d], seed: 11)
    lazy var x1 = randn([n, d], seed: 12)
    let t = Tensor([0, 0.25, 0.6, 0.9], shape: [4])
    lazy var w = randn([d, d], seed: 13) * 0.5
    lazy var b = randn([1, d], seed: 14)

    func model(_ w: Tensor, _ b: Tensor) -> Velocity {
        { x, t in try x.matmul(w) + t.reshaped([-1, 1]) * b }
    }

    /// The same loss in Double, from plain arrays (the reference for value and finite differences).
    func referenceLoss(_ w: [Double], _ b: [Double], distill: Bool = false) -> Double {
        let x0 = self.x0.scalars.map(Double.init), x1 = self.x1.scalars.map(Double.init), t = self.t.scalars.map(Double.init)
        var total = 0.0
        for i in 0..<n {
            let xt = (0..<d).map { t[i] * x1[i * d + $0] + (1 - t[i]) * x0[i * d + $0] }
            for j in 0..<d {
                var v = t[i] * b[j]
                for k in 0..<d { v += xt[k] * w[k * d + j] }
                let e = distill ? xt[j] + (1 - t[i]) * v - x1[i * d + j] : v - (x1[i * d + j] - x0[i * d + j])
                total += e * e
            }
        }
        return total / Double(n * d)
    }

    func finiteDifferences(_ params: [Double], _ f: ([Double]) -> Double) -> [Double] {
        (0..<params.count).map { i in
            var up = params, down = params
            up[i] += 1e-5; down[i] -= 1e-5
            return (f(up) - f(down)) / 2e-5
        }
    }

    func checkGradients(distill: Bool, _ loss: (Velocity) throws -> Tensor) throws {
        let wv = w.detached(), bv = b.detached()
        wv.requiresGrad = true; bv.requiresGrad = true
        let l = try loss(model(wv, bv))
        XCTAssertEqual(l.shape, [])
        let ws = w.scalars.map(Double.init), bs = b.scalars.map(Double.init)
        XCTAssertEqual(Double(l.item), referenceLoss(ws, bs, distill: distill), accuracy: 1e-5)
        l.backward()
        let gw = finiteDifferences(ws) { referenceLoss($0, bs, distill: distill) }
        let gb = finiteDifferences(bs) { referenceLoss(ws, $0, distill: distill) }
        for (a, e) in zip(wv.grad!.scalars, gw) { XCTAssertEqual(Double(a), e, accuracy: 1e-4 + 1e-3 * Swift.abs(e)) }
        for (a, e) in zip(bv.grad!.scalars, gb) { XCTAssertEqual(Double(a), e, accuracy: 1e-4 + 1e-3 * Swift.abs(e)) }
    }

    func testRectifiedFlowLossValueAndGradient() throws {
        try checkGradients(distill: false) { try rectifiedFlowLoss(model: $0, x0: x0, x1: x1, t: t) }
        let per = try rectifiedFlowLossPerItem(model: model(w, b), x0: x0, x1: x1, t: t)
        XCTAssertEqual(per.shape, [n])
        XCTAssertEqual(try per.mean().item, try rectifiedFlowLoss(model: model(w, b), x0: x0, x1: x1, t: t).item, accuracy: 1e-6)
    }

    func testInterpolationConvention() throws {
        let xt = try interpolate(x0: x0, x1: x1, t: t)
        for i in 0..<n { for j in 0..<d {
            let k = i * d + j, ti = t.scalars[i]
            XCTAssertEqual(xt.scalars[k], ti * x1.scalars[k] + (1 - ti) * x0.scalars[k], accuracy: 1e-6)
        } }
        XCTAssertEqual(Array(xt.scalars[0..<d]), Array(x0.scalars[0..<d]))  // t = 0 is noise
    }

    /// x̂1 = x_t + (1 - t) v(x_t, t); at t = 0 the one-step generator x0 + v(x0, 0). With L2 the
    /// distillation loss is the flow loss weighted by (1 - t)^2 per item.
    func testDistillationL2() throws {
        try checkGradients(distill: true) { try distillationLoss(model: $0, x0: x0, x1: x1, t: t, loss: .l2) }
        let m = model(w, b)
        let zero = Tensor.zeros([n])
        let pred = try studentPrediction(model: m, x0: x0, x1: x1, t: zero)
        assertClose(pred, try (x0 + m(x0, zero)).scalars, atol: 1e-6, "one step")
        let per = try rectifiedFlowLossPerItem(model: m, x0: x0, x1: x1, t: t).scalars
        let weighted = zip(per, t.scalars).map { $0 * (1 - $1) * (1 - $1) }.reduce(0, +) / Float(n)
        XCTAssertEqual(try distillationLoss(model: m, x0: x0, x1: x1, t: t).item, weighted, accuracy: 1e-6)
    }

    func testPseudoHuber() throws {
        let p = randn([3, 2, 2], seed: 21), q = randn([3, 2, 2], seed: 22)
        func reference(_ p: [Double], c: Double) -> Double {
            (0..<3).map { i in
                let s = (0..<4).map { p[i * 4 + $0] - Double(q.scalars[i * 4 + $0]) }.map { $0 * $0 }.reduce(0, +)
                return (s + c * c).squareRoot() - c
            }.reduce(0, +) / 3
        }
        let ps = p.scalars.map(Double.init)
        for c: Float? in [nil, 0.5] {
            let cd = Double(c ?? 0.00054 * 2)  // sqrt(d) = sqrt(4)
            let pv = p.detached(); pv.requiresGrad = true
            let l = try DistillationLoss.pseudoHuber(c: c)(pv, q)
            XCTAssertEqual(Double(l.item), reference(ps, c: cd), accuracy: 1e-5)
            l.backward()
            let fd = finiteDifferences(ps) { reference($0, c: cd) }
            for (a, e) in zip(pv.grad!.scalars, fd) { XCTAssertEqual(Double(a), e, accuracy: 1e-4 + 1e-3 * Swift.abs(e)) }
        }
        // Quadratic near zero: sqrt(s + c^2) - c ≈ s / 2c.
        let small = q + 1e-3
        XCTAssertEqual(try pseudoHuberLoss(small, q, c: 1).item, 4e-6 / 2, accuracy: 1e-8)
        XCTAssertThrowsError(try pseudoHuberLoss(p, q, c: 0))
    }

    func testPerceptualHookAndCombinations() throws {
        let p = randn([2, 3], seed: 31), q = randn([2, 3], seed: 32)
        let l2 = try l2Loss(p, q).item
        let twoMaps = DistillationLoss.perceptual { x in [x, x * 2] }
        XCTAssertEqual(try twoMaps(p, q).item, 5 * l2, accuracy: 1e-5)
        XCTAssertEqual(try (DistillationLoss.l2 + DistillationLoss.l2.scaled(2))(p, q).item, 3 * l2, accuracy: 1e-5)
        XCTAssertEqual((DistillationLoss.perceptual(name: "lpips") { [$0] } + .l2).name, "lpips+l2")
        // The extractor's target pass records nothing; the prediction side gets the gradient.
        let pv = p.detached(); pv.requiresGrad = true
        let qv = q.detached(); qv.requiresGrad = true
        try twoMaps(pv, qv).backward()
        XCTAssertNotNil(pv.grad)
        XCTAssertNil(qv.grad)
        var calls = 0
        let bad = DistillationLoss.perceptual { x in calls += 1; return calls == 1 ? [x] : [x, x] }
        XCTAssertThrowsError(try bad(p, q))
        XCTAssertThrowsError(try DistillationLoss.l2(p, randn([3, 2], seed: 1)))
        XCTAssertThrowsError(try rectifiedFlowLoss(model: model(w, b), x0: x0, x1: randn([n, d + 1], seed: 1), t: t))
        XCTAssertThrowsError(try rectifiedFlowLoss(model: model(w, b), x0: x0, x1: x1, t: Tensor.zeros([n + 1])))
    }
}
