import XCTest
import TestSupport
import Autograd
import Control
import Experiments
import Finetuning
import Formats
import Models
import Reporting
import NN
import TensorCore
import Foundation

final class ControlNetStageTests: XCTestCase {
    func config(output: String) -> ExperimentConfig {
        var c = ExperimentConfig()
        c.name = "cn"; c.outputDir = output; c.threads = 1
        c.text.width = 16; c.text.layers = 1; c.text.heads = 2
        c.model.kind = .unet; c.model.channels = [8, 16]; c.model.groups = 4; c.model.attentionLevels = [1]; c.model.timeEmbedding = 16
        c.teacher.steps = 3; c.teacher.batchSize = 8; c.teacher.sampleEvery = 0; c.teacher.warmup = 1
        c.controlnet.steps = 4; c.controlnet.batchSize = 8; c.controlnet.checkpointEvery = 2; c.controlnet.sampleEvery = 0
        c.controlnet.warmup = 1; c.controlnet.lr = 1e-2
        c.sample.steps = 2; c.sample.prompts = ["the number 1"]
        return c
    }

    /// Trains a ControlNet on a tiny digits U-Net, once straight through and once killed after
    /// step 2 and resumed: the same weights, only the ControlNet's tensors in the file, the base
    /// untouched, and the operator and base hash in the metadata.
    func testTrainsOnlyTheControlNetAndResumesExactly() throws {
        Log.level = .warning
        let dir = try makeTempDir("controlnet-stage")
        let straight = try Pipeline(config: config(output: dir.path + "/a"))
        let teacher = try straight.trainTeacher(resume: false)
        let shaBefore = try SHA256.hex(file: teacher.path)
        let out = try straight.trainControlNet(base: teacher.path, resume: false)
        XCTAssertEqual(try SHA256.hex(file: teacher.path), shaBefore)

        let resumed = try Pipeline(config: config(output: dir.path + "/b"))
        _ = try resumed.trainControlNet(base: teacher.path, resume: false, stopAfter: 2)
        let out2 = try resumed.trainControlNet(base: teacher.path, resume: true)

        let a = try Safetensors.read(out), b = try Safetensors.read(out2)
        XCTAssertEqual(a.tensors.keys.sorted(), b.tensors.keys.sorted())
        for (name, t) in a.tensors { XCTAssertEqual(t.scalars, b.tensors[name]?.scalars, name) }
        let (base, _) = try FlowModel.load(from: teacher)
        let fresh = try ControlNet(spec: base.spec, hintChannels: 1, seed: 0)
        XCTAssertEqual(Set(a.tensors.keys), Set(fresh.stateDict().map(\.0)))
        XCTAssertEqual(a.metadata[ControlNetKey.baseSHA256], shaBefore)
        XCTAssertEqual(a.metadata[ControlNetKey.controlOperator], straight.config.controlnet.controlOperator.json())
        // Training moved the zero convs off zero.
        XCTAssertTrue(a.tensors["mid_zero.weight"]!.scalars.contains { $0 != 0 })
        XCTAssertTrue(FileManager.default.fileExists(atPath: straight.run.samplesPath + "/controlnet.png"))
        XCTAssertNoThrow(try loadControlNet(out, base: base, baseURL: teacher))
    }

    /// A diffusion teacher's ControlNet trains with the teacher's eps loss and draws its grid
    /// with the teacher's sampler.
    func testADiffusionTeacherGetsAControlNet() throws {
        Log.level = .warning
        let dir = try makeTempDir("controlnet-stage")
        var c = config(output: dir.path)
        c.teacher.kind = .diffusion; c.controlnet.steps = 2
        let p = try Pipeline(config: c)
        let teacher = try p.trainTeacher(resume: false)
        let out = try p.trainControlNet(base: teacher.path, resume: false)
        let meta = try Safetensors.readMetadata(out)
        XCTAssertEqual(meta[ControlNetKey.role], ControlNetKey.roleValue)
        XCTAssertTrue(try String(contentsOfFile: p.run.metricsPath, encoding: .utf8).contains("\"controlnet\""))
        XCTAssertTrue(FileManager.default.fileExists(atPath: p.run.samplesPath + "/controlnet.png"))
    }

    func testAnMLPBaseIsRefused() throws {
        Log.level = .warning
        let dir = try makeTempDir("controlnet-stage")
        var c = config(output: dir.path)
        c.model.kind = .mlp; c.model.hidden = 16; c.model.depth = 1
        let p = try Pipeline(config: c)
        let teacher = try p.trainTeacher(resume: false)
        assertThrows(["controlnet: base \(teacher.path) is an mlp model", "model.kind: unet"]) {
            _ = try p.trainControlNet(base: teacher.path, resume: false)
        }
    }
}
