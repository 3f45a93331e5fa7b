import XCTest
import Autograd
import TensorCore
import Flow
import TestSupport

// Flow-guided distillation's data-free term: value and the stop-gradient on the guide's side.

extension LossTests {
    /// Guide v_g(x, t) = x * g + t (elementwise, g [1, D]) with a trainable g that must get no gradient.
    func testFlowGuidedLossValueAndStopGradient() throws {
        let wv = w.detached(), bv = b.detached()
        wv.requiresGrad = true; bv.requiresGrad = true
        let g = randn([1, d], seed: 15)
        g.requiresGrad = true
        let guide: Velocity = { x, t in try x * g + t.reshaped([-1, 1]) }
        let z = x0
        let l = try flowGuidedLoss(student: model(wv, bv), guide: guide, z: z, t: t)
        l.backward()
        // Reference in Double: d = z W (the student at t = 0), target = (z + t d) g + t, taken as data.
        let zs = z.scalars.map(Double.init), ws = w.scalars.map(Double.init), gs = g.scalars.map(Double.init)
        let ts = t.scalars.map(Double.init)
        var value = 0.0
        var gradW = [Double](repeating: 0, count: d * d)
        for i in 0..<n {
            for j in 0..<d {
                var dij = 0.0
                for k in 0..<d { dij += zs[i * d + k] * ws[k * d + j] }
                let target = (zs[i * d + j] + ts[i] * dij) * gs[j] + ts[i]
                let e = dij - target
                value += e * e
                for k in 0..<d { gradW[k * d + j] += 2 * e * zs[i * d + k] / Double(n * d) }
            }
        }
        XCTAssertEqual(Double(l.item), value / Double(n * d), accuracy: 1e-5)
        for (a, e) in zip(wv.grad!.scalars, gradW) { XCTAssertEqual(Double(a), e, accuracy: 1e-5 + 1e-4 * Swift.abs(e)) }
        // b enters the student as t b at t = 0: no gradient; the guide is frozen: none either.
        XCTAssertTrue(bv.grad.map { $0.scalars.allSatisfy { $0 == 0 } } ?? true)
        XCTAssertNil(g.grad, "the guide's side carries no gradient")
    }

    /// A straight guide (constant velocity c) and a student that moves every z by c: loss 0.
    func testFlowGuidedLossIsZeroOnAStraightGuidesEndpoint() throws {
        let c = randn([1, d], seed: 16)
        let v: Velocity = { x, _ in try Tensor.zeros(x.shape) + c }
        XCTAssertEqual(try flowGuidedLoss(student: v, guide: v, z: x0, t: t).item, 0, accuracy: 1e-12)
        XCTAssertThrowsError(try flowGuidedLoss(student: v, guide: v, z: x0, t: Tensor([0.5], shape: [1]))) {
            XCTAssertTrue("\($0)".contains("one time per item"), "\($0)")
        }
    }
}
