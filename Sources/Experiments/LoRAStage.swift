import Foundation
import Adapters
import Autograd
import ConfigKit
import Datasets
import Formats
import Reporting
import Training
import TripletStore
import Flow
import Models
import NN
import TensorCore

// `reflow-train --stage lora`: low-rank adapters on a frozen base checkpoint (teacher, 2-RF or
// student), trained with the base's own objective: the rectified-flow loss on dataset items
// (optionally a subset of classes, some transformed: the change to learn), or for a student
// the distillation loss on (noise, image) pairs. Only A and B are optimised; the product is an
// adapter file (`<run>/<stage>.safetensors`) that `--lora` applies at load time.

extension Pipeline {
    /// The training items of a flow LoRA: `lora.classes` kept (all when empty), and
    /// `lora.transform` applied to the items of `lora.transform_classes` (all kept when empty).
    public func loraDataset(_ d: Dataset) throws -> Dataset {
        try d.transformed(keeping: config.lora.classes, transform: config.lora.transform, classes: config.lora.transformClasses,
                          key: "lora")
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
        if baseMeta["teacher_kind"] == "diffusion" {
            throw ModelError("LoRA base \(initFrom) is a diffusion teacher: --stage lora trains adapters on flows (teacher, 2-RF, student) only")
        }
        let studentSteps = baseMeta[StudentKey.studentSteps].flatMap { Int($0) }
        let objectiveName: LoRAObjective = l.objective == .auto ? (studentSteps != nil ? .distill : .flow) : l.objective
        let pairFiles = pairs.isEmpty ? l.pairs : pairs
        // The base is frozen: its weights get no gradient, only the adapters do.
        for p in model.parameters() { p.requiresGrad = false }
        let set = try LoRASet(model: model, rank: l.rank, alpha: l.alpha, targets: l.targets,
                              seed: seed &+ 0x10AA_0000 &+ stageSalt(stage))
        try set.attach(to: model)
        let source: TrainingSource
        let objective: Objective
        var options = trainerOptions(stage: stage, section: l.train, prompts: samplePrompts(train))
        var pairSource: TrainingSource? = nil
        if !pairFiles.isEmpty {
            guard l.classes.isEmpty else {
                throw ModelError("lora.classes picks dataset items, and this LoRA learns from pairs (\(pairFiles.joined(separator: ", "))): set lora.classes=[] (lora.transform and lora.transform_classes do apply, to the pairs' images)")
            }
            let triplets = try TripletSource(paths: pairFiles, seed: seed &+ 0x10AA_D157 &+ stageSalt(stage))
            guard triplets.itemShape == model.spec.itemShape else {
                throw ModelError("triplet file \(pairFiles[0]) holds items of shape \(triplets.itemShape), but \(initFrom) makes \(model.spec.itemShape)")
            }
            pairSource = l.transform == .none ? triplets
                : try TransformedPairs(triplets, transform: l.transform, classes: l.transformClasses, dataset: train, key: "lora")
        }
        let changed = l.transform == .none ? "" : ", \(l.transform.rawValue) on classes \(l.transformClasses.isEmpty ? "all" : l.transformClasses.map(String.init).joined(separator: ","))"
        let from = pairFiles.isEmpty ? "" : "\(pairFiles.joined(separator: ", ")) (pairs)"
        switch objectiveName {
        case .flow, .auto:
            // A teacher's objective on dataset items, or a 2-RF's (the same loss) on coupled pairs.
            if let pairSource {
                source = pairSource
                Log.info("\(stage): flow objective on \(from)\(changed)")
            } else {
                let data = try loraDataset(train)
                source = DatasetSource(dataset: data, seed: seed &+ 0x10AA_DA7A &+ stageSalt(stage))
                Log.info("\(stage): flow objective on \(data.count) items of \(train.name)\(l.classes.isEmpty ? "" : " (classes \(l.classes))")\(changed)")
            }
            objective = .rectifiedFlow(l.train.timeSampler, l.flowLoss)
        case .distill:
            guard let pairSource else {
                throw ModelError("lora: objective distill needs pairs: --input file.h5 or lora.pairs (make them with reflow-gen-pairs, e.g. from the teacher with --lora)")
            }
            let k = studentSteps ?? config.distill.studentSteps
            source = pairSource
            objective = .distill(k == 1 ? .t0 : .discrete(steps: k), try distillationLossFromConfig())
            options.sampleSolver = Euler(steps: k)
            options.sampleGuidance = 1
            Log.info("\(stage): distill objective (\(k)-step student) on \(from)\(changed)")
        }
        let hash = try loraConfigHash(stage: stage, initFrom: initFrom, pairs: pairFiles)
        try checkResumable(stage: stage, hash: hash, resume: resume)
        let sha = try SHA256.hex(file: initFrom)
        let count = set.parameters().reduce(0) { $0 + $1.count }
        Log.info("\(stage): rank \(l.rank), alpha \(l.alpha), \(set.layers.count) layers (\(l.targets.map(\.rawValue).joined(separator: ", "))), \(count) trainable parameters beside \(model.parameterCount) frozen ones of \(initFrom); run folder \(run.path)")
        options.stopAfter = stopAfter
        options.metadata = [ChainKey.configHash: hash, "init_from": initFrom, "init_sha256": sha]
        options.trained = set
        options.exportOutput = { url, step in
            try set.save(to: url, base: initFrom, baseSHA256: sha, baseStage: baseMeta["stage"] ?? "unknown",
                         extra: ["stage": stage, "step": String(step), "objective": objectiveName.rawValue,
                                 "lora_transform": l.transform.rawValue, ChainKey.configHash: hash,
                                 "lora_classes": l.classes.map(String.init).joined(separator: ","),
                                 "lora_transform_classes": l.transformClasses.map(String.init).joined(separator: ",")])
        }
        return try Trainer(model: model, source: source, objective: objective, options: options).run(resume: resume)
    }
}

