import XCTest
import Foundation
import Experiments
import Generation
import Sampling
import Flow
import Formats
import Models
import Reporting
import Serving
import TestSupport

/// `reflow serve` over real HTTP on a free port of 127.0.0.1: answers, images (equal to
/// reflow-sample's), every refusal with its status and field.
final class ServeTests: XCTestCase {
    /// Two tiny untrained 8x8 models saved as a run's student and teacher (sampling needs only a
    /// deterministic network), and a server on them.
    struct Fixture {
        let dir: URL
        let server: DemoServer
        let client: DemoClient
    }

    static let limits = ServeLimits(maxPending: 2, maxBodyBytes: 4096, timeLimit: 30, maxCount: 8, maxSteps: 50)

    func makeFixture(limits: ServeLimits = ServeTests.limits) async throws -> Fixture {
        Log.level = .warning
        let dir = try makeTempDir("serve")
        let tok = Tokenizer(captions: ["the number 7", "digit 3", "a handwritten digit seven"], maxTokens: 8)
        var spec = ModelSpec(kind: .mlp, channels: 1, height: 8, width: 8, vocabularySize: tok.vocabularySize)
        spec.hidden = 32; spec.depth = 2; spec.timeEmbedding = 16
        spec.maxTokens = 8; spec.textWidth = 16; spec.textLayers = 1; spec.textHeads = 2
        try FlowModel(spec: spec, tokenizer: tok, seed: 1).save(to: dir.appendingPathComponent("distill.safetensors"), stage: "distill",
                                                                step: 3, extra: [StudentKey.studentSteps: "1"])
        try FlowModel(spec: spec, tokenizer: tok, seed: 2).save(to: dir.appendingPathComponent("teacher.safetensors"), stage: "teacher", step: 3)
        var cfg = ExperimentConfig()
        cfg.sample.steps = 3; cfg.sample.guidance = 1.5; cfg.sample.solver = .heun
        let models = try loadServedModels(try servedCheckpointPaths([dir.path]), config: cfg)
        let server = DemoServer(models: models, limits: limits, pairs: cfg.pairs)
        let url = try await server.start(host: "127.0.0.1", port: 0)
        addTeardownBlock { await server.stop() }
        guard let client = DemoClient(url: url) else { throw XCTSkip("no port in \(url)") }
        return Fixture(dir: dir, server: server, client: client)
    }

    func decodePNG(_ dataURL: String, in dir: URL) throws -> (PNGImage, Data) {
        let prefix = "data:image/png;base64,"
        XCTAssertTrue(dataURL.hasPrefix(prefix))
        guard let data = Data(base64Encoded: String(dataURL.dropFirst(prefix.count))) else { throw DataError("not base64") }
        let path = dir.appendingPathComponent("served-\(UInt32.random(in: 0...UInt32.max)).png").path
        try data.write(to: URL(fileURLWithPath: path))
        return (try PNGImage.read(path), data)
    }

    func testGeneratedImageIsReflowSamplesImage() async throws {
        let f = try await makeFixture()
        let (status, j) = try await f.client.generate(["prompt": "the number 7", "model": "teacher", "steps": 4, "guidance": 2,
                                                       "seed": 11, "count": 3])
        XCTAssertEqual(status, 200, "\(j)")
        let settings = j["settings"] as? [String: Any] ?? [:]
        XCTAssertEqual(settings["model"] as? String, "teacher")
        XCTAssertEqual(settings["solver"] as? String, "heun", "the teacher's default solver is the config's sample.solver")
        XCTAssertEqual(settings["steps"] as? Double, 4)
        XCTAssertEqual(settings["seed"] as? Double, 11)
        XCTAssertEqual(j["nfe"] as? Double, 8, "heun: 2 evaluations a step")
        XCTAssertGreaterThan(j["ms"] as? Double ?? -1, 0)
        let (png, bytes) = try decodePNG(j["image"] as? String ?? "", in: f.dir)
        // 3 tiles of 8x8 upscaled 4x, 1 px padding around each: 3*32 + 4 by 32 + 2.
        XCTAssertEqual([png.width, png.height, png.channels], [100, 34, 1])
        XCTAssertEqual(j["width"] as? Double, 100)
        XCTAssertEqual(j["height"] as? Double, 34)

        // The reflow-sample binary, same checkpoint and settings: the very same PNG bytes.
        guard let tool = builtTool("reflow-sample") else { throw XCTSkip("reflow-sample not built next to the tests") }
        let out = f.dir.appendingPathComponent("sample.png").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = [f.dir.appendingPathComponent("teacher.safetensors").path, "--prompt", "the number 7", "--per-prompt", "3",
                       "--steps", "4", "--solver", "heun", "--guidance", "2", "--seed", "11", "--output", out, "--quiet"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), bytes, "served PNG differs from reflow-sample's")
    }

    func testDefaultsAndOtherSeedsGiveOtherImages() async throws {
        let f = try await makeFixture()
        let (s1, a) = try await f.client.generate(["prompt": "digit 3"])
        XCTAssertEqual(s1, 200, "\(a)")
        let settings = a["settings"] as? [String: Any] ?? [:]
        // The first model is the run folder's student: one Euler step, no guidance, seed 0, one image.
        XCTAssertEqual(settings["model"] as? String, "student")
        XCTAssertEqual(settings["solver"] as? String, "euler")
        XCTAssertEqual(settings["steps"] as? Double, 1)
        XCTAssertEqual(settings["guidance"] as? Double, 1)
        XCTAssertEqual(settings["count"] as? Double, 1)
        XCTAssertEqual(a["nfe"] as? Double, 1)
        let (_, b) = try await f.client.generate(["prompt": "digit 3", "seed": 0])
        let (_, c) = try await f.client.generate(["prompt": "digit 3", "seed": 1])
        XCTAssertEqual(a["image"] as? String, b["image"] as? String, "same seed, same image")
        XCTAssertNotEqual(a["image"] as? String, c["image"] as? String, "another seed, another image")
    }

    func testBadFieldsAreNamed() async throws {
        let f = try await makeFixture()
        let cases: [([String: Any], String, String)] = [
            (["model": "student"], "prompt", "missing"),
            (["prompt": 7], "prompt", "must be a string"),
            (["prompt": "the number zebra"], "prompt", "'zebra' not in the model's vocabulary"),
            (["prompt": "digit 3", "model": "unet"], "model", "unknown model 'unet'; this server has student, teacher"),
            (["prompt": "digit 3", "steps": 0], "steps", "must be an integer from 1 to 50"),
            (["prompt": "digit 3", "steps": 2.5], "steps", "must be an integer from 1 to 50"),
            (["prompt": "digit 3", "count": 9], "count", "must be an integer from 1 to 8"),
            (["prompt": "digit 3", "seed": -1], "seed", "must be an integer from 0 to"),
            (["prompt": "digit 3", "guidance": "high"], "guidance", "must be a number from 0 to 20"),
            (["prompt": "digit 3", "solver": "rk45"], "solver", "must be one of euler, heun, rk4, dopri5"),
            (["prompt": "digit 3", "stpes": 2], "stpes", "unknown field; the fields are prompt, model, solver, steps"),
        ]
        for (body, field, text) in cases {
            let (status, j) = try await f.client.generate(body)
            XCTAssertEqual(status, 400, "\(body)")
            XCTAssertEqual(j["field"] as? String, field, "\(body)")
            XCTAssertTrue((j["error"] as? String ?? "").contains("\(field): \(text)"), "\(body): \(j)")
        }
        let (status, data) = try await f.client.send("POST", "/api/generate", body: Data("prompt=7".utf8))
        XCTAssertEqual(status, 400)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("the body must be a JSON object"))
    }

    func testTooLargeBodyIs413AndRoutesAreChecked() async throws {
        let f = try await makeFixture()
        let big = try JSONSerialization.data(withJSONObject: ["prompt": String(repeating: "digit ", count: 2000)])
        let (status, data) = try await f.client.send("POST", "/api/generate", body: big)
        XCTAssertEqual(status, 413)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("request body over 4096 bytes"))
        let (s404, d404) = try await f.client.send("GET", "/nope")
        XCTAssertEqual(s404, 404)
        XCTAssertTrue(String(decoding: d404, as: UTF8.self).contains("no page /nope"))
        let (s405, _) = try await f.client.send("GET", "/api/generate")
        XCTAssertEqual(s405, 405)
        let (sPage, page) = try await f.client.send("GET", "/")
        XCTAssertEqual(sPage, 200)
        XCTAssertTrue(String(decoding: page, as: UTF8.self).contains("fetch(\"/api/generate\""))
        let (sModels, m) = try await f.client.send("GET", "/api/models")
        XCTAssertEqual(sModels, 200)
        let models = (try JSONSerialization.jsonObject(with: m) as? [String: Any])?["models"] as? [[String: Any]] ?? []
        XCTAssertEqual(models.map { $0["id"] as? String }, ["student", "teacher"])
        XCTAssertEqual(models.first?["image_shape"] as? [Double], [1, 8, 8])
    }

    func testTimeLimitIs504() async throws {
        // A limit that has passed before the solve starts: refused between function evaluations.
        let f = try await makeFixture(limits: ServeLimits(maxPending: 2, maxBodyBytes: 4096, timeLimit: 1e-6, maxCount: 8, maxSteps: 50))
        let (status, j) = try await f.client.generate(["prompt": "digit 3"])
        XCTAssertEqual(status, 504)
        XCTAssertTrue((j["error"] as? String ?? "").contains("time limit: not answered within"), "\(j)")
    }

    func testTimeLimitStopsASolveBetweenEvaluations() async throws {
        let f = try await makeFixture()
        struct Stop: Error {}
        var calls = 0
        let teacher = f.server.models[1].model
        XCTAssertThrowsError(try sampleGrid(teacher, prompts: ["digit 3"], perPrompt: 1, seed: 0,
                                            solver: SolverSettings(kind: .euler, steps: 10, rtol: 1e-3, atol: 1e-4), guidance: 1,
                                            columns: nil, interrupt: { calls += 1; if calls == 4 { throw Stop() } })) { e in
            XCTAssertTrue(e is Stop, "\(e)")
        }
        XCTAssertEqual(calls, 4, "the solve stopped at the evaluation where the limit was found passed")
    }

    func testFullQueueIs503() async throws {
        let queue = GenerationQueue(maxPending: 1)
        let release = DispatchSemaphore(value: 0), started = DispatchSemaphore(value: 0)
        let first = Task { try await queue.run(deadline: .distantFuture, limit: 30) { started.signal(); release.wait(); return 1 } }
        started.wait()
        do {
            _ = try await queue.run(deadline: .distantFuture, limit: 30) { 2 }
            XCTFail("a second request was let in past max_pending = 1")
        } catch let e as ServeError {
            XCTAssertEqual(e.status.code, 503)
            XCTAssertTrue(e.description.contains("busy: 1 requests are already waiting or running"), e.description)
        }
        release.signal()
        let one = try await first.value
        XCTAssertEqual(one, 1)
        let two = try await queue.run(deadline: .distantFuture, limit: 30) { 2 }
        XCTAssertEqual(two, 2, "the slot is free again once the first is done")
    }
}
