import Foundation
import Formats
import Autograd
import NN
import TensorCore

/// A text-to-image velocity model: tokenizer + text encoder + velocity network, rebuilt from a
/// checkpoint's metadata alone. Weight names: "text.*" and "net.*".
public final class FlowModel: Module {
    public let spec: ModelSpec
    public let tokenizer: Tokenizer
    public let text: TextEncoder
    public let net: VelocityNetwork
    public var isTraining = true

    public init(spec: ModelSpec, tokenizer: Tokenizer, seed: UInt64) throws {
        try spec.validate()
        guard spec.vocabularySize == tokenizer.vocabularySize, spec.maxTokens == tokenizer.maxTokens else {
            throw ModelError("model spec expects \(spec.vocabularySize) words / \(spec.maxTokens) tokens, tokenizer has \(tokenizer.vocabularySize) / \(tokenizer.maxTokens)")
        }
        self.spec = spec
        self.tokenizer = tokenizer
        var rng = RNG(seed: seed)
        text = TextEncoder(vocabularySize: spec.vocabularySize, maxTokens: spec.maxTokens, width: spec.textWidth,
                           layers: spec.textLayers, heads: spec.textHeads, rng: &rng)
        switch spec.kind {
        case .mlp: net = MLPVelocity(spec: spec, rng: &rng)
        case .unet: net = UNet(spec: spec, rng: &rng)
        }
    }

    public func children() -> [(String, Module)] { [("text", text), ("net", net)] }

    public func encode(_ prompts: [String]) throws -> EncodedText { try text(TokenBatch(prompts, tokenizer: tokenizer)) }

    /// v(x, t, text): x [B, C, H, W], t [B].
    public func velocity(_ x: Tensor, t: Tensor, text: EncodedText) throws -> Tensor {
        guard Array(x.shape.dropFirst()) == spec.itemShape else {
            throw ShapeError(op: "FlowModel", "input \(x.shape) does not match the model's item shape \(spec.itemShape)")
        }
        return try net(x, t: t, text: text)
    }

    // MARK: checkpoints

    public func metadata(stage: String, step: Int, extra: [String: String] = [:]) -> [String: String] {
        var m = extra
        m["model_spec"] = spec.json()
        m["tokenizer"] = tokenizer.serialized()
        m["stage"] = stage
        m["step"] = String(step)
        m["time_convention"] = "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0; v = x1 - x0"
        return m
    }

    public func save(to url: URL, stage: String, step: Int, extra: [String: String] = [:]) throws {
        try saveCheckpoint(self, metadata: metadata(stage: stage, step: step, extra: extra), to: url)
    }

    /// Rebuilds the model described by a checkpoint and loads its weights. The file is checked
    /// whole first (checksum, finite values), then the metadata (ranges, divisibility, size cap),
    /// and only then is a network allocated; every error names the file.
    public static func load(from url: URL) throws -> (model: FlowModel, metadata: [String: String]) {
        let archive = try readCheckpointArchive(url)
        guard let specJSON = archive.metadata["model_spec"], let tokJSON = archive.metadata["tokenizer"] else {
            throw ModelError("checkpoint \(url.path): metadata has no 'model_spec' and 'tokenizer': not a reflow model checkpoint")
        }
        let spec = try ModelSpec.fromJSON(specJSON, source: "checkpoint \(url.path): metadata 'model_spec'")
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.deserialize(tokJSON, source: "checkpoint \(url.path)") } catch let e as TokenizerError {
            throw ModelError(e.description)
        }
        guard spec.vocabularySize == tokenizer.vocabularySize, spec.maxTokens == tokenizer.maxTokens else {
            throw ModelError("checkpoint \(url.path): metadata 'model_spec' expects \(spec.vocabularySize) words / \(spec.maxTokens) tokens, 'tokenizer' has \(tokenizer.vocabularySize) / \(tokenizer.maxTokens)")
        }
        let model = try FlowModel(spec: spec, tokenizer: tokenizer, seed: 0)
        try model.loadStateDict(archive.tensors, source: "checkpoint \(url.path)")
        try afterLoad?(model, url)
        return (model, archive.metadata)
    }
}
