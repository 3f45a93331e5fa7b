import ConfigKit
import Experiments
import Flow
import Formats
import Foundation
import Generation
import Models
import NN
import TensorCore
import Autograd

/// The work the chain really does, on an experiment config's own model (by default
/// experiments/fashion.yaml: the text encoder + U-Net the teacher, 2-RF and students share):
/// a teacher training step, one-step sampling, and guided pair generation as `pairs:` sets it.
/// The weights and inputs go to a folder that scripts/bench_torch.py reads, so the PyTorch port
/// (python/reflow_model.py) runs the identical model on identical data; it checks its outputs
/// against ours (written there too) before it times anything.
final class ChainWorkload {
    let config: ExperimentConfig
    let model: FlowModel
    let optimizer: AdamW
    let ema: EMA?
    let params: [Tensor]
    let gradClip: Float
    let x0: Tensor, x1: Tensor, t: Tensor
    let captions: [String]
    let sampleNoise: Tensor
    let samplePrompts: [String]
    let dir: URL
    let keep: Bool
    var trainBatch: Int { captions.count }
    var sampleBatch: Int { samplePrompts.count }

    /// `folder`: where to write the torch side's files (kept); nil: a temporary folder, removed.
    /// `checkpoint`: a trained model (teacher, 2-RF, student) to run instead of the config's
    /// freshly initialised one; it must make the config's dataset's items.
    init(configPath: String, folder: String?, checkpoint: String? = nil) throws {
        config = try loadConfig(ExperimentConfig.self, path: configPath)
        let train = try config.loadDataset(.train)
        var rng = RNG(seed: 77)
        if let checkpoint {
            (model, _) = try FlowModel.load(from: URL(fileURLWithPath: checkpoint))
            guard model.spec.itemShape == train.itemShape else {
                throw ModelError("\(checkpoint) makes items \(model.spec.itemShape), but \(configPath)'s dataset has \(train.itemShape): pass its own config with --config")
            }
        } else {
            let tokenizer = config.tokenizer(for: train)
            let spec = config.modelSpec(tokenizer: tokenizer, itemShape: train.itemShape)
            model = try FlowModel(spec: spec, tokenizer: tokenizer, seed: config.seedValue)
            // The output conv starts at zero (velocity 0 everywhere); random weights there make the
            // side-by-side output check meaningful.
            for (_, p) in model.net.namedParameters() where p.shape.count == 4 && p.shape[0] == spec.channels {
                let w = Init.normal(p.shape, std: 0.05, rng: &rng)
                withExtendedLifetime(w) { p.storage.ptr.update(from: w.storage.ptr, count: p.count) }
            }
        }
        let s = config.teacher
        params = model.parameters()
        optimizer = AdamW(model.namedParameters(), lr: Double(s.lr), weightDecay: Double(s.weightDecay))
        ema = s.emaDecay > 0 ? EMA(model.namedParameters(), decay: Double(s.emaDecay)) : nil
        gradClip = s.gradClip

        // A real batch of the dataset; captions dropped as the teacher's caption_dropout would.
        let n = s.batchSize
        let batch = try train.batch(0..<n)
        x1 = Tensor(shape: batch.shape, storage: batch.images)
        x0 = Tensor.randn(batch.shape, rng: &rng)
        t = Tensor.rand([n], rng: &rng)
        let u = Tensor.rand([n], rng: &rng).scalars
        captions = batch.captions.enumerated().map { u[$0.offset] < s.captionDropout ? "" : $0.element }

        // Sampling and pair rows use the pairs batch (pairs.batch_size: 256 in fashion.yaml).
        let sampleBatch = config.pairs.batchSize
        sampleNoise = itemNoise(seed: 5, first: 0, count: sampleBatch, itemShape: train.itemShape)
        let firsts = train.classCaptions.compactMap(\.first)
        samplePrompts = (0..<sampleBatch).map { firsts[$0 % firsts.count] }
        keep = folder != nil
        dir = folder.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("reflow-bench-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try writeTorchInputs()
    }

    deinit { if !keep { try? FileManager.default.removeItem(at: dir) } }

    /// The model (a reflow checkpoint), the inputs and our outputs for bench_torch.py.
    func writeTorchInputs() throws {
        try model.save(to: dir.appendingPathComponent("model.safetensors"), stage: "bench", step: 0)
        let text = try model.encode(captions)
        let xt = try (t.reshaped([trainBatch, 1, 1, 1]) * x1) + ((1 - t).reshaped([trainBatch, 1, 1, 1]) * x0)
        let v = try noGrad { try model.velocity(xt, t: t, text: text) }
        let oneStep = try sampleOneStep()
        let firstStep = try pairSolverSteps(1)
        let tensors: [(String, Tensor)] = [("x0", x0), ("x1", x1), ("t", t), ("velocity", v), ("sample_noise", sampleNoise),
                                           ("one_step", oneStep), ("pairs_first_step", firstStep)]
        let meta = [
            "captions": String(decoding: try JSONSerialization.data(withJSONObject: captions), as: UTF8.self),
            "sample_prompts": String(decoding: try JSONSerialization.data(withJSONObject: samplePrompts), as: UTF8.self),
            "lr": "\(config.teacher.lr)", "weight_decay": "\(config.teacher.weightDecay)",
            "grad_clip": "\(gradClip)", "ema_decay": "\(config.teacher.emaDecay)",
            "solver": config.pairs.solver.rawValue, "solver_steps": "\(config.pairs.steps)",
            "guidance": "\(config.pairs.guidance)",
        ]
        try Safetensors.write(tensors, metadata: meta, to: dir.appendingPathComponent("inputs.safetensors"))
    }

    /// One teacher step exactly as Trainer runs it: encode, rectified-flow loss, backward, clip,
    /// AdamW, zero grads, EMA.
    @discardableResult
    func trainStep() throws -> Float {
        model.train()
        let text = try model.encode(captions)
        let loss = try rectifiedFlowLoss(model: { x, t in try self.model.velocity(x, t: t, text: text) }, x0: x0, x1: x1, t: t)
        loss.backward()
        _ = gradClip > 0 ? clipGradNorm(params, maxNorm: Double(gradClip)) : gradNorm(params)
        optimizer.step()
        optimizer.zeroGrad()
        ema?.update()
        return loss.item
    }

    /// x1 = x0 + v(x0, 0): the one-step student's sampler.
    func sampleOneStep() throws -> Tensor {
        try generate(model, x0: sampleNoise, prompts: samplePrompts, solver: Euler(steps: 1), guidance: 1,
                     batchSize: sampleBatch).images
    }

    /// Guided pair generation with the config's solver and guidance; `steps` < the config's
    /// steps runs only the first steps of the same grid (the bench times part of a batch).
    func pairSolverSteps(_ steps: Int) throws -> Tensor {
        model.eval()
        defer { model.train() }
        return try noGrad {
            let v = try guidedVelocity(model, prompts: samplePrompts, guidance: config.pairs.guidance)
            let end = Float(steps) / Float(config.pairs.steps)
            let p = config.pairs.solverSettings
            let partial = SolverSettings(kind: p.kind, steps: steps, rtol: p.rtol, atol: p.atol).makeSolver()
            return try partial.solve(v, x0: sampleNoise, from: 0, to: end).x
        }
    }
}
