import Foundation
import Autograd
import ConfigKit
import Datasets
import Diffusion
import Distributed
import Formats
import Generation
import Reporting
import Training
import Flow
import Models
import NN
import TensorCore

/// One experiment: its config, its run folder, and the stages that read and write it.
public final class Pipeline {
    public let config: ExperimentConfig
    public let run: RunFolder

    /// `recordConfig`: write the resolved config into the run folder (commands that train or
    /// generate); commands that only read a run (scoring, reports) pass false, so they never
    /// replace the config the run was made with.
    public init(config: ExperimentConfig, recordConfig: Bool = true) throws {
        self.config = config
        Runtime.threads = config.threads
        run = try RunFolder(root: config.outputDir, name: config.name)
        if recordConfig && Communicator.world.isRoot { try run.writeConfig(dumpConfig(config)) }  // mpirun: rank 0 writes
    }

    public var seed: UInt64 { config.seedValue }

    public func loadDataset(_ split: Split) throws -> Dataset { try config.loadDataset(split) }

    public func tokenizer(for train: Dataset) -> Tokenizer { config.tokenizer(for: train) }

    public func modelSpec(tokenizer: Tokenizer, itemShape: [Int]) -> ModelSpec {
        config.modelSpec(tokenizer: tokenizer, itemShape: itemShape)
    }

    /// Prompts for sample grids: the config's, else one caption per class (cycled to fill a grid).
    public func samplePrompts(_ d: Dataset) -> [String] {
        if !config.sample.prompts.isEmpty { return config.sample.prompts }
        let firsts = d.classCaptions.compactMap { $0.first }
        guard !firsts.isEmpty else { return Array(d.captions.prefix(config.sample.gridColumns * 4)) }
        let cols = config.sample.gridColumns
        if d.itemShape == [2, 1, 1] {  // toy2d: many points per cluster for a scatter plot
            return (0..<512).map { firsts[$0 % firsts.count] }
        }
        let rows: Int = max(1, min(8, (firsts.count * 2 + cols - 1) / cols))
        var out: [String] = []
        for i in 0..<(rows * cols) {
            let k: Int = (i / cols + (i % cols) * rows) % firsts.count
            out.append(firsts[k])
        }
        return out
    }

    public func trainerOptions(stage: String, section: TrainSection, prompts: [String]) -> TrainerOptions {
        TrainerOptions(stage: stage, section: section.settings, seed: seed, run: run, samplePrompts: prompts,
                       sampleSolver: config.sample.solverSettings(tolerancesFrom: config.pairs).makeSolver(),
                       sampleGuidance: config.sample.guidance,
                       gridColumns: prompts.count == 512 ? 1 : config.sample.gridColumns)
    }

    /// Stage 1: the 1-rectified-flow teacher on (independent noise, data). Returns its weights.
    @discardableResult
    public func trainTeacher(resume: Bool, stopAfter: Int? = nil) throws -> URL {
        let train = try loadDataset(.train)
        let tok = tokenizer(for: train)
        let spec = modelSpec(tokenizer: tok, itemShape: train.itemShape)
        let model = try FlowModel(spec: spec, tokenizer: tok, seed: seed)
        let diffusion = try config.teacher.diffusionTeacher()
        let kind = diffusion.map { "diffusion teacher (\($0.name))" } ?? "teacher"
        Log.info("\(kind): \(train.name) (\(train.count) items \(train.itemShape)), \(spec.kind) with \(model.parameterCount) parameters, vocabulary \(tok.vocabularySize) words; run folder \(run.path)")
        var options = trainerOptions(stage: "teacher", section: config.teacher.train, prompts: samplePrompts(train))
        options.stopAfter = stopAfter
        options.metadata = [ChainKey.configHash: teacherConfigHash]
        try checkResumable(stage: "teacher", hash: teacherConfigHash, resume: resume)
        var objective = Objective.rectifiedFlow(config.teacher.timeSampler, config.teacher.flowLoss)
        if let diffusion {
            // The metadata names kind, prediction and schedule: every tool samples it from these.
            objective = .diffusion(diffusion)
            options.metadata.merge(diffusion.metadata) { _, new in new }
            options.sampleDiffusionSampler = try config.sample.sampler.make(for: diffusion, steps: config.sample.steps)
        }
        let trainer = Trainer(model: model, source: DatasetSource(dataset: train, seed: seed), objective: objective, options: options)
        return try trainer.run(resume: resume)
    }
}
