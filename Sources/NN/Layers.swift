import Autograd
import TensorCore

/// 2-D convolution with torch.nn.Conv2d's layout: weight [O, C, k, k], bias [O].
public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    public let weight: Tensor
    public let bias: Tensor?
    public var isTraining = true
    /// Paths added to the output (LoRA); empty for a plain layer.
    public var adapters: [LayerAdapter] = []

    /// PyTorch's default initialisation: U(-1/sqrt(C k k), 1/sqrt(C k k)) for weight and bias.
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, rng: inout RNG) {
        precondition(inChannels > 0 && outChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                     "Conv2d: invalid configuration \(inChannels) -> \(outChannels), kernel \(kernel), stride \(stride), padding \(padding)")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        let fanIn = inChannels * kernel * kernel
        weight = Init.torchDefault([outChannels, inChannels, kernel, kernel], fanIn: fanIn, rng: &rng)
        self.bias = bias ? Init.torchDefault([outChannels], fanIn: fanIn, rng: &rng) : nil
    }

    public func ownParameters() -> [(String, Tensor)] {
        var p: [(String, Tensor)] = [("weight", weight)]
        if let bias { p.append(("bias", bias)) }
        return p
    }

    /// x [N, C, H, W] -> [N, O, Ho, Wo].
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding)
        return adapters.isEmpty ? y : try addAdapters(adapters, input: x, output: y)
    }
}

/// Group normalisation over x [N, C, ...] with a per-channel affine (weight 1, bias 0 at init).
public final class GroupNorm: Layer {
    public let groups: Int, channels: Int, eps: Float
    public let weight: Tensor?, bias: Tensor?
    public var isTraining = true

    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) {
        precondition(groups > 0 && channels % groups == 0, "GroupNorm: \(channels) channels cannot form \(groups) groups")
        self.groups = groups
        self.channels = channels
        self.eps = eps
        weight = affine ? Init.constant([channels], 1) : nil
        bias = affine ? Init.constant([channels], 0) : nil
    }

    public func ownParameters() -> [(String, Tensor)] {
        guard let weight, let bias else { return [] }
        return [("weight", weight), ("bias", bias)]
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try x.groupNorm(groups: groups, weight: weight, bias: bias, eps: eps)
    }

    /// silu(self(x)) as one fused op (`Tensor.groupNormSiLU`): the same values, one pass fewer.
    public func normSiLU(_ x: Tensor) throws -> Tensor {
        try x.groupNormSiLU(groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// Layer normalisation over the last axis (weight 1, bias 0 at init).
public final class LayerNorm: Layer {
    public let dim: Int, eps: Float
    public let weight: Tensor?, bias: Tensor?
    public var isTraining = true

    public init(_ dim: Int, eps: Float = 1e-5, affine: Bool = true) {
        self.dim = dim
        self.eps = eps
        weight = affine ? Init.constant([dim], 1) : nil
        bias = affine ? Init.constant([dim], 0) : nil
    }

    public func ownParameters() -> [(String, Tensor)] {
        guard let weight, let bias else { return [] }
        return [("weight", weight), ("bias", bias)]
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try x.layerNorm(weight: weight, bias: bias, eps: eps)
    }
}

/// A lookup table: weight [count, dim] ~ N(0, 1) (torch.nn.Embedding's default).
public final class Embedding: Module {
    public let count: Int, dim: Int
    public let weight: Tensor
    public var isTraining = true

    public init(_ count: Int, _ dim: Int, rng: inout RNG) {
        precondition(count > 0 && dim > 0, "Embedding: invalid size \(count) x \(dim)")
        self.count = count
        self.dim = dim
        weight = Init.normal([count, dim], rng: &rng)
    }

    public func ownParameters() -> [(String, Tensor)] { [("weight", weight)] }

    /// `indices` laid out row-major over `shape` -> shape + [dim].
    public func callAsFunction(_ indices: [Int], shape: [Int]) throws -> Tensor {
        try Tensor.embedding(weight, indices: indices, indexShape: shape)
    }
}

/// A parameter-free elementwise function as a layer (for `Sequential`).
public final class Activation: Layer {
    public enum Kind: String, Sendable, CaseIterable {
        case identity, relu, silu, gelu, geluTanh, tanh, sigmoid
    }

    public let kind: Kind
    public var isTraining = true

    public init(_ kind: Kind) { self.kind = kind }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { Activation.apply(kind, x) }

    public static func apply(_ kind: Kind, _ x: Tensor) -> Tensor {
        switch kind {
        case .identity: return x
        case .relu: return x.relu()
        case .silu: return x.silu()
        case .gelu: return x.gelu(approximate: false)
        case .geluTanh: return x.gelu(approximate: true)
        case .tanh: return x.tanh()
        case .sigmoid: return x.sigmoid()
        }
    }
}

/// Inverted dropout with its own generator (identity in eval mode). Save `rng` with the
/// training state for an exact resume.
public final class Dropout: Layer {
    public let p: Float
    public var rng: RNG
    public var isTraining = true

    public init(_ p: Float, rng: RNG) {
        precondition(p >= 0 && p <= 1, "Dropout: p = \(p) is outside [0, 1]")
        self.p = p
        self.rng = rng
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { x.dropout(p: p, rng: &rng, training: isTraining) }
}

extension Sequential {
    /// Linear layers of the given widths with `activation` between them (none after the last):
    /// [2, 64, 64, 2] gives Linear, act, Linear, act, Linear, named "0", "2", "4" as in torch.
    public static func mlp(_ widths: [Int], activation: Activation.Kind = .silu, bias: Bool = true, rng: inout RNG) -> Sequential {
        precondition(widths.count >= 2, "mlp: need at least input and output widths, got \(widths)")
        var layers: [Layer] = []
        for i in 0..<(widths.count - 1) {
            if i > 0 { layers.append(Activation(activation)) }
            layers.append(Linear(widths[i], widths[i + 1], bias: bias, rng: &rng))
        }
        return Sequential(layers)
    }
}
