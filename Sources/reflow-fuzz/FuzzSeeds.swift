import Foundation
import Adapters
import Formats
import Models
import NN
import TensorCore
import TripletStore

// The seed corpora under Tests/Fuzz/seeds come from here (`reflow-fuzz seeds DIR`), so they
// follow the formats as they change: small valid files the fuzzer mutates from. Configs are
// copies of experiments/*.yaml plus a few --set overrides (written by scripts/fuzz.sh).

enum FuzzSeeds {
    static let tokenizer = Tokenizer(captions: ["red circle", "blue circle"], maxTokens: 4)

    /// The seed U-Net's spec: attention-free, so its layers are linear and conv ones.
    static var unetSpec: ModelSpec {
        var unet = ModelSpec(kind: .unet, channels: 1, height: 4, width: 4, vocabularySize: tokenizer.vocabularySize)
        unet.levels = [4]; unet.attentionLevels = []; unet.groups = 2; unet.timeEmbedding = 8
        unet.maxTokens = 4; unet.textWidth = 8; unet.textLayers = 1; unet.textHeads = 2
        return unet
    }

    /// The model adapter files are loaded for (the LoRA seed fits it).
    static func loraBase() throws -> FlowModel { try FlowModel(spec: unetSpec, tokenizer: tokenizer, seed: 1) }

    static func write(to dir: String) throws {
        for t in FuzzTarget.allCases {
            try FileManager.default.createDirectory(atPath: dir + "/" + t.rawValue, withIntermediateDirectories: true)
        }
        let tok = tokenizer
        var mlp = ModelSpec(kind: .mlp, channels: 1, height: 1, width: 2, vocabularySize: tok.vocabularySize)
        mlp.hidden = 8; mlp.depth = 1; mlp.timeEmbedding = 8
        mlp.maxTokens = 4; mlp.textWidth = 8; mlp.textLayers = 1; mlp.textHeads = 2
        for (name, spec) in [("flow-mlp", mlp), ("flow-unet", unetSpec)] {
            let model = try FlowModel(spec: spec, tokenizer: tok, seed: 1)
            try model.save(to: URL(fileURLWithPath: "\(dir)/safetensors/\(name).safetensors"), stage: "teacher", step: 3)
            if spec.kind == .mlp {
                // A resumable training checkpoint: weights, AdamW moments and EMA in one file.
                let state = TrainingState(step: 3, rngs: ["data": RNG(seed: 5)], optimizer: AdamW(model).exportState(),
                                          ema: EMA(model, decay: 0.9).exportState())
                try saveTrainingCheckpoint(model, state: state, metadata: model.metadata(stage: "teacher", step: 3),
                                           to: URL(fileURLWithPath: "\(dir)/safetensors/\(name).last.safetensors"))
                try FileManager.default.removeItem(atPath: "\(dir)/safetensors/\(name).last.safetensors")
            }
        }
        // An adapter file for the U-Net (the base the LoRA loader is fuzzed against), B non-zero.
        let lora = try LoRASet(model: try loraBase(), rank: 2, alpha: 2, targets: LoRATarget.allCases, seed: 3)
        for (_, a) in lora.layers { for i in 0..<a.b.count { a.b.storage.ptr[i] = 0.01 * Float(i % 5) } }
        try lora.save(to: URL(fileURLWithPath: "\(dir)/safetensors/lora-unet.safetensors"), base: "flow-unet.safetensors",
                      baseSHA256: String(repeating: "0", count: 64), baseStage: "teacher")
        for arch in EvaluatorArch.allCases {
            let c = makeClassifier(arch, inputShape: [1, 8, 8], classes: 3, width: 8, seed: 2)
            try saveCheckpoint(c, metadata: c.metadata(), to: URL(fileURLWithPath: "\(dir)/safetensors/evaluator-\(arch.rawValue).safetensors"))
        }

        let path = dir + "/triplets/pairs.h5"
        try? FileManager.default.removeItem(atPath: path)
        let w = try TripletWriter(path: path, itemShape: [1, 2, 2], attributes: ["seed": "0", "solver": "euler"],
                                  rowsPerChunk: 2, compression: 1)
        let texts = ["red circle", "blue circle", "", "red"]
        var rng = RNG(seed: 7)
        let noise = Storage(uninitializedCount: 16), image = Storage(uninitializedCount: 16)
        rng.normal(noise.ptr, count: 16)
        for i in 0..<16 { image.ptr[i] = max(-1, min(1, noise.ptr[i] * 0.5)) }
        try w.append(texts: texts, noise: noise, images: image)
        try w.close()
    }
}
