import Foundation
import Experiments
import Adapters
import ConfigKit
import Datasets
import Formats
import Reporting
import Training
import Flow
import Models
import NN
import Diffusion

// `reflow-train --stage lora`: low-rank adapters on a frozen base (teacher, 2-RF or student) trained
// with the base's own objective on dataset items or pairs, some transformed (the change to learn).
// A diffusion teacher's adapters learn its eps/v loss on dataset items, as LoRAs for Stable
// Diffusion do; the 2-RF and student started from its weights then take them unchanged.
// Only A and B are optimised; the product is the adapter file `<run>/<stage>.safetensors`.

extension Pipeline {
    /// A flow LoRA's training items: `lora.classes` kept, `lora.transform` on `lora.transform_classes`.
    public func loraDataset(_ d: Dataset) throws -> Dataset {
        try d.transformed(keeping: config.lora.classes, transform: config.lora.transform, classes: config.lora.transformClasses, key: "lora")
    }

    /// Hash of everything the adapters depend on (resume refuses another config).
    public func loraConfigHash(stage: String, initFrom: String, pairs: [String]) throws -> String {
        var l = config.lora
        l.train = weightsRelevant(l.train)
        l.pairs = []
        return chainHash([stage, "seed=\(config.seed)", dumpConfig(l), dumpConfig(config.dataset),
                          "init=" + (try SHA256.hex(file: initFrom))] + (try pairs.map(pairsIdentity)))
    }

    /// Trains a LoRA on the frozen checkpoint `initFrom`. `pairs` (or `lora.pairs`) feed the
    /// distill objective. Writes `<run>/<stage>.safetensors` (the adapter file) and returns it.
    @discardableResult
    public func trainLoRA(initFrom: String, stage: String = "lora", pairs: [String] = [], resume: Bool,
                          stopAfter: Int? = nil) throws -> URL {
        let l = config.lora
        let (model, train) = try loadInitModel(initFrom, role: "LoRA base")
        let baseMeta = try Safetensors.readMetadata(URL(fileURLWithPath: initFrom))
        let diffusion = try DiffusionTeacher(metadata: baseMeta, source: initFrom)
        let pairFiles = pairs.isEmpty ? l.pairs : pairs
        if let diffusion, !pairFiles.isEmpty || l.objective == .distill {
            throw ModelError("LoRA base \(initFrom) is a diffusion teacher (\(diffusion.name)): its adapters train with its own \(diffusion.prediction) loss on dataset items; "
                             + (pairFiles.isEmpty ? "lora.objective distill is for students" : "pairs (--input, lora.pairs) are for flows (2-RF, student)"))
        }
        let studentSteps = baseMeta[StudentKey.studentSteps].flatMap { Int($0) }
        let objectiveName: LoRAObjective = l.objective == .auto ? (studentSteps != nil ? .distill : .flow) : l.objective
        // The base is frozen: its weights get no gradient, only the adapters do.
        for p in model.parameters() { p.requiresGrad = false }
        let set = try LoRASet(model: model, rank: l.rank, alpha: l.alpha, targets: l.targets,
                              seed: seed &+ 0x10AA_0000 &+ stageSalt(stage))
        try set.attach(to: model)
        let source: TrainingSource
        let objective: Objective
        var options = trainerOptions(stage: stage, section: l.train, prompts: samplePrompts(train))
        let pairSource = try pairFiles.isEmpty ? nil : pairsSource(
            pairFiles, seed: seed &+ 0x10AA_D157 &+ stageSalt(stage), for: model, base: initFrom, classes: l.classes,
            transform: l.transform, transformClasses: l.transformClasses, dataset: train, key: "lora")
        let changed = l.transform == .none ? "" : ", \(l.transform.rawValue) on classes \(l.transformClasses.isEmpty ? "all" : l.transformClasses.map(String.init).joined(separator: ","))"
        var what = pairFiles.joined(separator: ", ") + " (pairs)"
        switch objectiveName {
        case .flow, .auto:  // a teacher's loss on dataset items, or a 2-RF's (the same loss) on coupled pairs
            if let pairSource { source = pairSource } else {
                let data = try loraDataset(train)
                source = DatasetSource(dataset: data, seed: seed &+ 0x10AA_DA7A &+ stageSalt(stage))
                what = "\(data.count) items of \(train.name)" + (l.classes.isEmpty ? "" : " (classes \(l.classes))")
            }
            if let diffusion {
                objective = .diffusion(diffusion)
                options.sampleDiffusionSampler = try config.sample.sampler.make(for: diffusion, steps: config.sample.steps)
            } else {
                objective = .rectifiedFlow(l.train.timeSampler, l.flowLoss)
            }
        case .distill:
            guard let pairSource else {
                throw ModelError("lora: objective distill needs pairs: --input file.h5 or lora.pairs (make them with reflow-gen-pairs, e.g. from the teacher with --lora)")
            }
            let k = studentSteps ?? config.distill.studentSteps
            source = pairSource
            objective = .distill(k == 1 ? .t0 : .discrete(steps: k), try distillationLossFromConfig())
            options.sampleSolver = Euler(steps: k)
            options.sampleGuidance = 1
            what = "\(what), a \(k)-step student"
        }
        let hash = try loraConfigHash(stage: stage, initFrom: initFrom, pairs: pairFiles)
        try checkResumable(stage: stage, hash: hash, resume: resume)
        let sha = try SHA256.hex(file: initFrom)
        Log.info("\(stage): \(diffusion.map { "diffusion (\($0.prediction))" } ?? (objectiveName == .distill ? "distill" : "flow")) objective on \(what)\(changed)")
        Log.info("\(stage): rank \(l.rank), alpha \(l.alpha), \(set.layers.count) layers (\(l.targets.map(\.rawValue).joined(separator: ", "))), \(set.parameters().reduce(0) { $0 + $1.count }) trainable parameters beside \(model.parameterCount) frozen ones of \(initFrom); run folder \(run.path)")
        options.stopAfter = stopAfter
        options.metadata = [ChainKey.configHash: hash, "init_from": initFrom, "init_sha256": sha]
        options.trained = set
        options.exportOutput = { url, step in
            try set.save(to: url, base: initFrom, baseSHA256: sha, baseStage: baseMeta["stage"] ?? "unknown",
                         extra: ["stage": stage, "step": String(step), "objective": diffusion == nil ? objectiveName.rawValue : "diffusion", ChainKey.configHash: hash,
                                 "lora_transform": l.transform.rawValue, "lora_classes": "\(l.classes)", "lora_transform_classes": "\(l.transformClasses)"])
        }
        return try Trainer(model: model, source: source, objective: objective, options: options).run(resume: resume)
    }
}

