import TensorCore

// Activations: relu, sigmoid, tanh, silu, gelu (exact erf form and tanh approximation).
// Forward and pullback are single vectorised passes; sigmoid/tanh reuse their output,
// silu/gelu recompute their cheap inner terms from x rather than keep a second buffer.

extension Tensor {
    // MARK: relu
    public func relu() -> Tensor {
        let x = self
        let y = K.map(x.storage) { $0.replacing(with: 0, where: $0 .< 0) }
        return Tensor.result("relu", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, x.storage) { g, x in
                g.replacing(with: 0, where: .!(x .> 0))
            })]
        }
    }

    // MARK: sigmoid
    public func sigmoid() -> Tensor {
        let x = self
        let y = K.map(x.storage) { VMathExtra.sigmoid($0) }
        return Tensor.result("sigmoid", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, y) { g, y in g * y * (1 - y) })]
        }
    }

    // MARK: tanh
    public func tanh() -> Tensor {
        let x = self
        let y = K.map(x.storage) { VMathExtra.tanh($0) }
        return Tensor.result("tanh", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, y) { g, y in g * (1 - y * y) })]
        }
    }

    // MARK: silu
    /// x * sigmoid(x).
    public func silu() -> Tensor {
        let x = self
        let y = K.map(x.storage, SiLU.self)
        return Tensor.result("silu", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, x.storage, SiLU.Pullback.self))]
        }
    }

    // MARK: gelu
    /// GELU. `approximate: false` is the exact x * Phi(x) (torch's default, via erfc so that the
    /// negative tail keeps its relative accuracy); `true` is torch's approximate="tanh",
    /// 0.5 x (1 + tanh(u)) evaluated as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
    public func gelu(approximate: Bool = false) -> Tensor {
        let x = self
        let y = approximate
            ? K.map(x.storage) { x in x * VMathExtra.sigmoid(2 * K.geluTanhInner(x)) }
            : K.map(x.storage) { x in x * VMathExtra.normalCDF(x) }
        return Tensor.result("gelu", shape: x.shape, storage: y, inputs: [x]) { g in
            let gx = approximate
                ? K.zip(g.storage, x.storage) { g, x in
                    // d/dx x s(2u) = s + x * 2 s (1 - s) u',  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
                    let s = VMathExtra.sigmoid(2 * K.geluTanhInner(x))
                    let du = K.sqrt2OverPi * (1 + 0.134_145 * x * x)
                    return g * (s + 2 * x * s * (1 - s) * du)
                }
                : K.zip(g.storage, x.storage) { g, x in
                    // d/dx x Phi(x) = Phi(x) + x phi(x)
                    let phi = VMathExtra.expNegHalfSquare(x) * 0.398_942_280_401_432_7  // 1/sqrt(2 pi)
                    return g * VMathExtra.normalCDF(x).addingProduct(x, phi)
                }
            return [Tensor(shape: x.shape, storage: gx)]
        }
    }
}

extension K {
    static let sqrt2OverPi: Float = 0.797_884_560_802_865_4

    /// u = sqrt(2/pi) (x + 0.044715 x^3) of the tanh-approximated GELU.
    @inline(__always)
    static func geluTanhInner(_ x: V) -> V {
        sqrt2OverPi * x * (1 + 0.044_715 * x * x)
    }
}

enum SiLU: Lanewise1 {
    @inline(__always) static func apply(_ x: K.V) -> K.V { x * VMathExtra.sigmoid(x) }

    /// g * d/dx x s(x) = g * s (1 + x (1 - s)), s recomputed from x.
    enum Pullback: Lanewise2 {
        @inline(__always) static func apply(_ g: K.V, _ x: K.V) -> K.V {
            let s = VMathExtra.sigmoid(x)
            return g * s * (1 + x * (1 - s))
        }
    }
}
