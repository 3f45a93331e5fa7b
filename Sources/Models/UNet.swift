import Autograd
import NN
import TensorCore

/// Residual block with time/text FiLM: h = conv(silu(gn(x))); h = h * (1 + scale) + shift;
/// h = conv(dropout(silu(gn(h)))); out = skip(x) + h.
public final class ResBlock: Module {
    public let norm1: GroupNorm, conv1: Conv2d, film: Linear, norm2: GroupNorm, conv2: Conv2d
    public let skip: Conv2d?
    public let outChannels: Int
    var dropout: Float
    var rng: RNG
    public var isTraining = true

    public init(_ cin: Int, _ cout: Int, embedding: Int, groups: Int, dropout: Float, rng: inout RNG) {
        norm1 = GroupNorm(groups: min(groups, cin), channels: cin)
        conv1 = Conv2d(cin, cout, kernel: 3, padding: 1, rng: &rng)
        film = Linear(embedding, 2 * cout, rng: &rng)
        norm2 = GroupNorm(groups: groups, channels: cout)
        conv2 = Conv2d(cout, cout, kernel: 3, padding: 1, rng: &rng)
        skip = cin == cout ? nil : Conv2d(cin, cout, kernel: 1, rng: &rng)
        outChannels = cout
        self.dropout = dropout
        self.rng = RNG(seed: UInt64(truncatingIfNeeded: rng.int(below: Int.max)))
    }

    public func children() -> [(String, Module)] {
        var c: [(String, Module)] = [("norm1", norm1), ("conv1", conv1), ("film", film), ("norm2", norm2), ("conv2", conv2)]
        if let skip { c.append(("skip", skip)) }
        return c
    }

    public func callAsFunction(_ x: Tensor, emb: Tensor) throws -> Tensor {
        var h = try conv1(norm1.normSiLU(x))
        h = try h.film(film(emb))  // h * (1 + scale) + shift, [N, 2C] = (scale, shift)
        h = try norm2.normSiLU(h)
        if dropout > 0 { h = h.dropout(p: dropout, rng: &rng, training: isTraining) }
        h = try conv2(h)
        return try (skip.map { try $0(x) } ?? x) + h
    }
}

/// Cross-attention from pixels to text tokens: x + MHA(gn(x) as [B, HW, C], text states).
public final class CrossAttentionBlock: Module {
    public let norm: GroupNorm, attn: MultiheadAttention
    public var isTraining = true

    public init(channels: Int, textWidth: Int, groups: Int, rng: inout RNG) {
        norm = GroupNorm(groups: groups, channels: channels)
        attn = MultiheadAttention(embedDim: channels, numHeads: max(1, channels / 32), contextDim: textWidth, rng: &rng)
    }

    public func children() -> [(String, Module)] { [("norm", norm), ("attn", attn)] }

    public func callAsFunction(_ x: Tensor, text: EncodedText) throws -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let q = try norm(x).reshaped([b, c, h * w]).transposed(1, 2)
        let a = try attn(q, context: text.states, keyPaddingMask: text.padding)
        return try x + a.transposed(1, 2).reshaped([b, c, h, w])
    }
}

/// One resolution level of the U-Net: residual blocks, optional cross-attention after each.
public final class UNetLevel: Module {
    public let blocks: ModuleList<ResBlock>
    public let attns: ModuleList<CrossAttentionBlock>
    public var isTraining = true

    init(cin: Int, cout: Int, count: Int, attention: Bool, spec: ModelSpec, embedding: Int, rng: inout RNG) {
        var bs: [ResBlock] = [], ats: [CrossAttentionBlock] = []
        for i in 0..<count {
            bs.append(ResBlock(i == 0 ? cin : cout, cout, embedding: embedding, groups: spec.groups, dropout: spec.dropout, rng: &rng))
            if attention { ats.append(CrossAttentionBlock(channels: cout, textWidth: spec.textWidth, groups: spec.groups, rng: &rng)) }
        }
        blocks = ModuleList(bs); attns = ModuleList(ats)
    }

    public func children() -> [(String, Module)] { [("blocks", blocks), ("attns", attns)] }

    func callAsFunction(_ x: Tensor, emb: Tensor, text: EncodedText) throws -> Tensor {
        var h = x
        for i in 0..<blocks.count {
            h = try blocks[i](h, emb: emb)
            if attns.count > 0 { h = try attns[i](h, text: text) }
        }
        return h
    }
}

/// What a ControlNet adds to a U-Net: one residual per skip connection (the down levels'
/// outputs, finest first) and one for the middle block's output.
/// `training`: the U-Net's mode, which the control network follows (dropout).
public protocol UNetControl: AnyObject {
    func residuals(_ x: Tensor, t: Tensor, text: EncodedText, training: Bool) throws -> (skips: [Tensor], mid: Tensor)
}

/// A small text-conditioned U-Net. Down path: levels with residual blocks, stride-2 convs
/// between; middle: block, cross-attention, block; up path: concatenated skips, nearest
/// upsampling + conv to the finer level's width. The output conv starts at zero, so the initial velocity is 0.
public final class UNet: VelocityNetwork {
    public let spec: ModelSpec
    public let cond: Conditioning
    public let stem: Conv2d
    public let down: ModuleList<UNetLevel>, downsample: ModuleList<Conv2d>
    public let mid1: ResBlock, midAttn: CrossAttentionBlock, mid2: ResBlock
    public let up: ModuleList<UNetLevel>, upsample: ModuleList<Conv2d>
    public let outNorm: GroupNorm, outConv: Conv2d
    public var isTraining = true
    /// A ControlNet's residuals, added to the skips and the middle block's output (nil: none).
    /// Not a child: its weights live in their own file.
    public var control: UNetControl?

    public init(spec: ModelSpec, rng: inout RNG) {
        self.spec = spec
        let ch = spec.levels, e = 4 * ch[0]
        cond = Conditioning(timeFeatures: spec.timeEmbedding, textWidth: spec.textWidth, width: e, rng: &rng)
        stem = Conv2d(spec.channels, ch[0], kernel: 3, padding: 1, rng: &rng)
        var d: [UNetLevel] = [], ds: [Conv2d] = []
        var prev = ch[0]
        for (i, c) in ch.enumerated() {
            d.append(UNetLevel(cin: prev, cout: c, count: spec.blocksPerLevel, attention: spec.attentionLevels.contains(i),
                               spec: spec, embedding: e, rng: &rng))
            prev = c
            if i < ch.count - 1 { ds.append(Conv2d(c, c, kernel: 3, stride: 2, padding: 1, rng: &rng)) }
        }
        down = ModuleList(d); downsample = ModuleList(ds)
        let last = ch[ch.count - 1]
        mid1 = ResBlock(last, last, embedding: e, groups: spec.groups, dropout: spec.dropout, rng: &rng)
        midAttn = CrossAttentionBlock(channels: last, textWidth: spec.textWidth, groups: spec.groups, rng: &rng)
        mid2 = ResBlock(last, last, embedding: e, groups: spec.groups, dropout: spec.dropout, rng: &rng)
        var u: [UNetLevel] = [], us: [Conv2d] = []
        prev = last
        for i in stride(from: ch.count - 1, through: 0, by: -1) {
            u.append(UNetLevel(cin: prev + ch[i], cout: ch[i], count: spec.blocksPerLevel,
                               attention: spec.attentionLevels.contains(i), spec: spec, embedding: e, rng: &rng))
            prev = ch[i]
            // Upsampling conv maps to the next level's width: at the finest resolution a conv
            // stays at the narrow width (half the FLOPs of keeping the coarse width there).
            if i > 0 { us.append(Conv2d(ch[i], ch[i - 1], kernel: 3, padding: 1, rng: &rng)); prev = ch[i - 1] }
        }
        up = ModuleList(u); upsample = ModuleList(us)
        outNorm = GroupNorm(groups: spec.groups, channels: ch[0])
        outConv = Conv2d(ch[0], spec.channels, kernel: 3, padding: 1, rng: &rng)
        for (_, p) in outConv.ownParameters() { p.storage.ptr.update(repeating: 0, count: p.count) }
    }

    public func children() -> [(String, Module)] {
        [("cond", cond), ("stem", stem), ("down", down), ("downsample", downsample), ("mid1", mid1),
         ("mid_attn", midAttn), ("mid2", mid2), ("up", up), ("upsample", upsample),
         ("out_norm", outNorm), ("out_conv", outConv)]
    }

    public func callAsFunction(_ x: Tensor, t: Tensor, text: EncodedText) throws -> Tensor {
        let emb = try cond(t: t, text: text.pooled)
        var h = try stem(x)
        var skips: [Tensor] = []
        for i in 0..<down.count {
            h = try down[i](h, emb: emb, text: text)
            skips.append(h)
            if i < downsample.count { h = try downsample[i](h) }
        }
        h = try mid2(midAttn(mid1(h, emb: emb), text: text), emb: emb)
        if let control {
            let r = try control.residuals(x, t: t, text: text, training: isTraining)
            guard r.skips.count == skips.count else {
                throw ShapeError(op: "UNet", "control gave \(r.skips.count) skip residuals for \(skips.count) skips")
            }
            h = try h + r.mid
            for i in skips.indices { skips[i] = try skips[i] + r.skips[i] }
        }
        for j in 0..<up.count {
            h = try Tensor.concat([h, skips.removeLast()], axis: 1)
            h = try up[j](h, emb: emb, text: text)
            if j < upsample.count { h = try upsample[j](h.upsampleNearest2d(scale: 2)) }
        }
        return try outConv(outNorm.normSiLU(h))
    }
}
