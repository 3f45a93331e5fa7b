import Foundation
import Autograd
import TensorCore

/// Sinusoidal features of the flow time t in [0, 1] (no parameters): with s = scale * t,
/// half = dim / 2 and f_i = maxPeriod^(-i / (half - 1)), i = 0..<half (score_sde's
/// get_timestep_embedding, as in the RectifiedFlow code, which feeds t * 999),
/// the output is [sin(s f_0) .. sin(s f_{half-1}), cos(s f_0) .. cos(s f_{half-1})].
/// t is treated as data: no gradient flows back to it.
public final class SinusoidalTimeEmbedding: Module {
    public let dim: Int
    public let scale: Float
    public let maxPeriod: Float
    public var isTraining = true
    let freqs: [Double]

    public init(dim: Int, scale: Float = 1000, maxPeriod: Float = 10_000) {
        precondition(dim >= 2 && dim % 2 == 0, "SinusoidalTimeEmbedding: dim must be even and >= 2, got \(dim)")
        self.dim = dim
        self.scale = scale
        self.maxPeriod = maxPeriod
        let half = dim / 2
        let step = Foundation.log(Double(maxPeriod)) / Double(max(half - 1, 1))
        freqs = (0..<half).map { Foundation.exp(-Double($0) * step) }
    }

    /// t [B] (or [B, 1]) -> [B, dim].
    public func callAsFunction(_ t: Tensor) throws -> Tensor {
        guard t.rank == 1 || (t.rank == 2 && t.shape[1] == 1) else {
            throw ShapeError(op: "SinusoidalTimeEmbedding", "t must be [B] or [B, 1], got \(t.shape)")
        }
        return callAsFunction(t.scalars)
    }

    public func callAsFunction(_ t: [Float]) -> Tensor {
        let half = dim / 2
        let out = Storage(uninitializedCount: t.count * dim)
        for (b, tv) in t.enumerated() {
            let s = Double(scale) * Double(tv)
            let row = out.ptr + b * dim
            for i in 0..<half {
                let a = s * freqs[i]
                row[i] = Float(Foundation.sin(a))
                row[half + i] = Float(Foundation.cos(a))
            }
        }
        return Tensor(shape: [t.count, dim], storage: out)
    }
}
