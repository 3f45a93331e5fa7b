import Autograd
import NN
import TensorCore

/// A ControlNet for a `UNet`: a trainable copy of the U-Net's encoder (conditioning, stem, down
/// levels, downsampling convs, middle block) whose input is the noisy image plus a control image
/// seen through a small hint encoder, and whose per-level outputs reach the frozen base through
/// 1x1 convolutions. The hint encoder's last conv and every output conv start at zero, so a new
/// ControlNet adds exactly zero and the base is unchanged until training moves them.
///
/// Weight names: the copied parts keep the U-Net's names ("cond.*", "stem.*", "down.*",
/// "downsample.*", "mid1.*", "mid_attn.*", "mid2.*"), so `copyEncoder(from:)` is a rename-free
/// copy; the new parts are "hint_in.*", "hint_out.*", "zero_convs.<level>.*" and "mid_zero.*".
public final class ControlNet: Module {
    public let spec: ModelSpec
    public let hintChannels: Int
    public let cond: Conditioning
    public let stem: Conv2d, hintIn: Conv2d, hintOut: Conv2d
    public let down: ModuleList<UNetLevel>, downsample: ModuleList<Conv2d>
    public let mid1: ResBlock, midAttn: CrossAttentionBlock, mid2: ResBlock
    public let zeroConvs: ModuleList<Conv2d>, midZero: Conv2d
    public var isTraining = true

    /// Width of the hint encoder's hidden layer.
    public static let hintWidth = 16

    /// A ControlNet shaped for a U-Net of `spec` and control images of `hintChannels` channels at
    /// the model's resolution. The copied encoder gets fresh weights here: call `copyEncoder(from:)`.
    public init(spec: ModelSpec, hintChannels: Int, seed: UInt64) throws {
        try spec.validate()
        guard spec.kind == .unet else { throw ModelError("a ControlNet needs a U-Net base (model kind unet), not \(spec.kind)") }
        guard hintChannels >= 1 else { throw ModelError("a ControlNet needs at least one control channel") }
        self.spec = spec
        self.hintChannels = hintChannels
        var rng = RNG(seed: seed)
        let ch = spec.levels, e = 4 * ch[0]
        cond = Conditioning(timeFeatures: spec.timeEmbedding, textWidth: spec.textWidth, width: e, rng: &rng)
        stem = Conv2d(spec.channels, ch[0], kernel: 3, padding: 1, rng: &rng)
        hintIn = Conv2d(hintChannels, Self.hintWidth, kernel: 3, padding: 1, rng: &rng)
        hintOut = Conv2d(Self.hintWidth, ch[0], kernel: 3, padding: 1, rng: &rng)
        var d: [UNetLevel] = [], ds: [Conv2d] = [], zs: [Conv2d] = []
        var prev = ch[0]
        for (i, c) in ch.enumerated() {
            d.append(UNetLevel(cin: prev, cout: c, count: spec.blocksPerLevel, attention: spec.attentionLevels.contains(i),
                               spec: spec, embedding: e, rng: &rng))
            zs.append(Conv2d(c, c, kernel: 1, rng: &rng))
            prev = c
            if i < ch.count - 1 { ds.append(Conv2d(c, c, kernel: 3, stride: 2, padding: 1, rng: &rng)) }
        }
        down = ModuleList(d); downsample = ModuleList(ds); zeroConvs = ModuleList(zs)
        let last = ch[ch.count - 1]
        mid1 = ResBlock(last, last, embedding: e, groups: spec.groups, dropout: spec.dropout, rng: &rng)
        midAttn = CrossAttentionBlock(channels: last, textWidth: spec.textWidth, groups: spec.groups, rng: &rng)
        mid2 = ResBlock(last, last, embedding: e, groups: spec.groups, dropout: spec.dropout, rng: &rng)
        midZero = Conv2d(last, last, kernel: 1, rng: &rng)
        for conv in zs + [midZero, hintOut] {
            for (_, p) in conv.ownParameters() { p.storage.ptr.update(repeating: 0, count: p.count) }
        }
    }

    public func children() -> [(String, Module)] {
        [("cond", cond), ("stem", stem), ("hint_in", hintIn), ("hint_out", hintOut), ("down", down),
         ("downsample", downsample), ("mid1", mid1), ("mid_attn", midAttn), ("mid2", mid2),
         ("zero_convs", zeroConvs), ("mid_zero", midZero)]
    }

    /// Names of the tensors copied from the base U-Net (the rest are the ControlNet's own).
    public static let copiedPrefixes = ["cond.", "stem.", "down.", "downsample.", "mid1.", "mid_attn.", "mid2."]

    /// Initialises the encoder copy from `base`'s weights (ControlNet's starting point).
    public func copyEncoder(from base: UNet) throws {
        let baseTensors = Dictionary(base.stateDict(), uniquingKeysWith: { a, _ in a })
        var copied: [String: Tensor] = [:]
        for (name, _) in stateDict() where Self.copiedPrefixes.contains(where: { name.hasPrefix($0) }) {
            copied[name] = baseTensors[name]
        }
        try loadStateDict(copied, source: "base U-Net", strict: false)
        let missing = stateDict().filter { n, _ in Self.copiedPrefixes.contains { n.hasPrefix($0) } && copied[n] == nil }
        if let (name, _) = missing.first {
            throw ModelError("the base U-Net has no layer '\(name)' to copy into the ControlNet")
        }
    }

    /// The residuals for the base's skips (finest level first) and middle block, times `scale`.
    /// x [B, C, H, W], t [B], hint [B, hintChannels, H, W].
    public func callAsFunction(_ x: Tensor, t: Tensor, text: EncodedText, hint: Tensor, scale: Float = 1) throws
        -> (skips: [Tensor], mid: Tensor) {
        guard hint.rank == 4, hint.shape[0] == x.shape[0], hint.shape[1] == hintChannels,
              Array(hint.shape[2...]) == Array(x.shape[2...]) else {
            throw ShapeError(op: "ControlNet", "control of shape \(hint.shape) for input \(x.shape): need [\(x.shape[0]), \(hintChannels), \(x.shape[2]), \(x.shape[3])]")
        }
        let emb = try cond(t: t, text: text.pooled)
        var h = try stem(x) + hintOut(hintIn(hint).silu())
        var skips: [Tensor] = []
        for i in 0..<down.count {
            h = try down[i](h, emb: emb, text: text)
            skips.append(try zeroConvs[i](h))
            if i < downsample.count { h = try downsample[i](h) }
        }
        var mid = try midZero(mid2(midAttn(mid1(h, emb: emb), text: text), emb: emb))
        if scale != 1 {
            skips = skips.map { $0 * scale }
            mid = mid * scale
        }
        return (skips, mid)
    }
}
