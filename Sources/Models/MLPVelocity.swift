import Autograd
import NN
import TensorCore

/// A velocity network v(x_t, t, text) consumes items [B, C, H, W], times [B] and encoded text.
public protocol VelocityNetwork: Module {
    func callAsFunction(_ x: Tensor, t: Tensor, text: EncodedText) throws -> Tensor
}

/// Time and pooled-text conditioning shared by both networks: silu(MLP(sin(t)) + W text).
public final class Conditioning: Module {
    public let time: SinusoidalTimeEmbedding, fc1: Linear, fc2: Linear, text: Linear
    public var isTraining = true

    public init(timeFeatures: Int, textWidth: Int, width: Int, rng: inout RNG) {
        time = SinusoidalTimeEmbedding(dim: timeFeatures)
        fc1 = Linear(timeFeatures, width, rng: &rng)
        fc2 = Linear(width, width, rng: &rng)
        text = Linear(textWidth, width, rng: &rng)
    }

    public func children() -> [(String, Module)] { [("time", time), ("fc1", fc1), ("fc2", fc2), ("text", text)] }

    public func callAsFunction(t: Tensor, text pooled: Tensor) throws -> Tensor {
        try (fc2(fc1(time(t)).silu()) + text(pooled)).silu()
    }
}

/// Residual MLP for toy2d and 8x8 digits: x is flattened, each block adds
/// fc(silu(h + cond_i(emb))).
public final class MLPVelocity: VelocityNetwork {
    public let dim: Int
    public let input: Linear, cond: Conditioning
    public let blocks: ModuleList<Linear>, blockCond: ModuleList<Linear>
    public let output: Linear
    public var isTraining = true

    public init(spec: ModelSpec, rng: inout RNG) {
        dim = spec.channels * spec.height * spec.width
        input = Linear(dim, spec.hidden, rng: &rng)
        cond = Conditioning(timeFeatures: spec.timeEmbedding, textWidth: spec.textWidth, width: spec.hidden, rng: &rng)
        var b: [Linear] = [], c: [Linear] = []
        for _ in 0..<spec.depth {
            b.append(Linear(spec.hidden, spec.hidden, rng: &rng))
            c.append(Linear(spec.hidden, spec.hidden, rng: &rng))
        }
        blocks = ModuleList(b); blockCond = ModuleList(c)
        output = Linear(spec.hidden, dim, rng: &rng)
    }

    public func children() -> [(String, Module)] {
        [("input", input), ("cond", cond), ("blocks", blocks), ("block_cond", blockCond), ("output", output)]
    }

    public func callAsFunction(_ x: Tensor, t: Tensor, text: EncodedText) throws -> Tensor {
        let emb = try cond(t: t, text: text.pooled)
        var h = try input(x.reshaped([x.shape[0], dim]))
        for i in 0..<blocks.count {
            h = try h + blocks[i]((h + blockCond[i](emb)).silu())
        }
        return try output(h.silu()).reshaped(x.shape)
    }
}
