import Foundation
import Adapters
import Autograd
import Models
import NN
import TensorCore
import TestSupport

/// Small models of both kinds with every adaptable layer type: the MLP has plain linear layers;
/// the U-Net has convolutions, linear (FiLM, conditioning) layers and attention projections.
func tinyModel(_ kind: ModelSpec.Kind, seed: UInt64 = 1, hidden: Int = 16) throws -> FlowModel {
    let tok = Tokenizer(captions: ["a small red square", "a large blue circle"], maxTokens: 6)
    var s = ModelSpec(kind: kind, channels: 1, height: 8, width: 8, vocabularySize: tok.vocabularySize)
    s.hidden = hidden; s.depth = 2; s.timeEmbedding = 16; s.textWidth = 16; s.textLayers = 1; s.textHeads = 2
    s.maxTokens = tok.maxTokens
    if kind == .unet { s.levels = [8, 16]; s.groups = 4; s.attentionLevels = [1] }
    let m = try FlowModel(spec: s, tokenizer: tok, seed: seed)
    // The U-Net's output conv starts at zero (velocity 0): give it weights so outputs mean something.
    if kind == .unet, let u = m.net as? UNet {
        var rng = RNG(seed: seed &+ 99)
        rng.uniform(u.outConv.weight.storage.ptr, count: u.outConv.weight.count)
        for i in 0..<u.outConv.weight.count { u.outConv.weight.storage.ptr[i] -= 0.5 }
    }
    m.eval()
    return m
}

/// v(x, t, text) of a batch of three fixed inputs.
func velocities(_ m: FlowModel) throws -> Tensor {
    let x = randn([3, 1, 8, 8], seed: 5)
    let t = Tensor([0.0, 0.4, 1.0], shape: [3])
    return try noGrad { try m.velocity(x, t: t, text: m.encode(["a small red square", "", "a large blue circle"])) }
}

/// Fills every B with small random values (a trained adapter's state), seeded.
func randomizeB(_ set: LoRASet, seed: UInt64, scale: Float = 0.1) {
    var rng = RNG(seed: seed)
    for (_, a) in set.layers {
        rng.normal(a.b.storage.ptr, count: a.b.count)
        for i in 0..<a.b.count { a.b.storage.ptr[i] *= scale }
    }
}

func tempDir() throws -> String { try makeTempDir("lora").path }
