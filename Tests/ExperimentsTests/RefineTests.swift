import XCTest
import Autograd
import Diffusion
import Flow
import Generation
import Models
import TensorCore
import TestSupport
import Foundation

/// The refiner pass (`--refine t:K`): re-noise to flow time t, then K Euler steps of another flow.
final class RefineTests: XCTestCase {
    private var dir = ""
    override func setUpWithError() throws { dir = tempDir("refine") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private func model(seed: UInt64, extra: [String: String] = [:]) throws -> (FlowModel, String) {
        let tok = Tokenizer(captions: ["a small red square", "a large blue circle"], maxTokens: 6)
        var spec = ModelSpec(kind: .mlp, channels: 1, height: 2, width: 2, vocabularySize: tok.vocabularySize)
        spec.hidden = 16; spec.depth = 2; spec.timeEmbedding = 16; spec.textWidth = 16; spec.textLayers = 1; spec.textHeads = 2
        spec.maxTokens = tok.maxTokens
        let m = try FlowModel(spec: spec, tokenizer: tok, seed: seed)
        let path = dir + "/m\(seed).safetensors"
        try m.save(to: URL(fileURLWithPath: path), stage: "teacher", step: 1, extra: extra)
        return (try FlowModel.load(from: URL(fileURLWithPath: path)).0, path)
    }

    func testSettingsParseAndRefuseBadValues() throws {
        let s = try RefineSettings(parsing: "0.7:4")
        XCTAssertEqual(s.t, 0.7); XCTAssertEqual(s.steps, 4)
        XCTAssertEqual(s.description, "refine t=0.7 K=4")
        for bad in ["0.7", "0.7:", ":4", "a:4", "0.7:2.5", "0.7:4:1"] {
            XCTAssertThrowsError(try RefineSettings(parsing: bad)) { XCTAssertTrue("\($0)".contains("expected t:K"), "\(bad): \($0)") }
        }
        XCTAssertThrowsError(try RefineSettings(parsing: "1:4")) { XCTAssertTrue("\($0)".contains("t must be in (0, 1)"), "\($0)") }
        XCTAssertThrowsError(try RefineSettings(parsing: "0:4")) { XCTAssertTrue("\($0)".contains("t must be in (0, 1)"), "\($0)") }
        XCTAssertThrowsError(try RefineSettings(parsing: "0.5:0")) { XCTAssertTrue("\($0)".contains("at least 1"), "\($0)") }
    }

    /// The refined images are K Euler steps of the refiner's guided velocity from
    /// t x + (1 - t) z, z the noise of (seed + salt, i), over [t, 1].
    func testRefineIsEulerFromTheRenoisedImage() throws {
        let (m, path) = try model(seed: 1)
        let prompts = ["a small red square", "a large blue circle", "a small red square"]
        let images = randn([3, 1, 2, 2], seed: 9)
        let r = try Refiner(path: path, settings: RefineSettings(t: 0.6, steps: 3), guidance: 1.5)
        let (out, nfe) = try r.refine(images, prompts: prompts, seed: 5, batchSize: 2)
        XCTAssertEqual(nfe, 3)
        let z = itemNoise(seed: 5 &+ Refiner.noiseSalt, first: 0, count: 3, itemShape: [1, 2, 2])
        m.eval()
        let expected = try noGrad { () -> Tensor in
            var x = try images * 0.6 + z * 0.4
            let v = try guidedVelocity(m, prompts: prompts, guidance: 1.5)
            for k in 0..<3 {
                let t = 0.6 + 0.4 * Float(k) / 3
                x = try x + (try v(x, Tensor.full([3], t))) * Float(0.4 / 3)
            }
            return x
        }
        assertClose(out, expected.scalars, atol: 1e-5)
        // The re-noising noise is not the sampling noise of the same seed.
        XCTAssertNotEqual(z.scalars, itemNoise(seed: 5, first: 0, count: 3, itemShape: [1, 2, 2]).scalars)
    }

    func testDiffusionRefinerAndWrongShapeAreRefused() throws {
        let teacher = DiffusionTeacher(schedule: .stableDiffusion, prediction: .epsilon)
        let (_, dpath) = try model(seed: 2, extra: teacher.metadata)
        XCTAssertThrowsError(try Refiner(path: dpath, settings: RefineSettings(t: 0.5, steps: 2), guidance: 1)) {
            XCTAssertTrue("\($0)".contains("is a diffusion teacher"), "\($0)")
        }
        let (_, path) = try model(seed: 3)
        let r = try Refiner(path: path, settings: RefineSettings(t: 0.5, steps: 2), guidance: 1)
        XCTAssertThrowsError(try r.refine(randn([1, 1, 3, 3], seed: 1), prompts: ["a small red square"], seed: 0)) {
            XCTAssertTrue("\($0)".contains("[1, 2, 2]") && "\($0)".contains("[1, 3, 3]"), "\($0)")
        }
    }
}
