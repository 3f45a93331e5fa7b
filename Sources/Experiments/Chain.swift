import Foundation
import Sampling
import Autograd
import ConfigKit
import Datasets
import Diffusion
import Evaluation
import Formats
import TripletStore
import Reporting
import Training
import Flow
import Models
import NN
import TensorCore

// The whole InstaFlow chain as one experiment:
//
//   evaluator -> teacher -> pairs (teacher) -> reflow (2-RF) -> pairs (2-RF) -> distill
//             -> direct-distill (teacher's pairs, teacher's weights) -> eval
//
// Every output records what it was made from: checkpoints carry `config_hash` in their
// metadata, pair files carry their generator (checkpoint SHA-256, solver, guidance, seed, batch)
// as HDF5 attributes, results.json carries the hash of the evaluated checkpoints. A stage whose
// output exists and was made the same way is skipped; one that was interrupted resumes (training
// from its last checkpoint, pairs from the committed rows); one made differently is redone.
// Hashes chain through the inputs' identities (a checkpoint's SHA-256, a pair file's attributes
// and row count), so changing the teacher section redoes everything downstream of it.
//
// Guidance is applied once: the teacher makes its pairs with `pairs.guidance`; the 2-RF, trained
// on those guided pairs, already samples the guided distribution, so its own pairs and its
// table rows use guidance 1 (measured on digits: guiding the 2-RF again at w = 1.5 made its
// one-step FD 2.76 instead of 1.83 and its straightness 1.45 instead of 0.42).

public enum ChainKey {
    public static let configHash = "config_hash"
}

/// SHA-256 over the parts, each length-prefixed (no two lists hash alike by concatenation).
public func chainHash(_ parts: [String]) -> String {
    var s = SHA256()
    for p in parts { s.update("\(p.utf8.count):"); s.update(p); s.update("\n") }
    return s.finalizeHex()
}

/// The training keys that do not change the weights (logging and checkpoint cadence) are
/// left out of hashes, so that changing them does not redo a stage.
public func weightsRelevant(_ s: TrainSection) -> TrainSection {
    var t = s
    t.checkpointEvery = 0; t.sampleEvery = 0; t.logEvery = 1
    return t
}

/// A pair file's identity: its generator's attributes and its row count.
public func pairsIdentity(_ path: String) throws -> String {
    let r = try TripletReader(path: path)
    defer { r.close() }
    return chainHash(["pairs"] + withoutTeacherPath(r.writerAttributes).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                     + ["rows=\(r.count)"])
}

/// Pair-file attributes without the teacher's path: its SHA-256 (also an attribute) identifies
/// the weights, so a run folder that is moved or copied keeps its pairs and what was trained on them.
func withoutTeacherPath(_ attributes: [String: String]) -> [String: String] {
    attributes.filter { $0.key != TripletFormat.Key.teacherCheckpoint }
}

extension Pipeline {
    /// Hash of everything the teacher's weights depend on.
    public var teacherConfigHash: String {
        var teacher = config.teacher
        teacher.train = weightsRelevant(teacher.train)
        // Flow teachers keep the hash they had before diffusion teachers existed.
        return chainHash(["teacher", "seed=\(config.seed)", dumpConfig(config.dataset), dumpConfig(config.text),
                          dumpConfig(config.model), dumpConfig(teacher.train)]
                         + (teacher.kind == .diffusion ? [dumpConfig(teacher)] : []))
    }

    public func reflowConfigHash(stage: String, inputs: [String], initFrom: String) throws -> String {
        chainHash([stage, "seed=\(config.seed)", dumpConfig(weightsRelevant(config.reflow)),
                   "init=" + (try SHA256.hex(file: initFrom))] + (try inputs.map(pairsIdentity)))
    }

    /// `perceptualNet` matters only to a perceptual loss (its features are the loss).
    public func distillConfigHash(stage: String, pairs: [String], initFrom: String, perceptualNet: String? = nil) throws -> String {
        var d = config.distill
        d.train = weightsRelevant(d.train)
        var parts = [stage, "seed=\(config.seed)", dumpConfig(d), "init=" + (try SHA256.hex(file: initFrom))]
        if d.loss == .perceptual {
            let net = perceptualNet ?? defaultPerceptualURL(dataset: config.dataset.name.rawValue).path
            parts.append("perceptual=" + (FileManager.default.fileExists(atPath: net) ? try SHA256.hex(file: net) : "missing"))
        }
        return chainHash(parts + (try pairs.map(pairsIdentity)))
    }
}

public struct ChainOptions {
    /// Continue interrupted stages (on by default: the chain is meant to be re-run until done).
    public var resume = true
    /// Evaluator checkpoint; nil = checkpoints/evaluators/<dataset>.safetensors (trained when missing).
    public var evaluator: String? = nil
    /// Second evaluator; nil = checkpoints/evaluators/<dataset>.vgg.safetensors (trained when
    /// missing) for images of at least 4x4 pixels, none for toy2d's points.
    public var secondEvaluator: String? = nil
    /// The command line, recorded in a newly trained evaluator's metadata.
    public var command = "reflow"
    public init() {}
}

public struct ChainStageReport: Codable {
    public var name: String
    /// "done", "resumed", "skipped" (up to date).
    public var status: String
    public var seconds: Double
    public var output: String
    public var note: String
}

public struct ChainResult {
    public var stages: [ChainStageReport]
    public var table: ChainTable
    public var grids: [String]
    public var seconds: Double
}

extension Pipeline {
    public var chainOutputs: (teacher: String, teacherPairs: String, reflow: String, reflowPairs: String,
                              distill: String, directDistill: String, results: String) {
        (run.file("teacher.safetensors"), pairsPath("teacher"), run.file("reflow.safetensors"), pairsPath("reflow"),
         run.file("distill.safetensors"), run.file("direct-distill.safetensors"), run.file("results.json"))
    }

    private func say(_ s: String) { Log.info(s) }

    /// Moves an output that no longer matches the config aside (to `<path>.stale`, replacing an
    /// older one) rather than deleting what may have cost a while to make.
    private func retire(_ path: String) throws -> String {
        let dest = path + ".stale"
        try? FileManager.default.removeItem(atPath: dest)
        try FileManager.default.moveItem(atPath: path, toPath: dest)
        return dest
    }

    /// Whether a checkpoint exists and was made with `hash`; when it exists but was made another
    /// way, removes it (and a stale resume checkpoint of the stage) so the stage starts over.
    private func upToDate(_ path: String, stage: String, hash: String, resume: Bool) throws -> (Bool, String) {
        let fm = FileManager.default
        let last = URL(fileURLWithPath: run.checkpointsPath + "/\(stage).last.safetensors")
        var note = ""
        if fm.fileExists(atPath: path) {
            let h = (try? Safetensors.readMetadata(URL(fileURLWithPath: path)))?[ChainKey.configHash]
            if h == hash { return (true, "") }
            note = "config changed (was \(h.map { String($0.prefix(12)) } ?? "unknown"), now \(hash.prefix(12))): redoing \(stage), old weights kept as \(try retire(path))"
        }
        var resumable = false
        if fm.fileExists(atPath: last.path) {
            let h = (try? Safetensors.readMetadata(last))?[ChainKey.configHash]
            if h != hash || !resume {
                try? fm.removeItem(at: last)
                try? fm.removeItem(at: TrainingState.url(besideCheckpoint: last))
            } else {
                resumable = true
                if note.isEmpty { note = "resuming" }
            }
        } else {  // a state without its export (killed in its first save): start over, as the metrics do
            try? fm.removeItem(at: TrainingState.url(besideCheckpoint: last))
        }
        // A fresh start logs its steps anew: drop the old lines of this stage.
        if !resumable { try MetricsLog.truncate(path: run.metricsPath, afterStep: 0, stage: stage) }
        return (false, note)
    }

    /// Pair files: skip when complete and made the same way, resume when short, redo otherwise.
    private func pairsStage(name: String, teacher: String, output: String, guidance: Float? = nil,
                            resume: Bool) throws -> ChainStageReport {
        let t0 = Date()
        var r = try pairsRequest(teacher: teacher, output: output)
        if let guidance { r.guidance = guidance }
        let want = try pairsAttributes(r)
        var note = ""
        let fm = FileManager.default
        if fm.fileExists(atPath: output) {
            if let reader = try? TripletReader(path: output) {
                let (attrs, rows) = (reader.writerAttributes, reader.count)
                reader.close()
                // The teacher's SHA-256 names its weights; its path may differ (a moved or copied run).
                let samePairs = withoutTeacherPath(attrs) == withoutTeacherPath(want)
                if !samePairs {
                    note = "made by another checkpoint or config: regenerating (old file kept as \(try retire(output)))"
                } else if rows == r.count {
                    return ChainStageReport(name: name, status: "skipped", seconds: 0, output: output, note: "\(rows) pairs, up to date")
                } else if attrs != want {
                    note = "made from the same weights at another path, but short: regenerating (old file kept as \(try retire(output)))"
                } else if rows > r.count || !resume {
                    note = "holds \(rows) pairs, want \(r.count): regenerating (old file kept as \(try retire(output)))"
                } else {
                    note = "resuming at pair \(rows)"
                }
            } else {
                note = "unreadable: regenerating (old file kept as \(try retire(output)))"
            }
        }
        if !note.isEmpty { say("\(name): \(note)") }
        r.overwrite = false
        let res = try generatePairs(r)
        let nfe = res.meanNFE.map { String(format: ", mean NFE %.1f", $0) } ?? ""
        return ChainStageReport(name: name, status: res.resumedFrom > 0 ? "resumed" : "done",
                                seconds: Date().timeIntervalSince(t0), output: output,
                                note: "\(res.rows) pairs, \(String(format: "%.0f", Double(res.generated) / max(res.seconds, 1e-9))) pairs/s\(nfe)")
    }

    private func trainStage(name: String, output: String, hash: String, resume: Bool,
                            _ body: (_ resume: Bool) throws -> URL) throws -> ChainStageReport {
        let t0 = Date()
        let (fresh, note) = try upToDate(output, stage: name, hash: hash, resume: resume)
        if fresh { return ChainStageReport(name: name, status: "skipped", seconds: 0, output: output, note: "up to date") }
        if !note.isEmpty { say("\(name): \(note)") }
        let url = try body(resume)
        return ChainStageReport(name: name, status: note == "resuming" ? "resumed" : "done",
                                seconds: Date().timeIntervalSince(t0), output: url.path, note: note == "resuming" ? "" : note)
    }

    /// Runs the chain, skipping what is up to date; writes results.json and stages.json in the
    /// run folder (RunReport's `writeReport` turns them into results.md and report.html).
    public func runChain(_ o: ChainOptions = ChainOptions()) throws -> ChainResult {
        let started = Date()
        var reports: [ChainStageReport] = []
        let out = chainOutputs
        let sweep = config.pairs.guidanceSweep.filter { $0 != config.pairs.guidance }
        let total = 8 + 4 * sweep.count
        func record(_ r: ChainStageReport) {
            reports.append(r)
            let k = reports.count
            let time = r.status == "skipped" ? "" : " in " + Progress.formatDuration(r.seconds)
            say("[\(k)/\(total)] \(r.name): \(r.status)\(time)\(r.note.isEmpty ? "" : " (\(r.note))") -> \(r.output)")
        }

        // 1. Evaluators (shipped for the image datasets; trained once when missing): the conv3
        // one, and the vgg one where the images are large enough for it (not toy2d's points).
        let evURL = o.evaluator.map { URL(fileURLWithPath: $0) } ?? defaultEvaluatorURL(dataset: config.dataset.name.rawValue)
        let shape = try loadDataset(.train).itemShape
        let secondURL = o.secondEvaluator.map { URL(fileURLWithPath: $0) }
            ?? (shape[1] >= 4 && shape[2] >= 4 ? defaultEvaluatorURL(dataset: config.dataset.name.rawValue, arch: .vgg) : nil)
        var trained: [String] = []
        let evStart = Date()
        for (arch, url) in [(EvaluatorArch.conv3, evURL), (.vgg, secondURL)] {
            guard let url, !FileManager.default.fileExists(atPath: url.path) else { continue }
            let (_, acc) = try trainEvaluator(arch: arch, output: url, command: o.command)
            trained.append(String(format: "\(arch.rawValue) test accuracy %.2f%%", acc * 100))
        }
        // The perceptual loss's own network, when the students need one.
        if config.distill.loss == .perceptual {
            let net = defaultPerceptualURL(dataset: config.dataset.name.rawValue)
            if !FileManager.default.fileExists(atPath: net.path) {
                let (_, acc) = try trainEvaluator(arch: .conv3, output: net, command: o.command, role: .perceptual)
                trained.append(String(format: "perceptual network (test accuracy %.2f%%)", acc * 100))
            }
        }
        let evOutputs = ([evURL] + (secondURL.map { [$0] } ?? [])).map(\.path).joined(separator: ", ")
        record(ChainStageReport(name: "evaluator", status: trained.isEmpty ? "skipped" : "done",
                                   seconds: trained.isEmpty ? 0 : Date().timeIntervalSince(evStart), output: evOutputs,
                                   note: trained.isEmpty ? "exists" : trained.joined(separator: ", ")))

        // 2. Teacher.
        record(try trainStage(name: "teacher", output: out.teacher, hash: teacherConfigHash, resume: o.resume) { resume in
            try trainTeacher(resume: resume)
        })

        // 3. The teacher's pairs.
        record(try pairsStage(name: "pairs-teacher", teacher: out.teacher, output: out.teacherPairs, resume: o.resume))

        // 4. 2-rectified flow.
        let reflowHash = try reflowConfigHash(stage: "reflow", inputs: [out.teacherPairs], initFrom: out.teacher)
        record(try trainStage(name: "reflow", output: out.reflow, hash: reflowHash, resume: o.resume) { resume in
            try trainReflow(inputs: [out.teacherPairs], initFrom: out.teacher, resume: resume)
        })

        // 5. The 2-RF's pairs (what the student learns). No guidance: the 2-RF learned the guided
        // teacher's coupling, so guiding it again would apply the guidance twice.
        record(try pairsStage(name: "pairs-reflow", teacher: out.reflow, output: out.reflowPairs, guidance: 1,
                                 resume: o.resume))

        // 6. One-step student of the 2-RF.
        let distillHash = try distillConfigHash(stage: "distill", pairs: [out.reflowPairs], initFrom: out.reflow)
        record(try trainStage(name: "distill", output: out.distill, hash: distillHash, resume: o.resume) { resume in
            try trainDistill(pairs: [out.reflowPairs], initFrom: out.reflow, stage: "distill", resume: resume)
        })

        // 7. Ablation: the same student from the teacher, on the teacher's pairs.
        let directHash = try distillConfigHash(stage: "direct-distill", pairs: [out.teacherPairs], initFrom: out.teacher)
        record(try trainStage(name: "direct-distill", output: out.directDistill, hash: directHash, resume: o.resume) { resume in
            try trainDistill(pairs: [out.teacherPairs], initFrom: out.teacher, stage: "direct-distill", resume: resume)
        })

        // 7b. Students from pairs made at other guidance weights (pairs.guidance_sweep), each by the
        // same path (pairs -> 2-RF -> pairs -> student), so the students' curve sits beside the
        // teacher's.
        var sweepStudents: [(guidance: Float, path: String)] = []
        for w in sweep {
            let tag = "w" + String(format: "%g", w)
            let teacherPairs = pairsPath("teacher-\(tag)"), reflowPath = run.file("reflow-\(tag).safetensors")
            let reflowPairs = pairsPath("reflow-\(tag)"), student = run.file("distill-\(tag).safetensors")
            record(try pairsStage(name: "pairs-teacher-\(tag)", teacher: out.teacher, output: teacherPairs, guidance: w,
                                  resume: o.resume))
            let rh = try reflowConfigHash(stage: "reflow-\(tag)", inputs: [teacherPairs], initFrom: out.teacher)
            record(try trainStage(name: "reflow-\(tag)", output: reflowPath, hash: rh, resume: o.resume) { resume in
                try trainReflow(inputs: [teacherPairs], initFrom: out.teacher, stage: "reflow-\(tag)", resume: resume)
            })
            record(try pairsStage(name: "pairs-reflow-\(tag)", teacher: reflowPath, output: reflowPairs, guidance: 1,
                                  resume: o.resume))
            let dh = try distillConfigHash(stage: "distill-\(tag)", pairs: [reflowPairs], initFrom: reflowPath)
            record(try trainStage(name: "distill-\(tag)", output: student, hash: dh, resume: o.resume) { resume in
                try trainDistill(pairs: [reflowPairs], initFrom: reflowPath, stage: "distill-\(tag)", resume: resume)
            })
            sweepStudents.append((w, student))
        }

        // 8. The table.
        var req = chainEvalRequest(evaluator: evURL.path, secondEvaluator: secondURL?.path)
        req.sweepStudents = sweepStudents
        req.gridDirectory = run.samplesPath
        let evalHash = try req.hash()
        var table: ChainTable
        let t0 = Date()
        if let data = FileManager.default.contents(atPath: out.results),
           let old = try? JSONDecoder().decode(ChainTable.self, from: data), old.configHash == evalHash,
           old.grids.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
            table = old
            record(ChainStageReport(name: "eval", status: "skipped", seconds: 0, output: out.results, note: "up to date"))
        } else {
            table = try evaluateChain(req)
            table.configHash = evalHash
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try atomicWrite(enc.encode(table), to: out.results)
            record(ChainStageReport(name: "eval", status: "done", seconds: Date().timeIntervalSince(t0), output: out.results, note: ""))
        }
        let seconds = Date().timeIntervalSince(started)
        var grids = table.grids
        for plot in table.curvePlots() {
            let path = run.file("curves_\(plot.name).svg")
            try atomicWrite(plot.svg, to: path)
            grids.append(path)
        }
        for stage in ["teacher", "reflow", "distill", "direct-distill"] {
            if let g = lastGrid(stage: stage) { grids.append(g) }
        }
        // A skipped stage keeps the record of the invocation that made it: that time is the one a reader wants.
        let old = (try? JSONDecoder().decode([ChainStageReport].self, from: Data(contentsOf: URL(fileURLWithPath: stagesPath)))) ?? []
        let kept = reports.map { r in r.status != "skipped" ? r : old.first { $0.name == r.name && $0.status != "skipped" } ?? r }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(enc.encode(kept), to: stagesPath)
        return ChainResult(stages: reports, table: table, grids: grids, seconds: seconds)
    }

    /// `stages.json`: the stage timings of the last invocation (the run report lists them).
    public var stagesPath: String { run.file("stages.json") }

    /// The newest training grid of a stage (samples/<stage>_<step>.png).
    public func lastGrid(stage: String) -> String? {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: run.samplesPath)) ?? []
        let mine = files.filter {
            $0.hasPrefix(stage + "_") && $0.hasSuffix(".png") && Int($0.dropFirst(stage.count + 1).dropLast(4)) != nil
        }.sorted()
        return mine.last.map { run.samplesPath + "/" + $0 }
    }

    /// The evaluation of the chain's four checkpoints with the config's `eval` section: the
    /// teacher at the guidance it made its pairs with, the 2-RF and students at 1.
    public func chainEvalRequest(evaluator: String? = nil, secondEvaluator: String? = nil) -> ChainEvalRequest {
        let out = chainOutputs, e = config.eval
        var r = ChainEvalRequest(teacher: out.teacher, reflow: out.reflow, distill: out.distill, directDistill: out.directDistill,
                                 steps: e.steps, teacherSampler: e.sampler, samples: e.samples, seeds: e.seeds.map { UInt64(bitPattern: Int64($0)) },
                                 guidance: config.pairs.guidance, reflowGuidance: 1, teacherGuidanceSweep: e.teacherGuidanceSweep,
                                 straightnessSteps: e.straightnessStepsResolved, batchSize: e.batchSize,
                                 evaluator: evaluator, secondEvaluator: secondEvaluator, gridDirectory: nil, gridCount: e.gridImages)
        r.teacherReference = (e.referenceSampler, e.referenceSteps)
        return r
    }

    /// Scores the chain's checkpoints (Evaluation's `evaluateChain` on this config's test split).
    public func evaluateChain(_ r: ChainEvalRequest) throws -> ChainTable {
        try EvalContext(test: loadDataset(.test), train: loadDataset(.train), evaluator: r.evaluator,
                        secondEvaluator: r.secondEvaluator, samples: r.samples).evaluateChain(r)
    }
}
