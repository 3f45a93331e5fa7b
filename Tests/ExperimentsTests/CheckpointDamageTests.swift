import Foundation
import XCTest
import Experiments
import Formats
import Models
import NN
import Reporting
import TensorCore
import Autograd
import TestSupport

/// Damaged and crafted checkpoints (CheckpointDamage.swift) through the real loaders --
/// FlowModel.load, loadClassifier and a training resume (Pipeline.trainTeacher) -- each in a
/// child process (this test binary re-run on `testDamageChild`) watched with a timeout:
/// 0 crashes, 0 hangs, 0 silently accepted corruptions. Every file is refused with an error
/// naming it, or (random damage that hit bytes nothing reads) loads bit-identically.
/// REFLOW_DAMAGE_CHECKPOINTS=<n> sets the count (default 48: a few seconds).
final class CheckpointDamageTests: XCTestCase {
    static let perFileTimeout: TimeInterval = 20

    func testDamagedCheckpointsAreRefusedOrIdentical() throws {
        let count = ProcessInfo.processInfo.environment["REFLOW_DAMAGE_CHECKPOINTS"].flatMap { Int($0) } ?? 48
        let seed = ProcessInfo.processInfo.environment["REFLOW_DAMAGE_SEED"].flatMap { UInt64($0) } ?? 10
        let dir = tempDir("ckpt-damage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pristine = try makePristine(dir)

        // Damaged copies and a manifest: index, target, damage kind, path, description.
        var maker = DamageMaker(rng: RNG(seed: seed))
        var manifest: [(target: DamageTarget, kind: Damage, path: String, what: String)] = []
        let targets = DamageTarget.allCases, kinds = Damage.allCases
        for i in 0..<count {
            let target = targets[i % targets.count], kind = kinds[(i / targets.count) % kinds.count]
            let original = try Data(contentsOf: URL(fileURLWithPath: pristine[target]!))
            let (bytes, what) = try maker.damage(original, target: target, kind: kind)
            let path: String
            if target == .state {
                // A whole run folder per file: the resume reads it and writes beside it.
                let run = dir + "/state-\(i)"
                try FileManager.default.copyItem(atPath: dir + "/base", toPath: run)
                path = run + "/toy2d/checkpoints/teacher.last.state.safetensors"
            } else {
                path = dir + "/\(target.rawValue)-\(i).safetensors"
            }
            try bytes.write(to: URL(fileURLWithPath: path))
            manifest.append((target, kind, path, what))
        }
        let manifestPath = dir + "/manifest.tsv"
        try manifest.map { "\($0.target.rawValue)\t\($0.kind.rawValue)\t\($0.path)" }.joined(separator: "\n")
            .write(toFile: manifestPath, atomically: true, encoding: .utf8)

        // Children load the files in order; a crash or a hang costs the child, and the next
        // child starts after the file that killed it.
        let results = dir + "/results.txt"
        var outcome: [Int: String] = [:]
        var crashes: [Int] = [], hangs: [Int] = [], children = 0
        var next = 0
        while next < count {
            FileManager.default.createFile(atPath: results, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            p.arguments = ["ExperimentsTests.CheckpointDamageTests/testDamageChild"]
            var env = ProcessInfo.processInfo.environment
            env["REFLOW_DAMAGE_CHILD"] = manifestPath
            env["REFLOW_DAMAGE_RESULTS"] = results
            env["REFLOW_DAMAGE_START"] = "\(next)"
            env["REFLOW_DAMAGE_PRISTINE"] = dir
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            children += 1
            var current = next, since = Date(), seen = 0
            while true {
                let lines = ((try? String(contentsOfFile: results, encoding: .utf8)) ?? "").split(separator: "\n", omittingEmptySubsequences: true)
                for l in lines.dropFirst(seen) {
                    let parts = l.split(separator: "\t", maxSplits: 2).map(String.init)
                    guard parts.count >= 2, let i = Int(parts[1]) else { continue }
                    if parts[0] == "BEGIN" { current = i } else { outcome[i] = parts[0] + (parts.count > 2 ? "\t" + parts[2] : ""); current = i + 1 }
                    since = Date()
                }
                seen = lines.count
                if !p.isRunning {
                    p.waitUntilExit()
                    if current < count && outcome[current] == nil && !(p.terminationReason == .exit && p.terminationStatus == 0) {
                        crashes.append(current)
                        outcome[current] = "CRASH\tstatus \(p.terminationStatus) (\(p.terminationReason == .uncaughtSignal ? "signal" : "exit"))"
                        current += 1
                    }
                    break
                }
                if Date().timeIntervalSince(since) > CheckpointDamageTests.perFileTimeout {
                    kill(p.processIdentifier, SIGKILL)
                    p.waitUntilExit()
                    hangs.append(current)
                    outcome[current] = "HANG"
                    current += 1
                    break
                }
                usleep(5_000)
            }
            next = current
        }

        // Tally: refused naming the file, identical, and the failures.
        var refused = 0, identical = 0, unnamed: [String] = [], silent: [String] = []
        var byKind: [String: (refused: Int, identical: Int)] = [:]
        var example: [String: String] = [:]  // one error per kind of damage, shown with the counts
        for (i, m) in manifest.enumerated() {
            let o = outcome[i] ?? "MISSING"
            let key = m.kind.rawValue
            if o.hasPrefix("ERR\t") {
                if o.contains(m.path) {
                    refused += 1; byKind[key, default: (0, 0)].refused += 1
                    if example[key] == nil { example[key] = "\(m.what) -> \(o.dropFirst(4))" }
                } else {
                    unnamed.append("#\(i) \(m.target) \(m.what): \(o)")
                }
            } else if o.hasPrefix("SAME") {
                if m.kind.mustBeRefused { silent.append("#\(i) \(m.target) \(m.what): loaded (crafted, must be refused)") } else {
                    identical += 1; byKind[key, default: (0, 0)].identical += 1
                }
            } else if o.hasPrefix("DIFF") {
                silent.append("#\(i) \(m.target) \(m.what): \(o)")
            } else if !o.hasPrefix("CRASH") && o != "HANG" {
                unnamed.append("#\(i) \(m.target) \(m.what): no result (\(o))")
            }
        }
        let summary = "damaged checkpoints: \(count) files (seed \(seed)) in \(children) child process(es): "
            + "\(refused) refused with an error naming the file, \(identical) loaded bit-identically (damage in unused bytes), "
            + "\(crashes.count) crashes, \(hangs.count) hangs, \(silent.count) silently accepted, \(unnamed.count) errors not naming the file"
        print(summary)
        print("by damage: " + byKind.keys.sorted().map { "\($0) \(byKind[$0]!.refused)/\(byKind[$0]!.identical)" }.joined(separator: ", ")
              + " (refused/identical)")
        for k in example.keys.sorted() { print("  \(k): \(example[k]!.prefix(300))") }
        for i in crashes + hangs { XCTFail("#\(i) \(manifest[i].target) \(manifest[i].what): \(outcome[i]!)") }
        for s in silent { XCTFail("silently accepted: \(s)") }
        for s in unnamed { XCTFail("error does not name the file: \(s)") }
        XCTAssertEqual(refused + identical, count, summary)
    }

    /// The undamaged files: an MLP and a U-Net flow model, an evaluator, and a training run
    /// whose state the resume reads (run folder `<dir>/base`). Returns their paths by target.
    func makePristine(_ dir: String) throws -> [DamageTarget: String] {
        let tok = Tokenizer(captions: ["a small red square", "a large blue circle"], maxTokens: 6)
        var mlp = ModelSpec(kind: .mlp, channels: 2, height: 1, width: 1, vocabularySize: tok.vocabularySize)
        mlp.hidden = 16; mlp.depth = 2; mlp.timeEmbedding = 16; mlp.textWidth = 16; mlp.textLayers = 1; mlp.textHeads = 2
        mlp.maxTokens = tok.maxTokens
        var unet = mlp
        unet.kind = .unet; unet.channels = 1; unet.height = 8; unet.width = 8; unet.levels = [8, 16]; unet.groups = 4
        unet.attentionLevels = [1]
        try FlowModel(spec: mlp, tokenizer: tok, seed: 1).save(to: URL(fileURLWithPath: dir + "/mlp.safetensors"), stage: "teacher", step: 3)
        try FlowModel(spec: unet, tokenizer: tok, seed: 2).save(to: URL(fileURLWithPath: dir + "/unet.safetensors"), stage: "teacher", step: 3)
        let c = Classifier(inputShape: [1, 8, 8], classes: 3, width: 8, featureWidth: 16, seed: 3)
        try saveCheckpoint(c, metadata: c.metadata(extra: ["role": "evaluator"]), to: URL(fileURLWithPath: dir + "/classifier.safetensors"))
        let p = try Pipeline(config: tinyToyConfig(output: dir + "/base", steps: 6))
        Log.level = .warning
        _ = try p.trainTeacher(resume: false)
        return [.mlp: dir + "/mlp.safetensors", .unet: dir + "/unet.safetensors", .classifier: dir + "/classifier.safetensors",
                .state: dir + "/base/toy2d/checkpoints/teacher.last.state.safetensors"]
    }

    /// Child half: loads each file from REFLOW_DAMAGE_START on, writing "BEGIN i" before and
    /// "ERR i msg", "SAME i" or "DIFF i what" after, one write(2) per line.
    func testDamageChild() throws {
        let env = ProcessInfo.processInfo.environment
        guard let manifestPath = env["REFLOW_DAMAGE_CHILD"], let results = env["REFLOW_DAMAGE_RESULTS"],
              let start = env["REFLOW_DAMAGE_START"].flatMap({ Int($0) }), let dir = env["REFLOW_DAMAGE_PRISTINE"] else {
            throw XCTSkip("child half of testDamagedCheckpointsAreRefusedOrIdentical")
        }
        let out = FileHandle(forWritingAtPath: results)!
        func say(_ s: String) { out.seekToEndOfFile(); out.write(Data((s + "\n").utf8)) }
        Log.level = .error
        let lines = try String(contentsOfFile: manifestPath, encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        for i in start..<lines.count {
            let target = DamageTarget(rawValue: lines[i][0])!, path = lines[i][2]
            say("BEGIN\t\(i)")
            // Checks the harness itself: REFLOW_DAMAGE_SELFTEST=crash:<i> or hang:<i> must be reported.
            if env["REFLOW_DAMAGE_SELFTEST"] == "crash:\(i)" { abort() }
            if env["REFLOW_DAMAGE_SELFTEST"] == "hang:\(i)" { while true { sleep(1) } }
            do {
                let diff = try loadAndCompare(target, path: path, dir: dir)
                say(diff.map { "DIFF\t\(i)\t\($0)" } ?? "SAME\t\(i)")
            } catch {
                say("ERR\t\(i)\t" + "\(error)".replacingOccurrences(of: "\n", with: " | "))
            }
        }
    }

    /// Loads through the real loader; nil when everything matches the pristine file.
    func loadAndCompare(_ target: DamageTarget, path: String, dir: String) throws -> String? {
        let url = URL(fileURLWithPath: path)
        let pristine: SafetensorsArchive, got: [(String, Tensor)], meta: [String: String]
        switch target {
        case .mlp, .unet:
            pristine = try Safetensors.read(URL(fileURLWithPath: dir + "/\(target.rawValue).safetensors"))
            let (m, md) = try FlowModel.load(from: url)
            got = m.stateDict(); meta = md
        case .classifier:
            pristine = try Safetensors.read(URL(fileURLWithPath: dir + "/classifier.safetensors"))
            let (c, md) = try loadClassifier(from: url)
            got = c.stateDict(); meta = md
        case .state:
            pristine = try Safetensors.read(URL(fileURLWithPath: dir + "/base/toy2d/checkpoints/teacher.last.state.safetensors"))
            let runDir = url.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
            let p = try Pipeline(config: tinyToyConfig(output: runDir, steps: 6))
            Log.level = .error
            _ = try p.trainTeacher(resume: true)
            // The resume saved its state again: the same tensors if it read the same ones.
            let again = try Safetensors.read(url)
            got = again.names.map { ($0, again.tensors[$0]!) }; meta = again.metadata
        }
        if meta != pristine.metadata { return "metadata differs" }
        if got.count != pristine.names.count { return "\(got.count) tensors, pristine has \(pristine.names.count)" }
        for (name, t) in got {
            guard let want = pristine.tensors[name] else { return "unexpected tensor \(name)" }
            if t.shape != want.shape || t.scalars.map(\.bitPattern) != want.scalars.map(\.bitPattern) { return "tensor \(name) differs" }
        }
        return nil
    }
}
