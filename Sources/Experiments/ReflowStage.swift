import Foundation
import Autograd
import ConfigKit
import Datasets
import Formats
import TripletStore
import Reporting
import Training
import Flow
import Models
import NN
import TensorCore

// Stage 3: k-rectified flow. The network starts from the flow that made the pairs (the teacher
// for the 2-RF) and regresses v(x_t, t, text) on x1 - x0 along the straight line between each
// pair's noise x0 and image x1: the same loss as the teacher's, on coupled instead of
// independent (x0, x1). Run it again on pairs from the 2-RF for the 3-RF, and so on.

extension Pipeline {
    /// Loads the checkpoint a stage starts from and checks that it is the network the config
    /// describes (same item shape as the dataset, same architecture as the `model` section).
    public func loadInitModel(_ path: String, role: String) throws -> (FlowModel, Dataset) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError("\(role) checkpoint \(path) not found; \(Pipeline.howToMake(checkpoint: path))")
        }
        let (model, _) = try FlowModel.load(from: URL(fileURLWithPath: path))
        let train = try loadDataset(.train)
        if model.spec.itemShape != train.itemShape {
            throw ModelError("\(role) checkpoint \(path) makes items of shape \(model.spec.itemShape), but the config's dataset '\(train.name)' has items of shape \(train.itemShape)")
        }
        let want = modelSpec(tokenizer: model.tokenizer, itemShape: train.itemShape)
        if want != model.spec {
            throw ModelError("\(role) checkpoint \(path) does not match the config's model: \(specDifferences(model.spec, want)) (checkpoint vs config); the new network starts from these weights, so its shapes must be the same")
        }
        return (model, train)
    }

    /// The command that makes a missing checkpoint, judged by its name: `teacher.safetensors`
    /// is the teacher; any other flow (reflow, reflow3, ...) is a k-RF trained on pairs.
    public static func howToMake(checkpoint path: String) -> String {
        let chain = "or run the whole chain: reflow --config <config>"
        if URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent == "teacher" {
            return "make it with: reflow-train --config <config> --stage teacher, \(chain)"
        }
        return "it is a rectified flow trained on pairs: make it with reflow-train --config <config> --stage reflow "
            + "(after the teacher and its pairs: reflow-train --config <config> --stage teacher, then "
            + "reflow-gen-pairs --config <config>), \(chain)"
    }

    /// Refuses to resume a stage from a checkpoint made with another config.
    public func checkResumable(stage: String, hash: String, resume: Bool) throws {
        let last = URL(fileURLWithPath: run.checkpointsPath + "/\(stage).last.safetensors")
        guard resume, FileManager.default.fileExists(atPath: last.path) else { return }
        let meta = try Safetensors.readMetadata(last)
        if let h = meta[ChainKey.configHash], h != hash {
            throw ModelError("\(last.path) was made with another config or other inputs (config hash \(h.prefix(12)), now \(hash.prefix(12))); remove it or drop --resume to start \(stage) over")
        }
    }

    /// Trains the k-rectified flow on the triplets in `inputs`, starting from `initFrom`
    /// (the checkpoint that made them). Writes `<run>/<stage>.safetensors` and returns its URL.
    @discardableResult
    public func trainReflow(inputs: [String], initFrom: String, stage: String = "reflow", resume: Bool,
                            stopAfter: Int? = nil) throws -> URL {
        let (model, train) = try loadInitModel(initFrom, role: "teacher")
        let source = try TripletSource(paths: inputs, seed: seed &+ 0x0EF1_0000 &+ stageSalt(stage))
        guard source.itemShape == model.spec.itemShape else {
            throw ModelError("triplet file \(inputs[0]) holds items of shape \(source.itemShape), but \(initFrom) makes \(model.spec.itemShape)")
        }
        let hash = try reflowConfigHash(stage: stage, inputs: inputs, initFrom: initFrom)
        try checkResumable(stage: stage, hash: hash, resume: resume)
        let initSHA = try SHA256.hex(file: initFrom)
        let makers = Set(source.attributes.compactMap { $0[TripletFormat.Key.teacherSHA256] })
        let note = makers == [initSHA] ? "" : " (note: the pairs were made by another checkpoint)"
        Log.info("\(stage): \(source.count) pairs from \(inputs.joined(separator: ", "))\(source.inMemory ? "" : " (read in blocks)"), starting from \(initFrom)\(note); run folder \(run.path)")
        var options = trainerOptions(stage: stage, section: config.reflow, prompts: samplePrompts(train))
        options.stopAfter = stopAfter
        // Trained on guided pairs, the flow samples the guided distribution: grids without guidance.
        if source.attributes.contains(where: { (Float($0[TripletFormat.Key.guidance] ?? "1") ?? 1) != 1 }) {
            options.sampleGuidance = 1
        }
        options.metadata = [ChainKey.configHash: hash, "init_from": initFrom, "init_sha256": initSHA,
                            "pairs": inputs.joined(separator: ",")]
        let trainer = Trainer(model: model, source: source, objective: .rectifiedFlow(config.reflow.timeSampler, config.reflow.flowLoss),
                              options: options)
        return try trainer.run(resume: resume)
    }
}

/// A small per-stage offset so that two stages of one run draw different batches.
public func stageSalt(_ stage: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in stage.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}

/// "hidden 256 vs 512, depth 3 vs 4": the fields where two specs differ.
func specDifferences(_ a: ModelSpec, _ b: ModelSpec) -> String {
    func fields(_ s: ModelSpec) -> [String: String] {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(s.json().utf8)) as? [String: Any] else { return [:] }
        return obj.mapValues { "\($0)".replacingOccurrences(of: "\n", with: "").replacingOccurrences(of: " ", with: "") }
    }
    let fa = fields(a), fb = fields(b)
    let keys = Set(fa.keys).union(fb.keys).sorted().filter { fa[$0] != fb[$0] }
    return keys.map { "\($0) \(fa[$0] ?? "-") vs \(fb[$0] ?? "-")" }.joined(separator: ", ")
}
