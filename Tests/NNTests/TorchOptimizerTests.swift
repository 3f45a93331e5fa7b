import XCTest
import Foundation
import Autograd
import NN
import TensorCore
import TestSupport

/// AdamW and EMA against torch 2.13 (Fixtures/optim.safetensors from scripts/make_fixtures.py):
/// torch.optim.AdamW(lr 0.01, betas (0.9, 0.999), eps 1e-8, weight_decay 0.05) on param0 with
/// grad1 then grad2, and ema.lerp_(w, 1 - 0.99) from param0 toward ema_w1 then ema_w2.
/// Both sides compute in float32 with the same formulas, so the tolerance is rtol 1e-6 under the
/// rule |a - b| <= rtol * (|b| + mean|b|): a few float32 ulps (torch's sqrt may differ by one).
final class TorchOptimizerTests: XCTestCase {
    let rtol = 1e-6

    func testAdamWTwoStepsMatchTorch() throws {
        let a = try loadTorchFixture("optim", bundle: .module)
        // The hyperparameters the file was made with are the ones used here.
        XCTAssertEqual(a.metadata["lr"], "0.01")
        XCTAssertEqual(a.metadata["betas"], "0.9,0.999")
        XCTAssertEqual(a.metadata["eps"], "1e-8")
        XCTAssertEqual(a.metadata["weight_decay"], "0.05")
        let p = fixtureCopy(try a.require("param0"), requiresGrad: true)
        let opt = AdamW([("w", p)], lr: 0.01, betas: (0.9, 0.999), eps: 1e-8, weightDecay: 0.05)
        var errs: [String] = []
        for i in 1...2 {
            p.grad = fixtureCopy(try a.require("grad\(i)"))
            opt.step()
            let e = assertMatchesTorch(p, try a.require("param\(i)"), rtol: rtol, "AdamW param after step \(i)")
            errs.append("param\(i) \(String(format: "%.1e", e))")
        }
        let st = try XCTUnwrap(opt.exportState().entries["w"])
        XCTAssertEqual(st.step, 2)
        let em = assertMatchesTorch(st.expAvg, try a.require("exp_avg"), rtol: rtol, "AdamW exp_avg")
        let ev = assertMatchesTorch(st.expAvgSq, try a.require("exp_avg_sq"), rtol: rtol, "AdamW exp_avg_sq")
        errs += ["exp_avg \(String(format: "%.1e", em))", "exp_avg_sq \(String(format: "%.1e", ev))"]
        print("torch-fixture adamw: \(errs.joined(separator: ", "))")
    }

    func testEMATwoUpdatesMatchTorch() throws {
        let a = try loadTorchFixture("optim", bundle: .module)
        XCTAssertEqual(a.metadata["ema_decay"], "0.99")
        let p = fixtureCopy(try a.require("param0"), requiresGrad: true)
        let ema = EMA([("w", p)], decay: 0.99)
        var errs: [String] = []
        for i in 1...2 {
            // The tracked parameter takes the new weights, then the shadow moves toward them.
            let w = try a.require("ema_w\(i)")
            p.storage.ptr.update(from: w.storage.ptr, count: w.count)
            ema.update()
            let e = assertMatchesTorch(ema.shadow[0], try a.require("ema\(i)"), rtol: rtol, "EMA after update \(i)")
            errs.append("ema\(i) \(String(format: "%.1e", e))")
        }
        XCTAssertEqual(ema.updates, 2)
        print("torch-fixture ema: \(errs.joined(separator: ", "))")
    }
}
