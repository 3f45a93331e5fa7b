import Autograd
import NN
import TensorCore

/// What LoRA adapts (the config's `lora.targets`): the velocity network's plain linear layers,
/// the projections of its attention layers (q/k/v/out), its convolutions.
public enum LoRATarget: String, CaseIterable, Sendable {
    case linear, attention, conv
}

public struct LoRAError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// One low-rank adapter beside a layer: delta(x) = scale · B(A(x)), scale = (α / r) · user scale.
/// Linear layers: A [r, in], B [out, r]. Convolutions (PEFT's layout): A [r, C, k, k] with the
/// base's stride and padding, B [out, r, 1, 1]. B starts at zero, so a new adapter leaves its
/// layer's output unchanged bit for bit (y + 0 = y); A starts like a torch layer, U(±1/sqrt(fan_in)).
public final class LoRALayer: Module, LayerAdapter {
    public enum Kind: Equatable { case linear, conv(stride: Int, padding: Int) }

    public let kind: Kind
    public let a: Tensor, b: Tensor
    public let rank: Int
    /// (α / r) times the scale the adapter is applied with.
    public var scale: Float
    public var isTraining = true

    /// A fresh adapter (B = 0) for a linear layer.
    public init(linear layer: Linear, rank: Int, alpha: Float, rng: inout RNG) {
        kind = .linear
        self.rank = rank
        a = Init.torchDefault([rank, layer.inFeatures], fanIn: layer.inFeatures, rng: &rng)
        b = Tensor.zeros([layer.outFeatures, rank], requiresGrad: true)
        scale = alpha / Float(rank)
    }

    /// A fresh adapter (B = 0) for a convolution.
    public init(conv layer: Conv2d, rank: Int, alpha: Float, rng: inout RNG) {
        kind = .conv(stride: layer.stride, padding: layer.padding)
        self.rank = rank
        let fanIn = layer.inChannels * layer.kernel * layer.kernel
        a = Init.torchDefault([rank, layer.inChannels, layer.kernel, layer.kernel], fanIn: fanIn, rng: &rng)
        b = Tensor.zeros([layer.outChannels, rank, 1, 1], requiresGrad: true)
        scale = alpha / Float(rank)
    }

    /// An adapter from stored factors (shapes already checked against the layer).
    public init(kind: Kind, a: Tensor, b: Tensor, scale: Float) {
        self.kind = kind; self.a = a; self.b = b; self.rank = a.shape[0]; self.scale = scale
    }

    /// PEFT/diffusers names: `<layer>.lora_A.weight`, `<layer>.lora_B.weight`.
    public func ownParameters() -> [(String, Tensor)] { [("lora_A.weight", a), ("lora_B.weight", b)] }

    public func delta(_ x: Tensor) throws -> Tensor {
        switch kind {
        case .linear:
            let inF = a.shape[1], outF = b.shape[0], m = x.count / inF
            let h = try x.reshaped([1, m, inF]).bmm(a.reshaped([1, rank, inF]), transposeRight: true)
            let y = try h.bmm(b.reshaped([1, outF, rank]), transposeRight: true)
            return try y.reshaped(Array(x.shape.dropLast()) + [outF]) * scale
        case .conv(let stride, let padding):
            let h = try x.conv2d(weight: a, bias: nil, stride: stride, padding: padding)
            return try h.conv2d(weight: b, bias: nil) * scale
        }
    }

    /// scale · B·A in the base weight's shape ([out, in] or [out, C, k, k]).
    public func weightDelta() -> Tensor {
        let out = b.shape[0], inner = a.count / rank
        let d = Storage(zeros: out * inner)
        let pa = a.storage.ptr, pb = b.storage.ptr
        for o in 0..<out {
            for r in 0..<rank {
                let w = scale * pb[o * rank + r]
                if w == 0 { continue }
                for j in 0..<inner { d.ptr[o * inner + j] += w * pa[r * inner + j] }
            }
        }
        var shape = [out] + Array(a.shape.dropFirst())
        if case .linear = kind { shape = [out, inner] }
        return Tensor(shape: shape, storage: d)
    }
}
