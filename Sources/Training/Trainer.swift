import Foundation
import Autograd
import Datasets
import Diffusion
import Distributed
import Formats
import Generation
import Reporting
import Flow
import Models
import NN
import TensorCore

/// Where a training step's batch comes from. Deterministic in `step`: a resumed run sees
/// exactly the batches an uninterrupted one would. `slice` picks rows of the global batch of
/// `size` (a data-parallel rank's part); they equal those rows of the whole batch.
public protocol TrainingSource {
    var itemShape: [Int] { get }
    func batch(step: Int, size: Int, slice: Range<Int>) throws -> (x0: Tensor, x1: Tensor, captions: [String])
}

extension TrainingSource {
    /// The whole batch.
    public func batch(step: Int, size: Int) throws -> (x0: Tensor, x1: Tensor, captions: [String]) {
        try batch(step: step, size: size, slice: 0..<size)
    }
}

/// Indices of an endless sequence of epochs, each a fresh permutation of 0..<count.
public struct EpochSampler {
    public let count: Int, seed: UInt64
    private var cache: (epoch: Int, perm: [Int])? = nil

    public init(count: Int, seed: UInt64) { self.count = count; self.seed = seed }

    public mutating func indices(step: Int, size: Int) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(size)
        for j in 0..<size {
            let p = step * size + j
            let epoch = p / count
            if cache?.epoch != epoch {
                var rng = RNG(seed: seed, counter: UInt64(epoch))
                cache = (epoch, rng.permutation(count))
            }
            out.append(cache!.perm[p % count])
        }
        return out
    }
}

/// 1-rectified flow data: x1 from the dataset, x0 independent Gaussian noise.
public final class DatasetSource: TrainingSource {
    public let dataset: Dataset
    let seed: UInt64
    var sampler: EpochSampler

    public init(dataset: Dataset, seed: UInt64) {
        self.dataset = dataset
        self.seed = seed
        sampler = EpochSampler(count: dataset.count, seed: seed &+ 0x5EED_DA7A)
    }

    public var itemShape: [Int] { dataset.itemShape }

    public func batch(step: Int, size: Int, slice: Range<Int>) throws -> (x0: Tensor, x1: Tensor, captions: [String]) {
        let idx = Array(sampler.indices(step: step, size: size)[slice])
        let b = try dataset.batch(indices: idx)
        let x1 = Tensor(shape: b.shape, storage: b.images)
        let noise = Storage(uninitializedCount: x1.count)
        // The step's noise stream, from the slice's first element: the whole batch's values.
        Philox(seed: seed &+ 0x0157_0000).fillNormal(noise.ptr, count: noise.count, stream: UInt64(step),
                                                      offset: slice.lowerBound * dataset.itemSize)
        return (Tensor(shape: b.shape, storage: noise), x1, b.captions)
    }
}

/// What a stage optimises.
public enum Objective {
    /// Regress v(x_t, t) on x1 - x0 along the straight line (teacher and reflow stages).
    case rectifiedFlow(TimeSampler, FlowLoss)
    /// Student prediction x_t + (1 - t) v(x_t, t) against x1 (t = 0: one-step distillation).
    case distill(TimeSampler, DistillationLoss)
    /// A diffusion teacher: eps (or v) regression at steps drawn uniformly from {0..T-1}, x0 the
    /// noise eps and x1 the clean data (see `DiffusionTeacher` for the time input).
    case diffusion(DiffusionTeacher)
}

public struct TrainerOptions {
    public var stage: String
    public var section: TrainSettings
    public var seed: UInt64
    public var run: RunFolder
    public var samplePrompts: [String]
    public var sampleSolver: ODESolver
    public var sampleGuidance: Float
    /// The sampler of the grids when the objective is `.diffusion` (the ODE solver is not used then).
    public var sampleDiffusionSampler: DiffusionSampler? = nil
    public var gridColumns: Int
    /// Stop (as if killed) after this step: used by tests of resume.
    public var stopAfter: Int? = nil
    /// Extra metadata for the stage's checkpoints (e.g. the chain's `config_hash`, the pairs a
    /// student was distilled from).
    public var metadata: [String: String] = [:]
    /// The ranks that share each global batch (`mpirun -np K`); rank 0 alone writes files.
    public var communicator: Communicator = .world
    /// One-step distillation only: flow-guided distillation's data-free term (`flowGuidedLoss`)
    /// with this frozen flow (the one that made the pairs) and weight, on fresh noise each step.
    public var flowGuide: (model: FlowModel, weight: Float)? = nil
    /// Adapter stages (LoRA): the module whose parameters are trained, checkpointed and resumed
    /// instead of the model's (the model's own weights stay frozen), and the writer of the
    /// stage's product from it (under EMA when there is one). nil: the whole model.
    public var trained: Module? = nil
    public var exportOutput: ((URL, Int) throws -> Void)? = nil

    public init(stage: String, section: TrainSettings, seed: UInt64, run: RunFolder, samplePrompts: [String],
                sampleSolver: ODESolver, sampleGuidance: Float, gridColumns: Int) {
        self.stage = stage; self.section = section; self.seed = seed; self.run = run
        self.samplePrompts = samplePrompts; self.sampleSolver = sampleSolver
        self.sampleGuidance = sampleGuidance; self.gridColumns = gridColumns
    }
}

/// The training loop shared by every stage: AdamW with warmup and decay, gradient clipping,
/// EMA, caption dropout, metrics, sample grids, and atomic checkpoints that resume exactly
/// (all randomness is a function of (seed, step), so model, optimizer, EMA and the step are
/// the whole state).
public final class Trainer {
    public let model: FlowModel
    public let source: TrainingSource
    public let objective: Objective
    public let options: TrainerOptions
    /// What the optimizer updates: the model, or the adapters of `options.trained`.
    let trained: Module
    let optimizer: AdamW
    let ema: EMA?
    let schedule: LRSchedule

    public init(model: FlowModel, source: TrainingSource, objective: Objective, options: TrainerOptions) {
        self.model = model; self.source = source; self.objective = objective; self.options = options
        let s = options.section
        trained = options.trained ?? model
        optimizer = AdamW(trained.namedParameters(), lr: s.schedule.base, weightDecay: Double(s.weightDecay))
        ema = s.emaDecay > 0 ? EMA(trained.namedParameters(), decay: s.emaDecay) : nil
        ema?.warmup = s.emaWarmup
        schedule = s.schedule
    }

    public var checkpointURL: URL { URL(fileURLWithPath: options.run.checkpointsPath + "/\(options.stage).last.safetensors") }
    /// The stage's product: EMA weights (or raw weights without EMA) after the last step.
    public var outputURL: URL { URL(fileURLWithPath: options.run.file("\(options.stage).safetensors")) }

    /// Trains to `section.steps`, resuming from the last checkpoint when `resume` is set and one
    /// exists. Returns the output checkpoint's URL.
    @discardableResult
    public func run(resume: Bool) throws -> URL {
        let s = options.section
        var start = 0
        let fm = FileManager.default
        let comm = options.communicator, root = comm.isRoot
        guard s.batchSize >= comm.size else {
            throw ModelError("\(options.stage): batch_size \(s.batchSize) is smaller than the \(comm.size) ranks sharing it; raise it or use fewer ranks")
        }
        if root {
            try fm.createDirectory(atPath: options.run.checkpointsPath, withIntermediateDirectories: true)
            try fm.createDirectory(atPath: options.run.samplesPath, withIntermediateDirectories: true)
            // Temporaries of writes killed with SIGKILL (their writer is dead): never read, only
            // space. Rank 0 alone: a process id means nothing on another node.
            for dir in [options.run.path, options.run.checkpointsPath, options.run.samplesPath] {
                for name in removeStaleTemporaries(in: dir) { Log.note("removed \(dir)/\(name), left by a killed write") }
            }
        }
        let stateURL = TrainingState.url(besideCheckpoint: checkpointURL)
        if resume && (fm.fileExists(atPath: stateURL.path) || fm.fileExists(atPath: checkpointURL.path)) {
            let (meta, state) = try loadTrainingCheckpoint(into: trained, from: checkpointURL)
            if let spec = meta["model_spec"], spec != model.spec.json() {
                // The metadata came from the state file (or, for version-1 states, the weights file).
                let from = state.weights != nil ? stateURL.path : checkpointURL.path
                throw ModelError("checkpoint \(from) was made for another model (\(spec)); remove it or drop --resume")
            }
            do {
                if let opt = state.optimizer { try optimizer.importState(opt) }
                if let e = state.ema, let ema { try ema.importState(e) }
            } catch let e as CheckpointError where !e.description.hasPrefix(stateURL.path) {
                throw CheckpointError("training state \(stateURL.path): \(e.description)")
            }
            start = state.step
            if root { try MetricsLog.truncate(path: options.run.metricsPath, afterStep: start, stage: options.stage) }
            Log.info("resuming \(options.stage) from step \(start) (\(checkpointURL.path))")
        } else if !resume && fm.fileExists(atPath: checkpointURL.path) {
            Log.note("starting \(options.stage) from scratch; pass --resume to continue \(checkpointURL.path)")
        }
        try checkRanksAgree(step: start)
        if comm.isDistributed && model.spec.dropout > 0 && root {
            Log.warning("\(options.stage): model.dropout \(model.spec.dropout) draws its masks from each rank's own generator: \(comm.size) ranks will not equal one process")
        }
        let metrics = root ? try options.run.openMetrics() : nil
        let progress = Progress(total: s.steps, label: options.stage, startStep: start,
                                output: root ? nil : { _ in })
        let params = trained.parameters()
        var lastLoss = Double.nan
        var step = start
        let started = Date()
        var reduceSeconds = 0.0, waitSeconds = 0.0, reduceBytes = 0
        let share = Float(comm.slice(of: s.batchSize).count) / Float(s.batchSize)
        while step < s.steps {
            optimizer.lr = schedule.lr(at: step)
            var loss = try trainStep(step: step)
            if comm.isDistributed {
                // The global batch's mean gradient and loss, the same on every rank. The barrier
                // first separates waiting for the slowest rank from the transfer in the metrics.
                let t0 = Date()
                comm.barrier()
                let t1 = Date()
                var extra = [loss]
                reduceBytes = averageGradients(params, weight: share, extra: &extra, comm: comm)
                waitSeconds += t1.timeIntervalSince(t0)
                reduceSeconds += Date().timeIntervalSince(t1)
                loss = extra[0]
            }
            let gnorm = s.gradClip > 0 ? clipGradNorm(params, maxNorm: Double(s.gradClip)) : gradNorm(params)
            optimizer.step()
            optimizer.zeroGrad()
            ema?.update()
            step += 1
            lastLoss = Double(loss)
            guard lastLoss.isFinite else {
                throw ModelError("\(options.stage): loss became \(lastLoss) at step \(step); lower lr (now \(optimizer.lr)) or check the data")
            }
            // The loss is computed before the update, so it can stay finite while the update
            // itself overflows: check the weights too (a pass over them, ~1 ms for 10 MB).
            try checkWeightsFinite(step: step)
            if let metrics, step % s.logEvery == 0 || step == s.steps {
                let elapsed = Date().timeIntervalSince(started)
                var values = [("loss", lastLoss), ("grad_norm", gnorm), ("lr", optimizer.lr),
                              ("steps_per_s", Double(step - start) / max(elapsed, 1e-9))]
                if comm.isDistributed {
                    // Seconds per step waiting for the slowest rank, then in the allreduce itself.
                    values += [("ranks", Double(comm.size)), ("allreduce_bytes", Double(reduceBytes)),
                               ("wait_s_per_step", waitSeconds / Double(step - start)),
                               ("allreduce_s_per_step", reduceSeconds / Double(step - start))]
                }
                try metrics.log(step: step, values, extra: [("stage", .string(options.stage))])
            }
            progress.update(step: step, values: [("loss", lastLoss), ("lr", optimizer.lr)])
            if root && s.sampleEvery > 0 && step % s.sampleEvery == 0 && step < s.steps { try writeSamples(step: step) }
            if root && s.checkpointEvery > 0 && step % s.checkpointEvery == 0 && step < s.steps { try saveCheckpoint(step: step) }
            if let stop = options.stopAfter, step >= stop { progress.finish(); return checkpointURL }
        }
        progress.finish()
        if root {
            try saveCheckpoint(step: step)
            try writeSamples(step: step)
            if let export = options.exportOutput {
                try withEMA { try export(outputURL, step) }
            } else {
                try withEMA { try model.save(to: outputURL, stage: options.stage, step: step, extra: options.metadata) }
            }
        }
        return outputURL
    }

    /// Stops every rank, with the same message, unless all start from rank 0's step and weights
    /// (ranks on nodes that see different run folders would otherwise train apart silently).
    func checkRanksAgree(step: Int) throws {
        let comm = options.communicator
        guard comm.isDistributed else { return }
        var sum = 0.0
        for p in model.parameters() { for i in 0..<p.count { sum += Double(p.storage.ptr[i]) * Double(i % 7 + 1) } }
        let mine = [Double(step), sum]
        let hi = comm.allreduce(mine, .max), lo = comm.allreduce(mine, .min)
        guard hi == lo else {
            throw ModelError("\(options.stage): the \(comm.size) ranks start from different states (steps \(Int(lo[0]))...\(Int(hi[0]))): every rank must see the same run folder (a shared file system) and config")
        }
    }

    /// One forward/backward pass; returns the loss value.
    /// Every draw is made for the whole global batch and this rank keeps its slice, so the
    /// ranks together see exactly what one process sees.
    func trainStep(step: Int) throws -> Float {
        let s = options.section
        let n = s.batchSize, slice = options.communicator.slice(of: n)
        let (x0, x1, sliceCaptions) = try source.batch(step: step, size: n, slice: slice)
        var captions = sliceCaptions
        var rng = RNG(seed: options.seed &+ 0x7133, counter: UInt64(step) << 8)
        if s.captionDropout > 0 {
            let u = Storage(uninitializedCount: n)
            rng.uniform(u.ptr, count: n)
            for (j, i) in slice.enumerated() where u.ptr[i] < s.captionDropout { captions[j] = "" }
        }
        model.train()
        let text = try model.encode(captions)
        let v: Velocity = { x, t in try self.model.velocity(x, t: t, text: text) }
        let loss: Tensor
        switch objective {
        case .rectifiedFlow(let sampler, let flowLoss):
            let t = rows(try sampler.sample(n, rng: &rng), slice)
            loss = try flowLoss(model: v, x0: x0, x1: x1, t: t)
        case .distill(let sampler, let dl):
            let t = rows(try sampler.sample(n, rng: &rng), slice)
            let pairs = try distillationLoss(model: v, x0: x0, x1: x1, t: t, loss: dl)
            if let guide = options.flowGuide {
                loss = try pairs + guide.weight * (try flowGuidedTerm(guide.model, captions: captions, step: step, n: n, slice: slice, v: v, rng: &rng))
            } else {
                loss = pairs
            }
        case .diffusion(let teacher):
            loss = try teacher.loss(net: v, data: x1, noise: x0, steps: teacher.sampleSteps(n, rng: &rng))
        }
        loss.backward()
        return loss.item
    }

    /// `flowGuidedLoss` on fresh noise (its own stream, drawn for the whole global batch; this
    /// rank keeps its slice) with the batch's captions and t ~ U[0, 1].
    func flowGuidedTerm(_ guide: FlowModel, captions: [String], step: Int, n: Int, slice: Range<Int>, v: @escaping Velocity,
                        rng: inout RNG) throws -> Tensor {
        let item = source.itemShape.reduce(1, *)
        let z = Storage(uninitializedCount: slice.count * item)
        Philox(seed: options.seed &+ 0xF10E_0000).fillNormal(z.ptr, count: z.count, stream: UInt64(step), offset: slice.lowerBound * item)
        let u = Storage(uninitializedCount: n)
        rng.uniform(u.ptr, count: n)
        let t = rows(Tensor(shape: [n], storage: u), slice)
        guide.eval()
        let text = try noGrad { try guide.encode(captions) }
        let g: Velocity = { x, t in try guide.velocity(x, t: t, text: text) }
        return try flowGuidedLoss(student: v, guide: g, z: Tensor(shape: [slice.count] + source.itemShape, storage: z), t: t)
    }

    func saveCheckpoint(step: Int) throws {
        let state = TrainingState(step: step, optimizer: optimizer.exportState(), ema: ema?.exportState())
        try saveTrainingCheckpoint(trained, state: state, metadata: model.metadata(stage: options.stage, step: step, extra: options.metadata),
                                   to: checkpointURL)
    }

    /// Throws, naming the stage, step and tensor, when a weight is NaN or infinite: such weights
    /// are never written (the last checkpoint stays the last good one).
    func checkWeightsFinite(step: Int) throws {
        for (name, t) in trained.stateDict() {
            if let i = Safetensors.firstNonFinite(t.storage.ptr, t.count) {
                throw ModelError("\(options.stage): weights became non-finite at step \(step) ('\(name)' holds \(t.storage.ptr[i])); nothing was written for this step; lower lr (now \(optimizer.lr)) or check the data")
            }
        }
    }

    func withEMA<T>(_ body: () throws -> T) rethrows -> T {
        guard let ema else { return try body() }
        return try ema.swapped(body)
    }

    func writeSamples(step: Int) throws {
        let prompts = options.samplePrompts
        guard !prompts.isEmpty else { return }
        let x0 = itemNoise(seed: options.seed &+ 0x5A3F1E, first: 0, count: prompts.count, itemShape: source.itemShape)
        var method = SampleMethod.ode(options.sampleSolver)
        if case .diffusion(let teacher) = objective {
            guard let sampler = options.sampleDiffusionSampler else {
                throw ModelError("\(options.stage): a diffusion objective needs a diffusion sampler for its sample grids")
            }
            method = .diffusion(teacher, sampler)
        }
        let imgs = try withEMA {
            try generate(model, x0: x0, prompts: prompts, method: method, guidance: options.sampleGuidance).images
        }
        let path = options.run.samplesPath + "/\(options.stage)_\(String(format: "%06d", step)).png"
        try writeSampleImage(path: path, images: imgs, columns: options.gridColumns)
    }

}
