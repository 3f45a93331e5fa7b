import XCTest
import TestSupport
import Autograd
import Models
import NN
import TensorCore
import Foundation

final class ModelTests: XCTestCase {
    func spec(_ kind: ModelSpec.Kind, _ shape: [Int], vocab: Int) -> ModelSpec {
        var s = ModelSpec(kind: kind, channels: shape[0], height: shape[1], width: shape[2], vocabularySize: vocab)
        s.hidden = 32; s.depth = 2; s.levels = [8, 16]; s.groups = 4; s.attentionLevels = [1]
        s.timeEmbedding = 16; s.textWidth = 16; s.textLayers = 1; s.textHeads = 2; s.maxTokens = 6
        return s
    }

    func testForwardShapesAndGradientsReachEveryParameter() throws {
        let tok = Tokenizer(captions: ["the number 7", "digit three"], maxTokens: 6)
        for (kind, shape) in [(ModelSpec.Kind.mlp, [1, 8, 8]), (.unet, [1, 8, 8]), (.mlp, [2, 1, 1])] {
            let m = try FlowModel(spec: spec(kind, shape, vocab: tok.vocabularySize), tokenizer: tok, seed: 3)
            var rng = RNG(seed: 1)
            let x = Tensor.randn([3] + shape, rng: &rng)
            let t = Tensor([0, 0.5, 1], shape: [3])
            let text = try m.encode(["the number 7", "", "digit three unknownword"])
            let v = try m.velocity(x, t: t, text: text)
            XCTAssertEqual(v.shape, x.shape)
            try (v * v).sum().backward()
            if kind == .unet {
                // The zero-initialised output conv passes gradient only to itself at step 0.
                XCTAssertNotNil((m.net as! UNet).outConv.weight.grad)
            } else {
                for (name, p) in m.namedParameters() { XCTAssertNotNil(p.grad, "\(kind): no gradient for \(name)") }
            }
        }
    }

    func testCheckpointRoundTripRebuildsTheModel() throws {
        let tok = Tokenizer(captions: ["a b c"], maxTokens: 6)
        let m = try FlowModel(spec: spec(.unet, [1, 8, 8], vocab: tok.vocabularySize), tokenizer: tok, seed: 5)
        let url = URL(fileURLWithPath: NSTemporaryDirectory() + "model-\(getpid()).safetensors")
        try m.save(to: url, stage: "teacher", step: 7)
        let (m2, meta) = try FlowModel.load(from: url)
        XCTAssertEqual(meta["stage"], "teacher")
        XCTAssertEqual(m2.spec, m.spec)
        XCTAssertEqual(m2.tokenizer, m.tokenizer)
        var rng = RNG(seed: 2)
        let x = Tensor.randn([2, 1, 8, 8], rng: &rng)
        let t = Tensor([0.3, 0.9], shape: [2])
        let a = try noGrad { try m.velocity(x, t: t, text: m.encode(["a b", "c"])) }
        let b = try noGrad { try m2.velocity(x, t: t, text: m2.encode(["a b", "c"])) }
        XCTAssertEqual(a.scalars, b.scalars)
    }

    func testMismatchedCheckpointNamesTheTensor() throws {
        let tok = Tokenizer(captions: ["a b c"], maxTokens: 6)
        var s = spec(.mlp, [1, 8, 8], vocab: tok.vocabularySize)
        let m = try FlowModel(spec: s, tokenizer: tok, seed: 5)
        s.hidden = 48
        let other = try FlowModel(spec: s, tokenizer: tok, seed: 5)
        XCTAssertThrowsError(try other.loadStateDict(Dictionary(uniqueKeysWithValues: m.stateDict()), source: "teacher.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("teacher.safetensors: tensor 'net.input.weight' has shape [32, 64], model expects [48, 64]"), "\(e)")
        }
    }

    func testInvalidSpecIsRefused() {
        let tok = Tokenizer(captions: ["a"], maxTokens: 6)
        var s = spec(.unet, [1, 7, 7], vocab: tok.vocabularySize)
        s.levels = [8, 16]
        XCTAssertThrowsError(try FlowModel(spec: s, tokenizer: tok, seed: 0)) { e in
            XCTAssertTrue("\(e)".contains("image 7x7 not divisible by 2^1"), "\(e)")
        }
    }
}
