import Autograd
import TensorCore

/// A reproducible standard-normal tensor times `scale` (the seed fixes the values, so a
/// failing test fails the same way on every run).
public func randn(_ shape: [Int], seed: UInt64 = 7, scale: Float = 1) -> Tensor {
    var rng = RNG(seed: seed)
    return Tensor.randn(shape, rng: &rng) * scale
}
