import Autograd
import NN
import TensorCore

/// Prompts after tokenization: ids [B, L] (row-major), real lengths, padding flags.
public struct TokenBatch {
    public let ids: [Int]
    public let lengths: [Int]
    public let batch: Int, length: Int
    public var padding: [Bool] { (0..<batch * length).map { $0 % length >= lengths[$0 / length] } }

    public init(_ prompts: [String], tokenizer: Tokenizer) {
        var ids: [Int] = [], lengths: [Int] = []
        for p in prompts {
            let (i, n) = tokenizer.encode(p)
            ids += i; lengths.append(n)
        }
        self.ids = ids; self.lengths = lengths; batch = prompts.count; length = tokenizer.maxTokens
    }
}

/// Encoded prompts as the velocity networks consume them.
public struct EncodedText {
    /// Per-token states [B, L, W] (for cross-attention).
    public let states: Tensor
    /// Masked mean of the token states [B, W] (for scale/shift conditioning).
    public let pooled: Tensor
    /// true = padded key, for attention masks ([B * L]).
    public let padding: [Bool]

    /// Rows `range` of the batch (used to split a doubled guidance batch).
    public var batch: Int { pooled.shape[0] }
}

/// A small pre-norm transformer over word tokens with learned positions.
public final class TextEncoder: Module {
    public let tokens: Embedding
    public let positions: Tensor
    public let blocks: ModuleList<TransformerBlock>
    public let norm: LayerNorm
    public var isTraining = true

    public init(vocabularySize: Int, maxTokens: Int, width: Int, layers: Int, heads: Int, rng: inout RNG) {
        tokens = Embedding(vocabularySize, width, rng: &rng)
        positions = Init.normal([maxTokens, width], std: 0.02, rng: &rng)
        var bs: [TransformerBlock] = []
        for _ in 0..<layers { bs.append(TransformerBlock(width: width, heads: heads, rng: &rng)) }
        blocks = ModuleList(bs)
        norm = LayerNorm(width)
    }

    public func ownParameters() -> [(String, Tensor)] { [("positions", positions)] }
    public func children() -> [(String, Module)] { [("tokens", tokens), ("blocks", blocks), ("norm", norm)] }

    public func callAsFunction(_ tb: TokenBatch) throws -> EncodedText {
        let pad = tb.padding
        var h = try tokens(tb.ids, shape: [tb.batch, tb.length]) + positions.slice(axis: 0, range: 0..<tb.length)
        for b in blocks.modules { h = try b(h, padding: pad) }
        h = try norm(h)
        // Masked mean over real tokens (the start token is always real, so never empty).
        let w = Storage(uninitializedCount: tb.batch * tb.length)
        for i in 0..<tb.batch * tb.length { w.ptr[i] = pad[i] ? 0 : 1 / Float(tb.lengths[i / tb.length]) }
        let weights = Tensor(shape: [tb.batch, tb.length, 1], storage: w)
        let pooled = try (h * weights).sum(axes: [1])
        return EncodedText(states: h, pooled: pooled, padding: pad)
    }
}

/// x + SelfAttention(LN(x)); x + MLP(LN(x)), GELU, 4x width.
public final class TransformerBlock: Module {
    public let norm1: LayerNorm, attn: MultiheadAttention, norm2: LayerNorm, fc1: Linear, fc2: Linear
    public var isTraining = true

    public init(width: Int, heads: Int, rng: inout RNG) {
        norm1 = LayerNorm(width)
        attn = MultiheadAttention(embedDim: width, numHeads: heads, rng: &rng)
        norm2 = LayerNorm(width)
        fc1 = Linear(width, 4 * width, rng: &rng)
        fc2 = Linear(4 * width, width, rng: &rng)
    }

    public func children() -> [(String, Module)] {
        [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("fc1", fc1), ("fc2", fc2)]
    }

    public func callAsFunction(_ x: Tensor, padding: [Bool]) throws -> Tensor {
        let h = try x + attn(norm1(x), keyPaddingMask: padding)
        return try h + fc2(fc1(norm2(h)).gelu())
    }
}
