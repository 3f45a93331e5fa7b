import Autograd
import TensorCore

/// Multi-head attention with separate projections (q_proj, k_proj, v_proj, out_proj, each
/// weight [out, in] + bias), for self-attention (context = x) and cross-attention (queries
/// from x, keys and values from a context of another width).
public final class MultiheadAttention: Module {
    public let embedDim: Int, numHeads: Int, headDim: Int, contextDim: Int
    public let qProj: Linear, kProj: Linear, vProj: Linear, outProj: Linear
    public var isTraining = true

    /// Additive mask value for ignored keys: large but finite, so a row whose keys are all
    /// masked yields a uniform average instead of NaN.
    public static let maskedValue: Float = -1e9

    public init(embedDim: Int, numHeads: Int, contextDim: Int? = nil, bias: Bool = true, rng: inout RNG) {
        precondition(numHeads > 0 && embedDim % numHeads == 0,
                     "MultiheadAttention: embedDim \(embedDim) is not divisible by numHeads \(numHeads)")
        self.embedDim = embedDim
        self.numHeads = numHeads
        self.headDim = embedDim / numHeads
        self.contextDim = contextDim ?? embedDim
        qProj = Linear(embedDim, embedDim, bias: bias, rng: &rng)
        kProj = Linear(self.contextDim, embedDim, bias: bias, rng: &rng)
        vProj = Linear(self.contextDim, embedDim, bias: bias, rng: &rng)
        outProj = Linear(embedDim, embedDim, bias: bias, rng: &rng)
    }

    public func children() -> [(String, Module)] {
        [("q_proj", qProj), ("k_proj", kProj), ("v_proj", vProj), ("out_proj", outProj)]
    }

    /// x [B, Lq, embedDim], context [B, Lk, contextDim] (nil: self-attention) -> [B, Lq, embedDim].
    /// `keyPaddingMask` has B * Lk entries (row-major [B, Lk]); true marks a padded key that
    /// no query may attend to (torch's key_padding_mask convention). `attentionMask` is
    /// additive and broadcasts to [B * numHeads, Lq, Lk] (e.g. `causalMask(L)`, [L, L]).
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil, keyPaddingMask: [Bool]? = nil,
                               attentionMask: Tensor? = nil) throws -> Tensor {
        let ctx = context ?? x
        guard x.rank == 3, x.shape[2] == embedDim else {
            throw ShapeError(op: "MultiheadAttention", "queries must be [B, L, \(embedDim)], got \(x.shape)")
        }
        guard ctx.rank == 3, ctx.shape[0] == x.shape[0], ctx.shape[2] == contextDim else {
            throw ShapeError(op: "MultiheadAttention", "context must be [\(x.shape[0]), L, \(contextDim)], got \(ctx.shape)")
        }
        let b = x.shape[0], lq = x.shape[1], lk = ctx.shape[1], h = numHeads
        var mask = attentionMask
        if let pad = keyPaddingMask {
            guard pad.count == b * lk else {
                throw ShapeError(op: "MultiheadAttention", "keyPaddingMask has \(pad.count) entries, need B * Lk = \(b) * \(lk)")
            }
            let s = Storage(uninitializedCount: b * h * lk)
            for i in 0..<b {
                for j in 0..<h {
                    for k in 0..<lk { s.ptr[(i * h + j) * lk + k] = pad[i * lk + k] ? MultiheadAttention.maskedValue : 0 }
                }
            }
            let padMask = Tensor(shape: [b * h, 1, lk], storage: s)
            mask = try mask.map { try $0 + padMask } ?? padMask
        }
        let q = try splitHeads(qProj(x))
        let k = try splitHeads(kProj(ctx))
        let v = try splitHeads(vProj(ctx))
        let o = try scaledDotProductAttention(q: q, k: k, v: v, mask: mask)
        return try outProj(mergeHeads(o, batch: b, length: lq))
    }

    /// [B, L, H * d] -> [B * H, L, d].
    func splitHeads(_ t: Tensor) throws -> Tensor {
        let b = t.shape[0], l = t.shape[1]
        if numHeads == 1 { return t }
        return try t.reshaped([b, l, numHeads, headDim]).permuted([0, 2, 1, 3]).reshaped([b * numHeads, l, headDim])
    }

    /// [B * H, L, d] -> [B, L, H * d].
    func mergeHeads(_ t: Tensor, batch b: Int, length l: Int) throws -> Tensor {
        if numHeads == 1 { return t }
        return try t.reshaped([b, numHeads, l, headDim]).permuted([0, 2, 1, 3]).reshaped([b, l, embedDim])
    }

    /// [L, L] additive mask letting query i attend to keys 0...i only.
    public static func causalMask(_ length: Int) -> Tensor {
        let s = Storage(zeros: length * length)
        for i in 0..<length { for j in (i + 1)..<max(i + 1, length) { s.ptr[i * length + j] = maskedValue } }
        return Tensor(shape: [length, length], storage: s)
    }
}
