import XCTest
import Experiments
import Sampling
import Diffusion
import Flow
import Generation
import Models
import Reporting
import TripletStore
import Autograd
import TensorCore
import TestSupport
import Foundation

final class DiffusionPairsTests: XCTestCase {
    /// gen-pairs from a diffusion checkpoint: the attributes name teacher kind, schedule,
    /// prediction and sampler; the stored noise is the sampler's x_T (pair i's itemNoise) and
    /// the image what the guided sampler makes from it.
    func testGenPairsFromDiffusionTeacher() throws {
        Log.level = .warning
        let out = tempDir("diffusion-pairs")
        defer { try? FileManager.default.removeItem(atPath: out) }
        var cfg = try tinyDiffusionConfig(output: out, steps: 300)
        cfg.pairs.sampler = .ddim; cfg.pairs.steps = 4; cfg.pairs.guidance = 1.5; cfg.pairs.count = 48; cfg.pairs.batchSize = 48
        let p = try Pipeline(config: cfg)
        let teacher = try p.trainTeacher(resume: false).path
        let r = try generatePairs(try p.pairsRequest(teacher: teacher, output: out + "/pairs.h5"))
        XCTAssertEqual(r.rows, 48)
        XCTAssertEqual(r.meanNFE, 4)
        let reader = try TripletReader(path: out + "/pairs.h5")
        defer { reader.close() }
        let a = reader.writerAttributes
        XCTAssertEqual(a["teacher_kind"], "diffusion")
        XCTAssertEqual(a["diffusion_schedule"], "scaled_linear(1000, 0.00085, 0.012)")
        XCTAssertEqual(a["diffusion_prediction"], "epsilon")
        XCTAssertEqual(a["sampler"], "ddim(4, leading+1, epsilon), output clipped to [-1, 1]")
        XCTAssertEqual(a["solver"], "{\"name\":\"ddim\",\"steps\":4}")
        XCTAssertEqual(a["guidance"], "1.5")

        let rows = try reader.read(0..<48)
        let noise = itemNoise(seed: pairsNoiseSeed(configSeed: cfg.seed), first: 0, count: 48, itemShape: [2, 1, 1])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: rows.noise.ptr, count: 96)), noise.scalars)
        let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: teacher))
        let d = try XCTUnwrap(try DiffusionTeacher(metadata: meta, source: teacher))
        let images = try generateDiffusion(model, teacher: d, xT: noise, prompts: rows.texts,
                                           sampler: try DiffusionSamplerKind.ddim.make(for: d, steps: 4), guidance: 1.5).images
        XCTAssertEqual(Array(UnsafeBufferPointer(start: rows.images.ptr, count: 96)), images.scalars)
        // The sampler's raw output, clipped to the image range.
        let raw = try DiffusionSamplerKind.ddim.make(for: d, steps: 4).sample(
            d.model(try guidedVelocity(model, prompts: rows.texts, guidance: 1.5)), xT: noise).x
        XCTAssertEqual(images.scalars, raw.scalars.map { min(1, max(-1, $0)) })
        // Not the ODE solver's images: Euler on the eps output would give others.
        let euler = try generate(model, x0: noise, prompts: rows.texts, solver: Euler(steps: 4), guidance: 1.5).images
        XCTAssertNotEqual(euler.scalars, images.scalars)
    }

    /// A sampler named for a flow, or a solver named for a diffusion teacher, is an error that
    /// says which kind the checkpoint is.
    func testSamplerAndSolverMustFitTheCheckpoint() throws {
        Log.level = .warning
        let out = tempDir("diffusion-flags")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let flowCfg = try tinyToyConfig(output: out + "/flow", steps: 5)
        let flow = try Pipeline(config: flowCfg).trainTeacher(resume: false).path
        let diffusion = try Pipeline(config: try tinyDiffusionConfig(output: out + "/diffusion", steps: 5)).trainTeacher(resume: false).path

        var req = try Pipeline(config: flowCfg).pairsRequest(teacher: flow, output: out + "/p.h5")
        req.count = 8; req.samplerNamed = true
        assertThrows(["\(flow) is a rectified flow (its metadata names no diffusion teacher): --sampler is for diffusion teachers; use --solver"]) {
            _ = try generatePairs(req)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/p.h5"))

        func sample(_ ckpt: String, solverNamed: Bool, samplerNamed: Bool) throws {
            var s = SampleRequest(checkpoint: ckpt, prompts: ["top cluster"], output: out + "/s.png",
                                  solver: SolverSettings(kind: .euler, steps: 4, rtol: 0, atol: 0), sampler: .dpmSolverPP,
                                  guidance: 1, seed: 0, perPrompt: 4)
            s.solverNamed = solverNamed; s.samplerNamed = samplerNamed
            try runSample(s)
        }
        assertThrows(["\(diffusion) is a diffusion teacher (epsilon on scaled_linear(1000, 0.00085, 0.012)): it is sampled with --sampler (ddim, ddim-clean, dpmsolver++), not an ODE --solver"]) {
            try sample(diffusion, solverNamed: true, samplerNamed: false)
        }
        assertThrows(["\(flow) is a rectified flow"]) { try sample(flow, solverNamed: false, samplerNamed: true) }
        XCTAssertNoThrow(try sample(diffusion, solverNamed: false, samplerNamed: true))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/s.png"))
        assertThrows(["--trajectories plots a rectified flow's Euler paths; \(diffusion) is a diffusion teacher"]) {
            try writeTrajectories(checkpoint: diffusion, prompts: ["top cluster"], perPrompt: 2, steps: 4, guidance: 1, seed: 0,
                                  output: out + "/t.svg")
        }
    }
}
