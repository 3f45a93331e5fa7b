import Autograd

/// An extra path beside a layer's own weight: `Linear` and `Conv2d` return
/// layer(x) + Σ adapter.delta(x) over their `adapters` (LoRA's (α/r)·B·A·x). Kept as a protocol
/// here so that NN knows nothing about any particular adapter; with no adapters a layer's
/// forward is exactly what it was.
public protocol LayerAdapter: AnyObject {
    /// The adapter's contribution for input `x`: the layer's output shape.
    func delta(_ x: Tensor) throws -> Tensor
}

/// Adds each adapter's delta to a layer's output, in order.
@inline(__always)
func addAdapters(_ adapters: [LayerAdapter], input x: Tensor, output y: Tensor) throws -> Tensor {
    var out = y
    for a in adapters { out = try out + a.delta(x) }
    return out
}
