import Autograd
import TensorCore

/// y = x W^T + b over the last axis, with torch.nn.Linear's layout (weight [out, in], bias
/// [out]) so state dicts move between the two unchanged. One fused op (`Tensor.linear`): the
/// product runs as one sgemm with a transposed right operand onto the bias rows, so neither pass
/// copies the weight.
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Tensor
    public let bias: Tensor?
    public var isTraining = true
    /// Paths added to the output (LoRA); empty for a plain layer.
    public var adapters: [LayerAdapter] = []

    /// PyTorch's default initialisation: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout RNG) {
        precondition(inFeatures > 0 && outFeatures > 0, "Linear: feature counts must be positive (\(inFeatures) -> \(outFeatures))")
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Init.torchDefault([outFeatures, inFeatures], fanIn: inFeatures, rng: &rng)
        self.bias = bias ? Init.torchDefault([outFeatures], fanIn: inFeatures, rng: &rng) : nil
    }

    public func ownParameters() -> [(String, Tensor)] {
        var p: [(String, Tensor)] = [("weight", weight)]
        if let bias { p.append(("bias", bias)) }
        return p
    }

    /// x [..., in] -> [..., out].
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 1, x.shape[x.rank - 1] == inFeatures else {
            throw ShapeError(op: "Linear", "input \(x.shape) must end in \(inFeatures) features (layer \(inFeatures) -> \(outFeatures))")
        }
        let out = try x.linear(weight: weight, bias: bias)
        return adapters.isEmpty ? out : try addAdapters(adapters, input: x, output: out)
    }
}
