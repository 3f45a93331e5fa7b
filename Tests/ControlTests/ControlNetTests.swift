import XCTest
import TestSupport
import Autograd
import Control
import Flow
import Formats
import Generation
import Models
import NN
import TensorCore
import Foundation

final class ControlNetTests: XCTestCase {
    static func spec(vocab: Int, levels: [Int] = [8, 16]) -> ModelSpec {
        var s = ModelSpec(kind: .unet, channels: 1, height: 8, width: 8, vocabularySize: vocab)
        s.levels = levels; s.groups = 4; s.attentionLevels = [1]
        s.timeEmbedding = 16; s.textWidth = 16; s.textLayers = 1; s.textHeads = 2; s.maxTokens = 6
        return s
    }

    /// A U-Net whose every weight is random (the output conv starts at zero, which would make
    /// any comparison of outputs trivially pass).
    static func base(seed: UInt64 = 3, levels: [Int] = [8, 16]) throws -> FlowModel {
        let tok = Tokenizer(captions: ["the number 7", "digit three"], maxTokens: 6)
        let m = try FlowModel(spec: spec(vocab: tok.vocabularySize, levels: levels), tokenizer: tok, seed: seed)
        var rng = RNG(seed: seed &+ 99)
        for (_, p) in (m.net as! UNet).outConv.ownParameters() { rng.normal(p.storage.ptr, count: p.count) }
        return m
    }

    func velocity(_ m: FlowModel, _ x: Tensor, _ t: Tensor) throws -> [Float] {
        try noGrad { try m.velocity(x, t: t, text: m.encode(["the number 7", "", "digit three"])).scalars }
    }

    func testFreshControlNetLeavesTheBaseBitIdentical() throws {
        let m = try Self.base()
        let x = randn([3, 1, 8, 8], seed: 1), t = Tensor([0.1, 0.5, 0.9], shape: [3])
        let plain = try velocity(m, x, t)
        let net = try ControlNet(spec: m.spec, hintChannels: 1, seed: 4)
        try net.copyEncoder(from: m.net as! UNet)
        let attachment = ControlAttachment(net: net, scale: 3)
        attachment.hint = randn([3, 1, 8, 8], seed: 2)
        try attachment.attach(to: m)
        // Every residual is exactly +0 (zero weights and biases), and v + 0 == v for every finite v
        // (bit for bit unless v is -0, which the base's skips and middle block do not hold here).
        let controlled = try velocity(m, x, t)
        XCTAssertEqual(controlled.map(\.bitPattern), plain.map(\.bitPattern))
        XCTAssertTrue(plain.contains { $0 != 0 })
        // Sampling with guidance (the doubled batch repeats the hint), in the batch `generate` uses
        // (sgemm sums in another order for another batch size): the same images, bit for bit.
        ControlAttachment.detach(from: m)
        let x0 = randn([3, 1, 8, 8], seed: 6), prompts = ["the number 7", "", "digit three"]
        let solver = SolverSettings(kind: .euler, steps: 3, rtol: 0, atol: 0).makeSolver()
        let free = try generate(m, x0: x0, prompts: prompts, method: .ode(solver), guidance: 1.5).images
        let held = try generateControlled(m, control: attachment, controls: randn([3, 1, 8, 8], seed: 2), x0: x0, prompts: prompts,
                                          method: .ode(solver), guidance: 1.5, batchSize: 3).images
        XCTAssertEqual(held.scalars.map(\.bitPattern), free.scalars.map(\.bitPattern))
        attachment.hint = randn([3, 1, 8, 8], seed: 2)
        try attachment.attach(to: m)
        // The hook does run: once a zero conv moves, the output moves.
        net.midZero.weight.storage.ptr[0] = 0.5
        XCTAssertNotEqual(try velocity(m, x, t), plain)
        ControlAttachment.detach(from: m)
        XCTAssertEqual(try velocity(m, x, t), plain)
    }

    func testTheCopyStartsFromTheBaseEncoder() throws {
        let m = try Self.base()
        let net = try ControlNet(spec: m.spec, hintChannels: 1, seed: 4)
        try net.copyEncoder(from: m.net as! UNet)
        let base = Dictionary(uniqueKeysWithValues: (m.net as! UNet).stateDict().map { ($0.0, $0.1.scalars) })
        var copied = 0
        for (name, p) in net.stateDict() where ControlNet.copiedPrefixes.contains(where: { name.hasPrefix($0) }) {
            XCTAssertEqual(p.scalars, base[name], name)
            copied += 1
        }
        XCTAssertGreaterThan(copied, 20)
    }

    func testOnlyTheControlNetGetsGradients() throws {
        let m = try Self.base()
        for p in m.parameters() { p.requiresGrad = false }
        let net = try ControlNet(spec: m.spec, hintChannels: 1, seed: 4)
        try net.copyEncoder(from: m.net as! UNet)
        let attachment = ControlAttachment(net: net, scale: 1)
        attachment.hint = randn([2, 1, 8, 8], seed: 2)
        try attachment.attach(to: m)
        let v = try m.velocity(randn([2, 1, 8, 8], seed: 1), t: Tensor([0.2, 0.7], shape: [2]), text: m.encode(["digit three", "the number 7"]))
        try (v * v).mean().backward()
        XCTAssertTrue(m.parameters().allSatisfy { $0.grad == nil })
        // The zero convs are where learning starts: their gradient is not zero.
        let g = try XCTUnwrap(net.midZero.weight.grad)
        XCTAssertTrue(g.scalars.contains { $0 != 0 })
        XCTAssertNotNil(net.zeroConvs[0].weight.grad)
    }

    func testSobelOperatorExactValues() throws {
        // Intensity u (4x4): 1 at (0,0) and (2,1), 0.5 at (2,2). Magnitudes, from numpy with
        // np.pad(u, 1, mode='edge') and the 3x3 Sobel kernels:
        //   4.2426 3.1623 0      0
        //   2      1.5811 2.2361 0.7071
        //   2      1      2      1
        //   1.4142 2.5495 2.2361 0.7071
        var u = [Float](repeating: 0, count: 16)
        u[0] = 1; u[9] = 1; u[10] = 0.5
        let x = Tensor(u.map { 2 * $0 - 1 }, shape: [1, 1, 4, 4])
        let at15 = try ControlOperator(kind: .sobel, threshold: 1.5, factor: 1)(x)
        XCTAssertEqual(at15.shape, [1, 1, 4, 4])
        XCTAssertEqual(at15.scalars, [1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0])
        XCTAssertEqual(try ControlOperator(kind: .sobel, threshold: 2.5, factor: 1)(x).scalars,
                       [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
        // Three channels: the channel mean is the intensity.
        let rgb = Tensor(u.map { 2 * $0 - 1 } + u.map { 2 * $0 - 1 } + u.map { 2 * $0 - 1 }, shape: [1, 3, 4, 4])
        XCTAssertEqual(try ControlOperator(kind: .sobel, threshold: 1.5, factor: 1)(rgb).scalars, at15.scalars)
    }

    func testSilhouetteOperatorExactValues() throws {
        // 2x2 blocks holding 0, 1, 2 and 4 pixels above 0.5: set where at least half is.
        let u: [Float] = [0, 0, 1, 0,
                          0, 0, 0, 0,
                          1, 0, 1, 1,
                          0, 1, 1, 1]
        let x = Tensor(u.map { 2 * $0 - 1 }, shape: [1, 1, 4, 4])
        let s = try ControlOperator(kind: .silhouette, threshold: 0.5, factor: 2)(x)
        XCTAssertEqual(s.scalars, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
        assertThrows(["silhouette factor 3", "4x4"]) { _ = try ControlOperator(kind: .silhouette, threshold: 0.5, factor: 3)(x) }
    }

    func testFidelityMeasures() throws {
        let c = Tensor([1, 1, 0, 0], shape: [1, 1, 2, 2])
        let op = ControlOperator(kind: .silhouette, threshold: 0.5, factor: 1)
        // The operator of this image is [1, 0, 1, 0]: 2 of 4 pixels differ; |both| 1, |either| 3.
        let f = try controlFidelity(Tensor([1, -1, 1, -1], shape: [1, 1, 2, 2]), controls: c, op: op)
        XCTAssertEqual(f.mse, 0.5)
        XCTAssertEqual(f.iou, 1.0 / 3.0, accuracy: 1e-12)
        let same = try controlFidelity(Tensor([1, 1, -1, -1], shape: [1, 1, 2, 2]), controls: c, op: op)
        XCTAssertEqual(same.mse, 0); XCTAssertEqual(same.iou, 1)
    }

    func testArguments() throws {
        XCTAssertEqual(try ControlNetArgument(parsing: "a/b.safetensors:0.5"), try ControlNetArgument(parsing: "a/b.safetensors:0.5"))
        XCTAssertEqual(try ControlNetArgument(parsing: "a/b.safetensors:0.5").scale, 0.5)
        XCTAssertNil(try ControlNetArgument(parsing: "a/b.safetensors").scale)
        let c = try ControlEvalCheckpoint(parsing: "student=runs/x/distill.safetensors@1,1", defaultSteps: 25, defaultGuidance: 1.5)
        XCTAssertEqual(c, ControlEvalCheckpoint(label: "student", path: "runs/x/distill.safetensors", steps: 1, guidance: 1))
        XCTAssertEqual(try ControlEvalCheckpoint(parsing: "runs/x/teacher.safetensors", defaultSteps: 25, defaultGuidance: 1.5),
                       ControlEvalCheckpoint(label: "teacher", path: "runs/x/teacher.safetensors", steps: 25, guidance: 1.5))
        assertThrows(["--checkpoint t=a@x", "steps"]) { _ = try ControlEvalCheckpoint(parsing: "t=a@x", defaultSteps: 1, defaultGuidance: 1) }
    }
}
