import Foundation
import XCTest
import Autograd
import Formats
import Models
import NN
import TensorCore
import TestSupport

/// Checkpoint metadata is validated before anything is allocated; errors name the file and key.
final class CheckpointMetadataTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTempDir("ckpt-meta") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A small U-Net checkpoint whose metadata `edit` changes (re-checksummed, as a crafted file would be).
    func crafted(_ name: String, _ edit: (inout [String: String]) throws -> Void) throws -> URL {
        let tok = Tokenizer(captions: ["a red square"], maxTokens: 4)
        var spec = ModelSpec(kind: .unet, channels: 1, height: 8, width: 8, vocabularySize: tok.vocabularySize)
        spec.levels = [8, 16]; spec.groups = 4; spec.timeEmbedding = 16; spec.textWidth = 8; spec.textLayers = 1
        spec.textHeads = 2; spec.maxTokens = tok.maxTokens
        let url = dir.appendingPathComponent(name)
        try FlowModel(spec: spec, tokenizer: tok, seed: 1).save(to: url, stage: "teacher", step: 1)
        let a = try Safetensors.read(url)
        var meta = a.metadata
        try edit(&meta)
        try Safetensors.write(a.names.map { ($0, a.tensors[$0]!) }, metadata: meta, to: url)
        return url
    }

    func setSpec(_ key: String, _ value: Any) -> (inout [String: String]) throws -> Void {
        { meta in
            var spec = try JSONSerialization.jsonObject(with: Data(meta["model_spec"]!.utf8)) as! [String: Any]
            spec[key] = value
            meta["model_spec"] = String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
        }
    }

    func testCraftedModelSpecIsRefusedNamingFileAndKey() throws {
        let cases: [(String, Any, String)] = [
            ("groups", 0, "groups 0 outside 1...1024"),
            ("textHeads", 0, "textHeads 0 outside 1...1024"),
            ("textHeads", 3, "textWidth 8 is not divisible by textHeads 3"),
            ("hidden", -5, "hidden -5 outside 1...65536"),
            ("levels", [1 << 30], "levels entry 1073741824 outside 1...8192"),
            ("levels", [8192, 8192, 8192, 8192], "more than 268435456 parameters (size cap)"),
            ("depth", 1_000_000, "depth 1000000 outside 0...256"),
            ("levels", [8, 18], "levels entry 18 not divisible by groups 4"),
        ]
        for (i, (key, value, message)) in cases.enumerated() {
            let url = try crafted("spec\(i).safetensors", setSpec(key, value))
            assertThrows(["checkpoint \(url.path): metadata 'model_spec': invalid model:", message]) { _ = try FlowModel.load(from: url) }
        }
    }

    func testTokenizerErrorsNameTheFile() throws {
        let url = try crafted("tok.safetensors") { $0["tokenizer"] = "{" }
        assertThrows(["checkpoint \(url.path): tokenizer metadata is not valid JSON"]) { _ = try FlowModel.load(from: url) }
        let zero = try crafted("tok0.safetensors") { $0["tokenizer"] = "{\"words\": [\"<pad>\", \"<unk>\", \"<start>\"], \"max_tokens\": 0}" }
        assertThrows(["checkpoint \(zero.path): tokenizer max_tokens 0 outside 1...4096"]) { _ = try FlowModel.load(from: zero) }
    }

    func testCraftedEvaluatorIsRefusedNamingFileAndKey() throws {
        let c = Classifier(inputShape: [1, 8, 8], classes: 3, width: 8, featureWidth: 16, seed: 3)
        let url = dir.appendingPathComponent("eval.safetensors")
        for (key, value, message) in [("input_shape", "0,8,8", "metadata 'input_shape' is '0,8,8'"),
                                      ("classes", "-1", "metadata 'classes' is '-1'"),
                                      ("feature_width", "1000000000", "metadata 'feature_width' is '1000000000'")] {
            try saveCheckpoint(c, metadata: c.metadata(extra: [:]).merging([key: value]) { $1 }, to: url)
            assertThrows(["evaluator \(url.path): \(message)"]) { _ = try loadClassifier(from: url) }
        }
        let sd = c.stateDict().map { $0.0 == "conv1.weight" ? ($0.0, Tensor.zeros([12, 1, 3, 3])) : $0 }
        try Safetensors.write(sd, metadata: c.metadata(), to: url)
        assertThrows(["evaluator \(url.path): tensor 'conv1.weight': width 12", "divisible by 8 GroupNorm groups"]) {
            _ = try loadClassifier(from: url)
        }
    }
}
