import XCTest
import Adapters
import Autograd
import Formats
import Models
import NN
import TensorCore
import TestSupport

final class LoRATests: XCTestCase {
    /// A fresh LoRA (B = 0) on every linear, attention and conv layer leaves v bit for bit unchanged;
    /// a non-zero B does change it (so the comparison can fail).
    func testZeroBLeavesOutputsBitIdentical() throws {
        for kind in [ModelSpec.Kind.mlp, .unet] {
            let m = try tinyModel(kind)
            let before = try velocities(m)
            let set = try LoRASet(model: m, rank: 3, alpha: 6, targets: LoRATarget.allCases, seed: 4)
            XCTAssertEqual(set.targets, LoRATarget.allCases)
            let kinds = Set(m.adaptableLayers().map { $0.1.target })
            XCTAssertEqual(kinds, kind == .unet ? [.linear, .attention, .conv] : [.linear], "\(kind)")
            XCTAssertEqual(set.layers.count, m.adaptableLayers().count)
            try set.attach(to: m)
            let after = try velocities(m)
            XCTAssertEqual(before.scalars.map(\.bitPattern), after.scalars.map(\.bitPattern), "\(kind): B = 0 must not change v")
            randomizeB(set, seed: 8)
            let changed = try velocities(m)
            let diff = zip(before.scalars, changed.scalars).map { abs($0 - $1) }.max()!
            XCTAssertGreaterThan(diff, 1e-4, "\(kind): a non-zero B must change v")
        }
    }

    /// Only the named kinds are adapted; the text encoder never is.
    func testTargetsSelectLayers() throws {
        let m = try tinyModel(.unet)
        let attn = try LoRASet(model: m, rank: 2, alpha: 2, targets: [.attention], seed: 1)
        XCTAssertFalse(attn.layers.isEmpty)
        XCTAssertTrue(attn.layers.allSatisfy { $0.name.hasPrefix("net.") && ["q_proj", "k_proj", "v_proj", "out_proj"].contains($0.name.split(separator: ".").last!) },
                      "\(attn.layers.map(\.name))")
        let conv = try LoRASet(model: m, rank: 2, alpha: 2, targets: [.conv], seed: 1)
        XCTAssertTrue(conv.layers.allSatisfy { $0.adapter.a.rank == 4 && $0.adapter.b.shape.suffix(2) == [1, 1] })
        XCTAssertTrue(conv.stateDict().map(\.0).contains("net.stem.lora_A.weight"), "PEFT-style names")
        assertThrows(["match no layer", "conv"]) { _ = try LoRASet(model: try tinyModel(.mlp), rank: 2, alpha: 2, targets: [.conv], seed: 1) }
    }

    /// The adapters' gradients (A and B, linear and conv) against central finite differences,
    /// the base weights frozen (no gradient).
    func testAdapterGradientsMatchFiniteDifferences() throws {
        var rng = RNG(seed: 3)
        let lin = Linear(5, 4, rng: &rng)
        let la = LoRALayer(linear: lin, rank: 2, alpha: 3, rng: &rng)
        rng.normal(la.b.storage.ptr, count: la.b.count)
        lin.adapters = [la]
        for p in lin.parameters() { p.requiresGrad = false }
        let x = randn([2, 3, 5], seed: 11)
        try gradCheck("lora linear", [la.a, la.b]) { _ in try lin(x) }
        XCTAssertNil(lin.weight.grad, "a frozen base weight gets no gradient")

        let conv = Conv2d(3, 4, kernel: 3, stride: 2, padding: 1, rng: &rng)
        let ca = LoRALayer(conv: conv, rank: 2, alpha: 2, rng: &rng)
        rng.normal(ca.b.storage.ptr, count: ca.b.count)
        conv.adapters = [ca]
        for p in conv.parameters() { p.requiresGrad = false }
        let xc = randn([2, 3, 6, 6], seed: 12)
        try gradCheck("lora conv", [ca.a, ca.b]) { _ in try conv(xc) }
        XCTAssertNil(conv.weight.grad)
        // And the input's gradient still flows through base and adapter together.
        try gradCheck("lora conv input", [xc]) { i in try conv(i[0]) }
    }

    /// `reflow-lora merge` (W += s·(α/r)·B·A) equals applying the same adapters at load time
    /// (W x + s·(α/r)·B(A x)), two LoRAs stacked, to float tolerance: |Δv| <= 1e-5 + 1e-4·|v|
    /// (Float32 sums in another order: the merged weight is rounded once more).
    func testMergeEqualsApplyingAtLoadTime() throws {
        let dir = try tempDir()
        for kind in [ModelSpec.Kind.mlp, .unet] {
            let base = "\(dir)/\(kind).safetensors"
            let m = try tinyModel(kind)
            try m.save(to: URL(fileURLWithPath: base), stage: "teacher", step: 1)
            let sha = try SHA256.hex(file: base)
            var files: [String] = []
            for (i, targets) in [[LoRATarget.linear, .conv], [.attention, .linear]].enumerated() {
                let set = try LoRASet(model: m, rank: 2 + i, alpha: 4, targets: targets, seed: UInt64(20 + i))
                randomizeB(set, seed: UInt64(30 + i), scale: 0.2)
                let f = "\(dir)/\(kind)-lora\(i).safetensors"
                try set.save(to: URL(fileURLWithPath: f), base: base, baseSHA256: sha, baseStage: "teacher")
                files.append(f)
            }
            let uses = [LoRAUse(path: files[0], scale: 0.7), LoRAUse(path: files[1], scale: -1.3)]
            let (applied, _) = try FlowModel.load(from: URL(fileURLWithPath: base))
            try applyLoRAs(uses, to: applied, checkpoint: URL(fileURLWithPath: base), allowOtherBase: false)
            applied.eval()
            let vApplied = try velocities(applied)
            let plain = try velocities(m)
            let merged = "\(dir)/\(kind)-merged.safetensors"
            let n = try mergeLoRAs(base: base, uses: uses, output: merged, allowOtherBase: false)
            XCTAssertGreaterThan(n, 0)
            let (mm, meta) = try FlowModel.load(from: URL(fileURLWithPath: merged))
            mm.eval()
            XCTAssertTrue(meta["merged_loras"]?.contains(files[0]) ?? false, "\(meta)")
            XCTAssertEqual(meta["merged_base_sha256"], sha)
            let vMerged = try velocities(mm)
            var worst: Float = 0, change: Float = 0
            for i in 0..<vMerged.count {
                let a = vApplied.scalars[i], b = vMerged.scalars[i]
                worst = max(worst, abs(a - b) / (1e-5 + 1e-4 * abs(a)))
                change = max(change, abs(a - plain.scalars[i]))
            }
            XCTAssertLessThanOrEqual(worst, 1, "\(kind): merged vs applied beyond 1e-5 + 1e-4|v|")
            XCTAssertGreaterThan(change, 1e-3, "\(kind): the adapters must change v for the comparison to mean anything")
        }
    }
}
