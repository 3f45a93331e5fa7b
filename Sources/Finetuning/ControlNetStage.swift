import Foundation
import Experiments
import Autograd
import ConfigKit
import Control
import Diffusion
import Evaluation
import Formats
import Reporting
import Training
import Models
import NN

// ControlNet: a trainable copy of a frozen U-Net's encoder, fed the control image made from each
// training image by the config's operator, trained with the base's own objective (the
// rectified-flow loss on (independent noise, data) for a flow; eps/v for a diffusion teacher).
// Only the ControlNet's weights move and only they are written, with the operator and the
// base's SHA-256 in the metadata; the 2-RF and the student share the base's architecture, so the
// file applies to them unchanged (`loadControlNet` accepts a base's descendants).

extension Pipeline {
    /// The checkpoint `--stage controlnet` trains on: `controlnet.base`, else the teacher.
    public var controlNetBase: String { config.controlnet.base ?? run.file("teacher.safetensors") }

    /// Trains a ControlNet on the frozen `base`; writes `<run>/controlnet.safetensors` and a grid
    /// (control | base with the ControlNet) of held-out images in the run's samples folder.
    @discardableResult
    public func trainControlNet(base: String, resume: Bool, stopAfter: Int? = nil) throws -> URL {
        let stage = "controlnet", section = config.controlnet
        guard FileManager.default.fileExists(atPath: base) else {
            throw ModelError("controlnet: base checkpoint \(base) not found; \(Pipeline.howToMake(checkpoint: base))")
        }
        let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: base))
        let train = try loadDataset(.train)
        guard train.itemShape == model.spec.itemShape else {
            throw ModelError("controlnet: base \(base) makes items of shape \(model.spec.itemShape), but the config's dataset '\(train.name)' has \(train.itemShape)")
        }
        let op = section.controlOperator
        let (net, attachment) = try newControlNet(on: model, base: base, op: op, scale: section.scale, seed: seed &+ 0xC0_7201)
        let baseSHA = try SHA256.hex(file: base)
        var weights = section
        weights.train = weightsRelevant(section.train)
        let hash = chainHash([stage, "seed=\(config.seed)", dumpConfig(config.dataset), dumpConfig(weights), "base=" + baseSHA])
        try checkResumable(stage: stage, hash: hash, resume: resume)
        let diffusion = try DiffusionTeacher(metadata: meta, source: base)
        let objective: Objective = diffusion.map { .diffusion($0) } ?? .rectifiedFlow(section.timeSampler, section.flowLoss)
        Log.info("\(stage): \(net.parameterCount) parameters on frozen \(base) (\(diffusion.map { "diffusion, \($0.prediction)" } ?? "flow")), control \(op); run folder \(run.path)")
        // Sample grids need a control per image: the stage draws its own grid at the end.
        var options = trainerOptions(stage: stage, section: section.train, prompts: [])
        options.stopAfter = stopAfter
        options.metadata = [ChainKey.configHash: hash, ControlNetKey.role: ControlNetKey.roleValue,
                            ControlNetKey.controlOperator: op.json(), ControlNetKey.controlChannels: "1",
                            ControlNetKey.controlScale: "\(section.scale)",
                            ControlNetKey.basePath: base, ControlNetKey.baseSHA256: baseSHA]
        options.trained = net
        let fileMeta = options.metadata
        options.exportOutput = { url, step in
            try saveCheckpoint(net, metadata: model.metadata(stage: stage, step: step, extra: fileMeta), to: url)
        }
        let source = ControlSource(base: DatasetSource(dataset: train, seed: seed &+ stageSalt(stage)), op: op, attachment: attachment)
        let out = try Trainer(model: model, source: source, objective: objective, options: options).run(resume: resume)
        if stopAfter == nil, FileManager.default.fileExists(atPath: out.path) { try writeControlNetGrid(out, base: base) }
        return out
    }

    /// control | base with the ControlNet, for the first ten held-out images.
    func writeControlNetGrid(_ url: URL, base: String) throws {
        let test = try loadDataset(.test)
        let path = run.samplesPath + "/controlnet.png"
        try writeControlNetSamples(url, base: base, held: try test.batch(0..<min(10, test.count)), path: path,
                                   solver: config.sample.solverSettings(tolerancesFrom: config.pairs), sampler: config.sample.sampler,
                                   guidance: config.sample.guidance, seed: seed &+ 0x5A3F1E)
        Log.info("controlnet: grid (control | \(URL(fileURLWithPath: base).lastPathComponent) with the ControlNet) \(path)")
    }

    /// reflow-eval --controlnet: each checkpoint with and without the ControlNet (see
    /// `EvalContext.evaluateControl`), with the config's `eval` section.
    public func evaluateControl(checkpoints: [String], controlNet: String, grid: String?, evaluator: String? = nil,
                                secondEvaluator: String? = nil) throws -> ControlTable {
        let e = config.eval
        let cps = try checkpoints.map {
            try ControlEvalCheckpoint(parsing: $0, defaultSteps: e.steps.max() ?? 1, defaultGuidance: e.guidance[0])
        }
        let r = ControlEvalRequest(checkpoints: cps, controlNet: try ControlNetArgument(parsing: controlNet), samples: e.samples,
                                   seeds: e.seeds.map { UInt64(bitPattern: Int64($0)) }, solver: e.solver, sampler: e.sampler,
                                   batchSize: e.batchSize, gridPath: grid, gridRows: 10)
        let test = try loadDataset(.test), train = try loadDataset(.train)
        return try EvalContext(test: test, train: train, evaluator: evaluator, secondEvaluator: secondEvaluator, samples: e.samples)
            .evaluateControl(r, test: test, train: train)
    }
}
