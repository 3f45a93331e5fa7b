import XCTest
import TestSupport
import Autograd
import Control
import Formats
import Models
import NN
import TensorCore
import Foundation

final class ControlNetFileTests: XCTestCase {
    let op = ControlOperator(kind: .sobel, threshold: 1.5, factor: 4)

    /// Writes `net` as a ControlNet file claiming to be trained on the base with `baseSHA`.
    func write(_ net: ControlNet, baseSHA: String, to url: URL, base: FlowModel) throws {
        try saveCheckpoint(net, metadata: base.metadata(stage: "controlnet", step: 1, extra: [
            ControlNetKey.role: ControlNetKey.roleValue, ControlNetKey.controlOperator: op.json(),
            ControlNetKey.controlChannels: "1", ControlNetKey.basePath: "teacher.safetensors", ControlNetKey.baseSHA256: baseSHA,
        ]), to: url)
    }

    func testRoundTripAndTheBasesLineage() throws {
        let dir = try makeTempDir("controlnet")
        let base = try ControlNetTests.base()
        let baseURL = dir.appendingPathComponent("teacher.safetensors")
        try base.save(to: baseURL, stage: "teacher", step: 1)
        let net = try ControlNet(spec: base.spec, hintChannels: 1, seed: 4)
        try net.copyEncoder(from: base.net as! UNet)
        var rng = RNG(seed: 5)
        rng.normal(net.midZero.weight.storage.ptr, count: net.midZero.weight.count)
        let url = dir.appendingPathComponent("controlnet.safetensors")
        try write(net, baseSHA: try SHA256.hex(file: baseURL.path), to: url, base: base)
        let loaded = try loadControlNet(url, base: base, baseURL: baseURL)
        XCTAssertEqual(loaded.op, op)
        XCTAssertEqual(loaded.net.midZero.weight.scalars, net.midZero.weight.scalars)
        // A model trained from the base (the 2-RF), and one trained from that (the student),
        // take it unchanged; the chain is followed through `init_from` / `init_sha256`.
        let rf = try ControlNetTests.base(seed: 8), rfURL = dir.appendingPathComponent("reflow.safetensors")
        try rf.save(to: rfURL, stage: "reflow", step: 1, extra: ["init_from": baseURL.path, "init_sha256": try SHA256.hex(file: baseURL.path)])
        let st = try ControlNetTests.base(seed: 9), stURL = dir.appendingPathComponent("distill.safetensors")
        try st.save(to: stURL, stage: "distill", step: 1, extra: ["init_from": "elsewhere/reflow.safetensors", "init_sha256": try SHA256.hex(file: rfURL.path)])
        XCTAssertNoThrow(try loadControlNet(url, base: rf, baseURL: rfURL))
        XCTAssertNoThrow(try loadControlNet(url, base: st, baseURL: stURL))
    }

    func testAnotherBaseIsRefusedNamingBothHashes() throws {
        let dir = try makeTempDir("controlnet")
        let base = try ControlNetTests.base(), other = try ControlNetTests.base(seed: 11)
        let baseURL = dir.appendingPathComponent("teacher.safetensors"), otherURL = dir.appendingPathComponent("other.safetensors")
        try base.save(to: baseURL, stage: "teacher", step: 1)
        try other.save(to: otherURL, stage: "teacher", step: 1)
        let net = try ControlNet(spec: base.spec, hintChannels: 1, seed: 4)
        let url = dir.appendingPathComponent("controlnet.safetensors")
        let sha = try SHA256.hex(file: baseURL.path)
        try write(net, baseSHA: sha, to: url, base: base)
        assertThrows(["ControlNet \(url.path) was trained on", String(sha.prefix(12)), "\(otherURL.path) is neither that checkpoint nor trained from it",
                      String(try SHA256.hex(file: otherURL.path).prefix(12))]) {
            _ = try loadControlNet(url, base: other, baseURL: otherURL)
        }
    }

    func testLayerShapesThatDoNotFitAreNamed() throws {
        let dir = try makeTempDir("controlnet")
        let base = try ControlNetTests.base()
        let baseURL = dir.appendingPathComponent("teacher.safetensors")
        try base.save(to: baseURL, stage: "teacher", step: 1)
        // Made for a U-Net with 24 channels at level 1, stamped with this base's hash.
        let wide = try ControlNet(spec: ControlNetTests.spec(vocab: base.spec.vocabularySize, levels: [8, 24]), hintChannels: 1, seed: 4)
        let url = dir.appendingPathComponent("controlnet.safetensors")
        try write(wide, baseSHA: try SHA256.hex(file: baseURL.path), to: url, base: base)
        assertThrows(["ControlNet \(url.path) does not fit the U-Net of \(baseURL.path)",
                      "tensor 'zero_convs.1.weight' has shape [24, 24, 1, 1], model expects [16, 16, 1, 1]",
                      "tensor 'mid2.conv2.weight' has shape [24, 24, 3, 3], model expects [16, 16, 3, 3]"]) {
            _ = try loadControlNet(url, base: base, baseURL: baseURL)
        }
    }

    func testNotAControlNetAndAnMLPBase() throws {
        let dir = try makeTempDir("controlnet")
        let base = try ControlNetTests.base()
        let baseURL = dir.appendingPathComponent("teacher.safetensors")
        try base.save(to: baseURL, stage: "teacher", step: 1)
        assertThrows(["\(baseURL.path) is not a ControlNet", "reflow-train --stage controlnet"]) {
            _ = try loadControlNet(baseURL, base: base, baseURL: baseURL)
        }
        var mlpSpec = base.spec
        mlpSpec.kind = .mlp; mlpSpec.hidden = 16; mlpSpec.depth = 1
        assertThrows(["a ControlNet needs a U-Net base", "mlp"]) { _ = try ControlNet(spec: mlpSpec, hintChannels: 1, seed: 1) }
    }

    func testAHintForEveryBatchShape() throws {
        let m = try ControlNetTests.base()
        let net = try ControlNet(spec: m.spec, hintChannels: 1, seed: 4)
        let a = ControlAttachment(net: net, scale: 1)
        a.hint = randn([2, 1, 8, 8], seed: 2)
        try a.attach(to: m)
        let text = try m.encode(["a", "b", "c"])
        assertThrows(["2 control images for a batch of 3"]) {
            _ = try m.velocity(randn([3, 1, 8, 8]), t: Tensor([0, 0, 0], shape: [3]), text: text)
        }
    }
}
