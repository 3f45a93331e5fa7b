import XCTest
import Foundation
import Autograd
import NN
import TensorCore
import TestSupport

/// NN layers against torch.nn (Fixtures/modules.safetensors from scripts/make_fixtures.py).
/// Module `m` has its torch state_dict under `m.<param>`, loaded with `loadStateDict` (strict,
/// so names and shapes must be torch's), then output, input gradient and parameter gradients of
/// sum(output * proj) are compared with `io.m.*`. The reference runs in float64 on the same
/// float32 values; rule |a - b| <= 1e-4 * (|b| + mean|b|), as for the op fixtures.
/// nn.MultiheadAttention is not covered: its packed in_proj_weight has no counterpart in our
/// q_proj/k_proj/v_proj names.
final class TorchModuleTests: XCTestCase {
    let rtol = 1e-4

    /// Our layer for a torch module's constructor arguments (the `modules` metadata).
    private func build(_ cfg: FixtureParams) throws -> Layer {
        var rng = RNG(seed: 5)  // any init: loadStateDict overwrites every parameter
        switch cfg.json["type"] as? String {
        case "Linear":
            return Linear(try cfg.int("in"), try cfg.int("out"), bias: try cfg.bool("bias"), rng: &rng)
        case "Conv2d":
            return Conv2d(try cfg.int("in"), try cfg.int("out"), kernel: try cfg.int("kernel"), stride: try cfg.int("stride"),
                          padding: try cfg.int("padding"), bias: try cfg.bool("bias"), rng: &rng)
        case "GroupNorm":
            return GroupNorm(groups: try cfg.int("groups"), channels: try cfg.int("channels"), eps: try cfg.float("eps"))
        case "LayerNorm":
            return LayerNorm(try cfg.int("dim"), eps: try cfg.float("eps"))
        default:
            throw TorchFixtureError("module \(cfg.name): no Swift counterpart for type \(cfg.json["type"] ?? "nil")")
        }
    }

    func testModulesMatchTorch() throws {
        let a = try loadTorchFixture("modules", bundle: .module)
        let mods = try a.jsonCases("modules")
        guard !mods.isEmpty else { throw TorchFixtureError("modules.safetensors: metadata 'modules' is empty") }
        var used = Set<String>()
        for name in mods.keys.sorted() {
            let layer = try build(FixtureParams(name: name, json: mods[name]!, archive: a))
            let prefix = "\(name)."
            var sd: [String: Tensor] = [:]
            for (k, t) in a.tensors where k.hasPrefix(prefix) {
                sd[String(k.dropFirst(prefix.count))] = t
                used.insert(k)
            }
            try layer.loadStateDict(sd, source: "torch \(name)")
            let io = "io.\(name)."
            func req(_ k: String) throws -> Tensor { used.insert(io + k); return try a.require(io + k) }
            let x = fixtureCopy(try req("input"), requiresGrad: true)
            let y = try layer(x)
            var report: [(String, Double)] = []
            report.append(("out", assertMatchesTorch(y, try req("output"), rtol: rtol, "\(name) output")))
            guard y.shape == (try req("output")).shape else { continue }
            try (y * req("proj")).sum().backward()
            report.append(("grad.input", assertMatchesTorch(try XCTUnwrap(x.grad, "\(name): no input gradient"),
                                                            try req("grad.input"), rtol: rtol, "\(name) input gradient")))
            for (pname, p) in layer.stateDict() {
                let g = try XCTUnwrap(p.grad, "\(name).\(pname): no gradient")
                report.append(("grad.\(pname)", assertMatchesTorch(g, try req("grad.\(pname)"), rtol: rtol,
                                                                    "\(name).\(pname) gradient")))
            }
            let worst = report.map { $0.1 }.max()!
            print("torch-fixture module \(name): worst \(String(format: "%.2e", worst)); "
                  + report.map { "\($0.0) \(String(format: "%.1e", $0.1))" }.joined(separator: ", "))
        }
        // Every tensor in the file was loaded or compared.
        for k in a.names.sorted() where !used.contains(k) { XCTFail("modules.safetensors: tensor '\(k)' is not used") }
    }
}
