import XCTest
import Datasets
import Formats
import TripletStore
import Experiments
import ConfigKit
import Evaluation
import Flow
import Generation
import Reporting
import RunReport
import TestSupport
import Training
import Models
import NN
import TensorCore
import Foundation
import Sampling

/// A toy2d config for pair and chain tests: a small MLP, few steps everywhere.
func chainToyConfig(output: String, extra: [String] = []) throws -> ExperimentConfig {
    try loadConfig(ExperimentConfig.self, path: repoRoot + "/experiments/toy2d.yaml", overrides: chainToySets(output: output) + extra)
}

func chainToySets(output: String) -> [String] {
    ["output_dir=\(output)", "threads=2", "model.hidden=64", "model.depth=2", "text.width=16", "text.heads=2",
     "pairs.count=4096", "pairs.solver=rk4", "pairs.steps=16", "pairs.guidance=1.5", "pairs.batch_size=256",
     "sample.steps=4"]
}

/// An untrained teacher for the config (pairs only need a deterministic network).
func randomTeacher(_ p: Pipeline, path: String, seed: UInt64 = 3) throws {
    let train = try p.loadDataset(.train)
    let tok = p.tokenizer(for: train)
    let model = try FlowModel(spec: p.modelSpec(tokenizer: tok, itemShape: train.itemShape), tokenizer: tok, seed: seed)
    try model.save(to: URL(fileURLWithPath: path), stage: "teacher", step: 0)
}

func assertSamePairs(_ a: PairsFile, _ b: PairsFile, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "row counts", file: file, line: line)
    XCTAssertEqual(a.itemShape, b.itemShape, file: file, line: line)
    XCTAssertEqual(a.texts, b.texts, "texts differ", file: file, line: line)
    XCTAssertTrue(a.noise == b.noise, "noise differs", file: file, line: line)
    XCTAssertTrue(a.images == b.images, "images differ", file: file, line: line)
}

final class ChainTests: XCTestCase {
    /// SIGKILL reflow-gen-pairs mid-run, run the same command again: exactly N pairs, equal
    /// row for row to an uninterrupted run.
    func testKillNineDuringGenPairsThenResume() throws {
        guard let exe = builtTool("reflow-gen-pairs") else {
            throw XCTSkip("reflow-gen-pairs not built next to the tests (swift build --build-tests builds it)")
        }
        let dir = tempDir("genpairs-kill")
        let p = try Pipeline(config: chainToyConfig(output: dir))
        Log.level = .warning
        let teacher = dir + "/teacher.safetensors"
        try randomTeacher(p, path: teacher)
        func launch(_ out: String, stderr: Any = FileHandle.nullDevice) throws -> Process {
            let proc = Process()
            proc.executableURL = URL(fileURLWithPath: exe)
            proc.arguments = ["--config", repoRoot + "/experiments/toy2d.yaml", "--teacher", teacher, "--output", out]
                + chainToySets(output: dir).flatMap { ["--set", $0] }
            proc.standardOutput = FileHandle.nullDevice
            proc.standardError = stderr
            try proc.run()
            return proc
        }
        let ref = try launch(dir + "/ref.h5")
        ref.waitUntilExit()
        XCTAssertEqual(ref.terminationStatus, 0)

        let pipe = Pipe()
        let victim = try launch(dir + "/killed.h5", stderr: pipe)
        // Each progress line is printed after a batch was appended: wait for a few, then kill.
        var seen = "", batches = 0
        let deadline = Date().addingTimeInterval(60)
        while batches < 4 && Date() < deadline {
            let d = pipe.fileHandleForReading.availableData
            if d.isEmpty { break }
            seen += String(decoding: d, as: UTF8.self)
            batches = seen.split(separator: "\n").filter { $0.hasPrefix("pairs ") && $0.contains("/4096") }.count
        }
        guard victim.isRunning else { throw XCTSkip("generation finished before it could be killed") }
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        let partial = try PairsFile(path: dir + "/killed.h5")
        XCTAssertGreaterThan(partial.count, 0, "nothing committed before the kill")
        XCTAssertLessThan(partial.count, 4096, "the run was not interrupted")

        let again = try launch(dir + "/killed.h5")
        again.waitUntilExit()
        XCTAssertEqual(again.terminationStatus, 0)
        let a = try PairsFile(path: dir + "/ref.h5"), b = try PairsFile(path: dir + "/killed.h5")
        XCTAssertEqual(b.count, 4096)
        assertSamePairs(a, b)
        XCTAssertEqual(a.attributes, b.attributes)
        // Running it once more finds it complete and changes nothing.
        let third = try launch(dir + "/killed.h5")
        third.waitUntilExit()
        XCTAssertEqual(third.terminationStatus, 0)
        assertSamePairs(a, try PairsFile(path: dir + "/killed.h5"))
    }

    /// Three shards (a batch size that is not a multiple of the chunk size), merged in the
    /// wrong order, equal a single run; a missing part is refused with the missing range.
    func testShardsMergeToTheSingleRun() throws {
        let dir = tempDir("shards")
        let p = try Pipeline(config: chainToyConfig(output: dir, extra: ["pairs.count=1000", "pairs.batch_size=96", "pairs.steps=4"]))
        Log.level = .warning
        let teacher = dir + "/teacher.safetensors"
        try randomTeacher(p, path: teacher)
        _ = try generatePairs(p.pairsRequest(teacher: teacher, output: dir + "/single.h5"))
        var parts: [String] = []
        for i in 0..<3 {
            var r = try p.pairsRequest(teacher: teacher, output: dir + "/part\(i).h5")
            r.shard = Shard(index: i, count: 3)
            _ = try generatePairs(r)
            parts.append(r.output)
        }
        XCTAssertEqual(try mergePairParts([parts[2], parts[0], parts[1]], into: dir + "/merged.h5"), 1000)
        let single = try PairsFile(path: dir + "/single.h5"), merged = try PairsFile(path: dir + "/merged.h5")
        assertSamePairs(single, merged)
        XCTAssertEqual(single.attributes, merged.attributes)
        XCTAssertEqual(single.texts[5], try p.loadDataset(.train).captions[5], "pair i gets train caption i")
        XCTAssertThrowsError(try mergePairParts([parts[0], parts[2]], into: dir + "/bad.h5")) { e in
            XCTAssertTrue("\(e)".contains("pairs 288..<672 are missing"), "\(e)")
        }
        XCTAssertThrowsError(try mergePairParts([dir + "/single.h5"], into: dir + "/bad.h5")) { e in
            XCTAssertTrue("\(e)".contains("is not a shard part"), "\(e)")
        }
        XCTAssertThrowsError(try Shard(parsing: "3/3")) { e in XCTAssertTrue("\(e)".contains("0 <= i < n"), "\(e)") }
    }

    func testCorruptOrForeignTripletFileIsAClearError() throws {
        let dir = tempDir("badinput")
        let p = try Pipeline(config: chainToyConfig(output: dir, extra: ["reflow.steps=2"]))
        Log.level = .warning
        let teacher = dir + "/teacher.safetensors"
        try randomTeacher(p, path: teacher)
        // Not HDF5 at all.
        let text = dir + "/notes.h5"
        try "hello".write(toFile: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try p.trainReflow(inputs: [text], initFrom: teacher, resume: false)) { e in
            XCTAssertTrue("\(e)".contains("\(text): not an HDF5 file"), "\(e)")
        }
        // A triplet file cut in half.
        let good = dir + "/good.h5"
        var r = try p.pairsRequest(teacher: teacher, output: good)
        r.count = 600; r.solver.steps = 2
        try generatePairs(r)
        let data = try Data(contentsOf: URL(fileURLWithPath: good))
        let cut = dir + "/cut.h5"
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try p.trainReflow(inputs: [cut], initFrom: teacher, resume: false)) { e in
            XCTAssertTrue("\(e)".contains(cut), "\(e)")
            XCTAssertTrue("\(e)".contains("corrupt") || "\(e)".contains("truncated"), "\(e)")
        }
        // A missing file.
        XCTAssertThrowsError(try p.trainReflow(inputs: [dir + "/nope.h5"], initFrom: teacher, resume: false)) { e in
            XCTAssertTrue("\(e)".contains("triplet file \(dir)/nope.h5 not found"), "\(e)")
        }
        // Someone else's HDF5 file.
        let foreign = dir + "/foreign.h5"
        guard runPython("import h5py, numpy as np\nwith h5py.File('\(foreign)', 'w') as f: f['x'] = np.zeros(3)") else {
            throw XCTSkip("h5py not available: foreign-HDF5 case not checked")
        }
        XCTAssertThrowsError(try p.trainReflow(inputs: [foreign], initFrom: teacher, resume: false)) { e in
            XCTAssertTrue("\(e)".contains("\(foreign): not a reflow triplet file: root attribute 'format' is missing"), "\(e)")
        }
    }

    func testTeacherNotMatchingTheConfigIsAClearError() throws {
        let dir = tempDir("mismatch")
        let p = try Pipeline(config: chainToyConfig(output: dir, extra: ["reflow.steps=2"]))
        Log.level = .warning
        // A network for 1x8x8 images, used with the toy2d (2x1x1) config.
        let train = try p.loadDataset(.train)
        let tok = p.tokenizer(for: train)
        let odd = try FlowModel(spec: p.modelSpec(tokenizer: tok, itemShape: [1, 8, 8]), tokenizer: tok, seed: 1)
        let oddPath = dir + "/digits-teacher.safetensors"
        try odd.save(to: URL(fileURLWithPath: oddPath), stage: "teacher", step: 0)
        XCTAssertThrowsError(try generatePairs(p.pairsRequest(teacher: oddPath, output: dir + "/x.h5"))) { e in
            XCTAssertTrue("\(e)".contains("teacher \(oddPath) makes items of shape [1, 8, 8], but the config's dataset has items of shape [2, 1, 1]"), "\(e)")
        }
        // Right item shape, other width: reflow cannot start from it.
        let teacher = dir + "/teacher.safetensors"
        try randomTeacher(p, path: teacher)
        var r = try p.pairsRequest(teacher: teacher, output: dir + "/pairs.h5")
        r.count = 256; r.solver.steps = 2
        try generatePairs(r)
        let wide = try Pipeline(config: chainToyConfig(output: dir, extra: ["model.hidden=48", "reflow.steps=2"]))
        Log.level = .warning
        XCTAssertThrowsError(try wide.trainReflow(inputs: [dir + "/pairs.h5"], initFrom: teacher, resume: false)) { e in
            XCTAssertTrue("\(e)".contains("teacher checkpoint \(teacher) does not match the config's model: hidden 64 vs 48"), "\(e)")
        }
        // Appending to a file made by another teacher is refused, naming the attribute.
        try randomTeacher(p, path: dir + "/other.safetensors", seed: 9)
        var other = try p.pairsRequest(teacher: dir + "/other.safetensors", output: dir + "/pairs.h5")
        other.count = 512; other.solver.steps = 2
        XCTAssertThrowsError(try generatePairs(other)) { e in
            XCTAssertTrue("\(e)".contains("teacher_sha256") && "\(e)".contains("pass --overwrite"), "\(e)")
        }
    }

    func testPromptFileWithEmptyLineIsAClearError() throws {
        let dir = tempDir("pairs-prompts")
        let p = try Pipeline(config: chainToyConfig(output: dir))
        Log.level = .warning
        let teacher = dir + "/teacher.safetensors"
        try randomTeacher(p, path: teacher)
        let file = dir + "/prompts.txt"
        try "left cluster\n\ntop cluster\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try p.pairsRequest(teacher: teacher, output: dir + "/x.h5", promptFile: file)) { e in
            XCTAssertEqual("\(e)", "prompt file \(file): line 2 is empty (write <empty> for the unconditional prompt)")
        }
        try "left cluster\n<empty>\n".write(toFile: file, atomically: true, encoding: .utf8)
        var r = try p.pairsRequest(teacher: teacher, output: dir + "/x.h5", promptFile: file)
        r.count = 5; r.solver.steps = 1
        try generatePairs(r)
        XCTAssertEqual(try PairsFile(path: dir + "/x.h5").texts, ["left cluster", "", "left cluster", "", "left cluster"])
    }

    /// Every row exactly once per epoch, in block mode and in memory; the same step gives the
    /// same batch.
    func testTripletSourceCoversEveryRowPerEpoch() throws {
        let dir = tempDir("source")
        let p = try Pipeline(config: chainToyConfig(output: dir))
        Log.level = .warning
        let teacher = dir + "/teacher.safetensors"
        try randomTeacher(p, path: teacher)
        var r = try p.pairsRequest(teacher: teacher, output: dir + "/a.h5")
        r.count = 300; r.solver.steps = 1; r.batchSize = 100
        try generatePairs(r)
        r.output = dir + "/b.h5"; r.count = 150; r.seed = 77
        try generatePairs(r)
        let a = try PairsFile(path: dir + "/a.h5"), b = try PairsFile(path: dir + "/b.h5")
        let all = (a.noise + b.noise)
        for blockMode in [true, false] {
            let src = try TripletSource(paths: [dir + "/a.h5", dir + "/b.h5"], seed: 5, blockRows: 64,
                                        memoryLimit: blockMode ? 0 : 1 << 30)
            XCTAssertEqual(src.inMemory, !blockMode)
            XCTAssertEqual(src.count, 450)
            var seen: [Float] = []
            for step in 0..<9 {  // 9 * 50 = 450 = one epoch
                let batch = try src.batch(step: step, size: 50)
                seen += Array(UnsafeBufferPointer(start: batch.x0.storage.ptr, count: batch.x0.count)).enumerated()
                    .filter { $0.offset % 2 == 0 }.map { $0.element }
            }
            let firsts = stride(from: 0, to: all.count, by: 2).map { all[$0] }
            XCTAssertEqual(seen.sorted(), firsts.sorted(), "block mode \(blockMode): not every row exactly once")
            XCTAssertNotEqual(seen, firsts, "rows not shuffled")
            let again = try src.batch(step: 3, size: 50), once = try TripletSource(paths: [dir + "/a.h5", dir + "/b.h5"], seed: 5,
                                                                                     blockRows: 64, memoryLimit: blockMode ? 0 : 1 << 30).batch(step: 3, size: 50)
            XCTAssertEqual(again.captions, once.captions)
            XCTAssertEqual(again.x1.scalars, once.x1.scalars)
        }
    }

    /// The whole chain on toy2d: every stage runs, the 2-RF is straighter than the teacher, the
    /// table has its rows, and a second run skips every stage.
    func testWholeChainOnToy2D() throws {
        let dir = tempDir("chain")
        let cfg = try chainToyConfig(output: dir, extra: [
            "teacher.steps=500", "teacher.sample_every=0", "teacher.checkpoint_every=250",
            "pairs.count=1024", "pairs.steps=8", "pairs.guidance=1",
            "reflow.steps=400", "reflow.batch_size=256", "reflow.lr=1e-3", "reflow.sample_every=0", "reflow.ema_decay=0.99",
            "distill.steps=150", "distill.batch_size=256", "distill.sample_every=0", "distill.ema_decay=0.99",
            "eval.steps=[1,2,8]", "eval.samples=256", "eval.seeds=[0,1]",
        ])
        let p = try Pipeline(config: cfg)
        Log.level = .warning
        var o = ChainOptions()
        o.evaluator = dir + "/toy2d-evaluator.safetensors"
        let started = Date()
        let r = try p.runChain(o)
        let secs = Date().timeIntervalSince(started)
        XCTAssertEqual(r.stages.map(\.name), ["evaluator", "teacher", "pairs-teacher", "reflow", "pairs-reflow", "distill",
                                             "direct-distill", "eval"])
        XCTAssertTrue(r.stages.allSatisfy { $0.status == "done" }, "\(r.stages.map(\.status))")
        let s = Dictionary(uniqueKeysWithValues: r.table.straightness.map { ($0.model, $0.value.reduce(0, +) / Double($0.value.count)) })
        XCTAssertLessThan(s["2-RF"]!, s["teacher"]!, "the 2-RF should be straighter than the teacher: \(s)")
        XCTAssertEqual(r.table.rows.map(\.model), ["teacher", "teacher", "teacher", "2-RF", "2-RF", "2-RF", "2-RF + distill",
                                                   "teacher + direct distill"])
        XCTAssertTrue(r.table.rows.allSatisfy { $0.fdFeatures.count == 2 }, "two seeds per row")
        XCTAssertEqual(r.table.rows.filter { !$0.distillError.isEmpty }.count, 2)
        let report = try p.writeReport(r)
        let md = try String(contentsOfFile: report.markdown, encoding: .utf8)
        XCTAssertTrue(md.contains("| 2-RF + distill | 1 | 1 |"), md)
        // The floor: real training images scored the same way, over the same seeds.
        XCTAssertEqual(r.table.floor?.fdFeatures.count, 2)
        XCTAssertEqual(r.table.floor?.precision.count, 2)
        XCTAssertTrue(md.contains("| data (train split) | – | – | – |"), md)
        for g in r.grids { XCTAssertTrue(FileManager.default.fileExists(atPath: g), g) }
        try checkReport(report, run: p.run.path)
        // reflow-eval on single checkpoints scores exactly as the chain's table does: same noise,
        // prompts and pair-maker, so the same FD, distillation error and straightness.
        var evalConfig = cfg
        evalConfig.eval.steps = [1]; evalConfig.eval.guidance = [1]
        evalConfig.eval.straightnessSteps = 8  // the chain uses its largest eval step count
        let single = try Pipeline(config: evalConfig).evaluate(checkpoints: [("2-RF", p.run.file("reflow.safetensors")),
                                                                              ("2-RF + distill", p.run.file("distill.safetensors"))],
                                                                evaluator: o.evaluator)
        for model in ["2-RF", "2-RF + distill"] {
            let a = single.rows.first { $0.model == model }!, b = r.table.rows.first { $0.model == model && $0.steps == 1 }!
            XCTAssertEqual(a.fdFeatures, b.fdFeatures, model)
            XCTAssertEqual(a.distillError, b.distillError, model)
        }
        XCTAssertEqual(single.rows.first { $0.model == "2-RF + distill" }!.distillError.count, 2)
        XCTAssertEqual(single.straightness.map(\.model), ["2-RF"], "a student gets no straightness")
        XCTAssertEqual(single.straightness.first?.value, r.table.straightness.first { $0.model == "2-RF" }!.value)
        // A guidance curve: one row per weight, the w = 1 row the same as before.
        evalConfig.eval.guidance = [1, 2]
        let curve = try Pipeline(config: evalConfig).evaluate(checkpoints: [("2-RF", p.run.file("reflow.safetensors"))],
                                                              evaluator: o.evaluator)
        XCTAssertEqual(curve.rows.map(\.guidance), [1, 2])
        XCTAssertEqual(curve.rows[0].fdFeatures, single.rows.first { $0.model == "2-RF" }!.fdFeatures)
        XCTAssertNotEqual(curve.rows[1].fdFeatures, curve.rows[0].fdFeatures)
        // About 15 s on 2 quiet cores; the bound only catches a pathological slowdown (the
        // machine may be shared).
        XCTAssertLessThan(secs, 120, "the toy chain should take well under a minute")

        let again = try p.runChain(o)
        XCTAssertTrue(again.stages.allSatisfy { $0.status == "skipped" }, "\(again.stages.map { "\($0.name): \($0.status)" })")
        // A copied run folder (another name, so every path differs) is up to date too: pair files
        // are known by their teacher's SHA-256, not its path.
        let copied = p.run.path + "-copy"
        try FileManager.default.copyItem(atPath: p.run.path, toPath: copied)
        var copyConfig = p.config
        copyConfig.name = URL(fileURLWithPath: copied).lastPathComponent
        let moved = try Pipeline(config: copyConfig).runChain(o)
        XCTAssertTrue(moved.stages.filter { $0.name != "eval" }.allSatisfy { $0.status == "skipped" },
                      "\(moved.stages.map { "\($0.name): \($0.status) \($0.note)" })")
        // A changed distill section redoes the students and the table, nothing before them.
        let p2 = try Pipeline(config: chainToyConfig(output: dir, extra: [
            "teacher.steps=500", "teacher.sample_every=0", "teacher.checkpoint_every=250",
            "pairs.count=1024", "pairs.steps=8", "pairs.guidance=1",
            "reflow.steps=400", "reflow.batch_size=256", "reflow.lr=1e-3", "reflow.sample_every=0", "reflow.ema_decay=0.99",
            "distill.steps=100", "distill.batch_size=256", "distill.sample_every=0", "distill.ema_decay=0.99",
            "eval.steps=[1,2,8]", "eval.samples=256", "eval.seeds=[0,1]",
        ]))
        Log.level = .warning
        let third = try p2.runChain(o)
        XCTAssertEqual(third.stages.map(\.status), ["skipped", "skipped", "skipped", "skipped", "skipped", "done", "done", "done"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: p2.run.file("distill.safetensors.stale")), "old student kept aside")
        // A guidance sweep adds one path per weight (pairs -> 2-RF -> pairs -> student) and
        // leaves every stage before it alone; its student is a second "2-RF + distill" row.
        var sweepConfig = p2.config
        sweepConfig.pairs.guidanceSweep = [1, 2]  // 1 is pairs.guidance already: only w = 2 is new
        let swept = try Pipeline(config: sweepConfig).runChain(o)
        XCTAssertEqual(swept.stages.map(\.name), ["evaluator", "teacher", "pairs-teacher", "reflow", "pairs-reflow", "distill",
                                                  "direct-distill", "pairs-teacher-w2", "reflow-w2", "pairs-reflow-w2",
                                                  "distill-w2", "eval"])
        XCTAssertEqual(swept.stages.map(\.status), ["skipped", "skipped", "skipped", "skipped", "skipped", "skipped", "skipped",
                                                    "done", "done", "done", "done", "done"])
        let students = swept.table.rows.filter { $0.model == "2-RF + distill" }
        XCTAssertEqual(students.map(\.pairsGuidance), [1, 2])
        XCTAssertTrue(students.allSatisfy { $0.distillError.count == 2 })
        XCTAssertTrue(swept.table.markdown().contains("| 2-RF + distill (pairs w=2) | 1 | 1 |"))
        let plot = try String(contentsOfFile: p2.run.file("curves_conv3.svg"), encoding: .utf8)
        XCTAssertTrue(plot.contains("2-RF + distill, 1 step (pairs w)"), "the students' curve is plotted")
    }
}

/// Runs a Python snippet; true when it exits 0.
func runPython(_ code: String) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", code]
    p.standardOutput = FileHandle.nullDevice
    do { try p.run() } catch { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}
