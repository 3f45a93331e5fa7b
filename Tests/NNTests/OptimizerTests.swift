import Foundation
import XCTest
import Autograd
import NN
import TensorCore
import TestSupport

final class OptimizerTests: XCTestCase {
    /// torch.optim.AdamW's documented algorithm, in Double:
    ///   p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    ///   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
    func testAdamWTwoStepsMatchHandComputation() {
        let p0: [Double] = [0.5, -1.2, 2.0, 0.0]
        let grads: [[Double]] = [[0.3, -0.2, 1.5, 1e-3], [-0.4, 0.1, 0.7, -2.0]]
        let lr = 0.1, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8
        var p = p0, m = [Double](repeating: 0, count: 4), v = m
        for (t, g) in grads.enumerated() {
            let step = Double(t + 1)
            for i in 0..<4 {
                p[i] *= 1 - lr * wd
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                let mh = m[i] / (1 - pow(b1, step)), vh = v[i] / (1 - pow(b2, step))
                p[i] -= lr * mh / (vh.squareRoot() + eps)
            }
        }
        let param = Tensor(p0.map(Float.init), shape: [2, 2], requiresGrad: true)
        let opt = AdamW([("w", param)], lr: lr, betas: (b1, b2), eps: eps, weightDecay: wd)
        for g in grads {
            param.grad = Tensor(g.map(Float.init), shape: [2, 2])
            opt.step()
        }
        assertClose(param.scalars, p.map(Float.init), atol: 1e-6, rtol: 1e-6, "adamw")
        XCTAssertEqual(opt.stepCount(of: "w"), 2)
        let st = opt.exportState().entries["w"]!
        assertClose(st.expAvg.scalars, m.map(Float.init), atol: 1e-6, rtol: 1e-6, "exp_avg")
        assertClose(st.expAvgSq.scalars, v.map(Float.init), atol: 1e-6, rtol: 1e-6, "exp_avg_sq")
        XCTAssertEqual(st.step, 2)
    }

    /// Values produced by PyTorch 2.13 (CPU):
    ///   p = torch.nn.Parameter(torch.tensor([0.5, -1.2, 2.0, 0.0]))
    ///   opt = torch.optim.AdamW([p], lr=0.1, weight_decay=0.1)
    ///   for g in ([0.3, -0.2, 1.5, 1e-3], [-0.4, 0.1, 0.7, -2.0], [0.05, 0.05, -3.0, 0.25]):
    ///       p.grad = torch.tensor(g); opt.step()
    /// Our moments round like ATen's kernels (lerp and addcmul fused): the floats are equal.
    /// The parameters agree to a few ulps only: torch's CPU sqrt (MKL) is not correctly rounded
    /// (here it is off by an ulp in 6 of 12 cases), and the update amplifies that.
    func testAdamWMatchesTorchValues() {
        let param = Tensor([0.5, -1.2, 2.0, 0.0], shape: [4], requiresGrad: true)
        let opt = AdamW([("p", param)], lr: 0.1, weightDecay: 0.1)
        for g: [Float] in [[0.3, -0.2, 1.5, 1e-3], [-0.4, 0.1, 0.7, -2.0], [0.05, 0.05, -3.0, 0.25]] {
            param.grad = Tensor(g, shape: [4])
            opt.step()
        }
        assertClose(param.scalars, [0.4148203730583191, -1.0338425636291504, 1.772852897644043, 0.024751635268330574], atol: 1e-8, rtol: 1e-8, "torch adamw")
        let st = opt.exportState().entries["p"]!
        XCTAssertEqual(st.expAvg.scalars, [-0.006700000260025263, -0.002199999988079071, -0.11549999564886093, -0.15491899847984314])
        XCTAssertEqual(st.expAvgSq.scalars, [0.0002521600981708616, 5.241004328127019e-05, 0.011735012754797935, 0.0040585012175142765])
    }

    /// The vector path (16 lanes, chunks over threads) and the scalar tail agree element-wise:
    /// a parameter updated with identical values per element moves identically everywhere.
    func testAdamWVectorAndTailAgree() {
        let n = 70_001  // above the parallel grain, with a tail
        let param = Tensor(shape: [n], storage: Storage(repeating: 0.7, count: n), requiresGrad: true)
        let opt = AdamW([("w", param)], lr: 0.01)
        for k in 0..<3 {
            param.grad = Tensor(shape: [n], storage: Storage(repeating: Float(k) - 0.5, count: n))
            opt.step()
        }
        let s = param.scalars
        XCTAssertTrue(s.allSatisfy { $0 == s[0] })
        XCTAssertNotEqual(s[0], 0.7)
    }

    func testAdamWSkipsParametersWithoutGradAndHonoursNoDecay() {
        let a = Tensor([1, 1], shape: [2], requiresGrad: true)
        let b = Tensor([1, 1], shape: [2], requiresGrad: true)
        let opt = AdamW([("a", a), ("b", b)], lr: 0.1, weightDecay: 0.5, noDecay: ["a"])
        a.grad = Tensor([0, 0], shape: [2])
        opt.step()
        // Zero gradient: only decay could move a, and a is exempt. b has no gradient at all.
        XCTAssertEqual(a.scalars, [1, 1])
        XCTAssertEqual(b.scalars, [1, 1])
        XCTAssertEqual(opt.stepCount(of: "a"), 1)
        XCTAssertEqual(opt.stepCount(of: "b"), 0)
        XCTAssertNil(opt.exportState().entries["b"])
        b.grad = Tensor([0, 0], shape: [2])
        opt.step()
        XCTAssertEqual(b.scalars, [0.95, 0.95])
    }

    /// Export, import into a fresh optimizer, continue: bit-identical to never stopping.
    func testAdamWStateRoundTripContinuesExactly() throws {
        func grads(_ k: Int) -> Tensor { randn([3, 5], seed: UInt64(100 + k)) }
        let p1 = randn([3, 5]); p1.requiresGrad = true
        let o1 = AdamW([("p", p1)], lr: 0.01)
        for k in 0..<5 { p1.grad = grads(k); o1.step() }

        let p2 = randn([3, 5]); p2.requiresGrad = true
        let o2 = AdamW([("p", p2)], lr: 0.01)
        for k in 0..<3 { p2.grad = grads(k); o2.step() }
        let saved = o2.exportState()
        let p3 = Tensor(shape: p2.shape, storage: p2.storage.copy(), requiresGrad: true)
        let o3 = AdamW([("p", p3)], lr: 0.01)
        try o3.importState(saved)
        for k in 3..<5 { p3.grad = grads(k); o3.step() }
        XCTAssertEqual(p3.scalars, p1.scalars)

        var bad = saved
        bad.entries["q"] = bad.entries["p"]
        assertThrows(["optimizer state has moments for 'q'"]) { try o3.importState(bad) }
        var wrong = OptimizerState()
        wrong.entries["p"] = (Tensor.zeros([2]), Tensor.zeros([2]), 1)
        assertThrows(["optimizer state for 'p' has shape [2], parameter has [3, 5]"]) { try o3.importState(wrong) }
    }

    func testEMA() throws {
        let p = Tensor([1, 2], shape: [2], requiresGrad: true)
        let ema = EMA([("p", p)], decay: 0.9)
        ema.update()
        XCTAssertEqual(ema.shadow[0].scalars, [1, 2])
        p.storage.ptr[0] = 3; p.storage.ptr[1] = 4
        ema.update()
        assertClose(ema.shadow[0].scalars, [1.2, 2.2], atol: 1e-6, rtol: 1e-6, "ema")
        XCTAssertEqual(ema.updates, 2)
        let inside = ema.swapped { p.scalars }
        assertClose(inside, [1.2, 2.2], atol: 1e-6, rtol: 1e-6, "swapped")
        XCTAssertEqual(p.scalars, [3, 4])

        let state = ema.exportState()
        let q = Tensor([0, 0], shape: [2], requiresGrad: true)
        let ema2 = EMA([("p", q)], decay: 0.5)
        try ema2.importState(state)
        XCTAssertEqual(ema2.shadow[0].scalars, ema.shadow[0].scalars)
        XCTAssertEqual(ema2.decay, 0.9)
        XCTAssertEqual(ema2.updates, 2)
        assertThrows(["EMA state has no shadow for 'p'"]) { try ema2.importState(EMAState(shadow: [:], updates: 0, decay: 0.9)) }
    }

    /// PyTorch 2.13: e = torch.tensor([1.0, -2.0, 0.3, 0.123])
    ///   for w in ([3.0, 0.5, -1.0, 7.5], [2.0, 2.0, 0.7, -0.25]): e.lerp_(torch.tensor(w), 1 - 0.99)
    /// A Float decay (as configs give it) means its decimal value, so both agree bit for bit.
    func testEMAMatchesTorchLerp() {
        for floatDecay in [false, true] {
            let p = Tensor([1.0, -2.0, 0.3, 0.123], shape: [4], requiresGrad: true)
            let ema = floatDecay ? EMA([("p", p)], decay: Float(0.99)) : EMA([("p", p)], decay: 0.99)
            XCTAssertEqual(ema.decay, 0.99)
            for w: [Float] in [[3.0, 0.5, -1.0, 7.5], [2.0, 2.0, 0.7, -0.25]] {
                p.storage.ptr.update(from: w, count: 4)
                ema.update()
            }
            XCTAssertEqual(ema.shadow[0].scalars, [1.0297999382019043, -1.9352500438690186, 0.291130006313324, 0.19230230152606964])
        }
    }

    /// Warm-up as diffusers' EMAModel (use_ema_warmup off) decays: update 0 copies the weights,
    /// update k uses min(decay, (1 + k) / (10 + k)). The starting weights' share after n updates
    /// is then prod_{k=1}^{n-1} (1 + k) / (10 + k) = 10! n! / (n + 9)!, against decay^n without it.
    func testEMAWarmup() throws {
        let p = Tensor([1, 2], shape: [2], requiresGrad: true)
        let ema = EMA([("p", p)], decay: 0.999)
        ema.warmup = true
        XCTAssertEqual(ema.currentDecay, 0)
        p.storage.ptr[0] = 5; p.storage.ptr[1] = -1
        ema.update()
        XCTAssertEqual(ema.shadow[0].scalars, [5, -1], "update 0 copies the weights")
        XCTAssertEqual(ema.currentDecay, 2.0 / 11.0, accuracy: 1e-15)
        p.storage.ptr[0] = 3; p.storage.ptr[1] = 4
        ema.update()
        assertClose(ema.shadow[0].scalars, [5 - (9.0 / 11.0) * 2, -1 + (9.0 / 11.0) * 5], atol: 1e-6, rtol: 1e-6, "update 1")
        XCTAssertEqual(ema.currentDecay, 0.25, accuracy: 1e-15)

        // The starting weights' share: shadow of a 1 followed by zeros.
        let q = Tensor([1], shape: [1], requiresGrad: true)
        let warm = EMA([("q", q)], decay: 0.999), plain = EMA([("q", q)], decay: 0.999)
        warm.warmup = true
        warm.update(); plain.update()
        q.storage.ptr[0] = 0
        let n = 20
        for _ in 1..<n { warm.update(); plain.update() }
        var share = 3_628_800.0  // 10!
        for k in (n + 1)...(n + 9) { share /= Double(k) }
        XCTAssertEqual(Double(warm.shadow[0].scalars[0]), share, accuracy: share * 1e-4)
        XCTAssertEqual(Double(plain.shadow[0].scalars[0]), pow(0.999, Double(n - 1)), accuracy: 1e-5)
        // Late updates use the configured decay.
        while warm.updates < 9_000 { warm.update() }
        XCTAssertEqual(warm.currentDecay, 0.999)

        // Resume: the update count carries the warm-up's position.
        let r = Tensor([0, 0], shape: [2], requiresGrad: true)
        let resumed = EMA([("p", r)], decay: 0.999)
        resumed.warmup = true
        try resumed.importState(ema.exportState())
        r.storage.ptr.update(from: p.storage.ptr, count: 2)
        ema.update(); resumed.update()
        XCTAssertEqual(resumed.shadow[0].scalars, ema.shadow[0].scalars)
    }

    func testLRSchedule() {
        let cos = LRSchedule(base: 1.0, warmupSteps: 4, decay: .cosine(totalSteps: 12, floor: 0.1))
        let expected: [(Int, Double)] = [(0, 0.25), (1, 0.5), (3, 1.0), (4, 1.0), (8, 0.55), (12, 0.1), (50, 0.1)]
        for (s, v) in expected { XCTAssertEqual(cos.lr(at: s), v, accuracy: 1e-12, "step \(s)") }
        // A quarter of the way: floor + (base - floor) * (1 + cos(pi/4)) / 2.
        XCTAssertEqual(cos.lr(at: 6), 0.1 + 0.9 * 0.5 * (1 + 0.5.squareRoot()), accuracy: 1e-12)
        let const = LRSchedule(base: 3e-4, warmupSteps: 10)
        XCTAssertEqual(const.lr(at: 4), 1.5e-4, accuracy: 1e-15)
        XCTAssertEqual(const.lr(at: 10), 3e-4)
        XCTAssertEqual(const.lr(at: 10_000), 3e-4)
        XCTAssertEqual(LRSchedule(base: 0.5).lr(at: 0), 0.5)
    }

    func testClipGradNorm() throws {
        let a = Tensor([0, 0], shape: [2], requiresGrad: true)
        let b = Tensor([0], shape: [1], requiresGrad: true)
        let c = Tensor([0], shape: [1], requiresGrad: true)  // no gradient: ignored
        a.grad = Tensor([3, 4], shape: [2])
        b.grad = Tensor([12], shape: [1])
        XCTAssertEqual(gradNorm([a, b, c]), 13, accuracy: 1e-9)
        let before = a.grad!
        XCTAssertEqual(clipGradNorm([a, b, c], maxNorm: 100), 13, accuracy: 1e-9)
        XCTAssertTrue(a.grad === before, "no clipping below the threshold")
        XCTAssertEqual(clipGradNorm([a, b, c], maxNorm: 6.5), 13, accuracy: 1e-9)
        assertClose(a.grad!.scalars, [1.5, 2], atol: 1e-6, rtol: 1e-6, "clip a")
        assertClose(b.grad!.scalars, [6], atol: 1e-6, rtol: 1e-6, "clip b")
        XCTAssertEqual(before.scalars, [3, 4], "the old gradient tensor is not modified in place")

        // Leaves of one add share a single gradient tensor; each must be scaled exactly once.
        let x = Tensor([1, 1], shape: [2], requiresGrad: true)
        let y = Tensor([1, 1], shape: [2], requiresGrad: true)
        try (x + y).backward(Tensor([3, 4], shape: [2]))
        let norm = clipGradNorm([x, y], maxNorm: 1)
        XCTAssertEqual(norm, 50.0.squareRoot(), accuracy: 1e-6)
        assertClose(x.grad!.scalars, [3 / 50.0.squareRoot(), 4 / 50.0.squareRoot()].map(Float.init), atol: 1e-5, rtol: 1e-5, "shared x")
        assertClose(y.grad!.scalars, x.grad!.scalars, atol: 0, rtol: 0, "shared y")
    }
}
