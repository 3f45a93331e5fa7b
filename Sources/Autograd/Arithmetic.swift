import TensorCore

// Binary arithmetic with NumPy broadcasting. Each forward sits next to its pullback; the
// pullback sums the output gradient back to each input's shape.

func broadcastShape(_ op: String, _ a: Tensor, _ b: Tensor) throws -> [Int] {
    guard let s = ShapeUtil.broadcast(a.shape, b.shape) else {
        throw ShapeError(op: op, "shapes \(a.shape) and \(b.shape) cannot be broadcast together")
    }
    return s
}

extension Tensor {
    // MARK: add
    public static func + (a: Tensor, b: Tensor) throws -> Tensor { add(a, b, try broadcastShape("add", a, b)) }

    static func add(_ a: Tensor, _ b: Tensor, _ shape: [Int]) -> Tensor {
        let out = K.broadcast(a, b, out: shape, K.Add.self)
        return result("add", shape: shape, storage: out, inputs: [a, b]) { g in
            [a.requiresGrad ? K.unbroadcast(g, to: a.shape) : nil,
             b.requiresGrad ? K.unbroadcast(g, to: b.shape) : nil]
        }
    }

    // MARK: sub
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { sub(a, b, try broadcastShape("sub", a, b)) }

    static func sub(_ a: Tensor, _ b: Tensor, _ shape: [Int]) -> Tensor {
        let out = K.broadcast(a, b, out: shape, K.Sub.self)
        return result("sub", shape: shape, storage: out, inputs: [a, b]) { g in
            [a.requiresGrad ? K.unbroadcast(g, to: a.shape) : nil,
             b.requiresGrad ? K.unbroadcast(-g, to: b.shape) : nil]
        }
    }

    // MARK: mul
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { mul(a, b, try broadcastShape("mul", a, b)) }

    static func mul(_ a: Tensor, _ b: Tensor, _ shape: [Int]) -> Tensor {
        let out = K.broadcast(a, b, out: shape, K.Mul.self)
        return result("mul", shape: shape, storage: out, inputs: [a, b]) { g in
            [a.requiresGrad ? K.unbroadcast(mul(g, b, shape), to: a.shape) : nil,
             b.requiresGrad ? K.unbroadcast(mul(g, a, shape), to: b.shape) : nil]
        }
    }

    // MARK: div
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { div(a, b, try broadcastShape("div", a, b)) }

    static func div(_ a: Tensor, _ b: Tensor, _ shape: [Int]) -> Tensor {
        let out = K.broadcast(a, b, out: shape, K.Div.self)
        return result("div", shape: shape, storage: out, inputs: [a, b]) { g in
            // d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2
            let gb: Tensor? = b.requiresGrad
                ? K.unbroadcast(Tensor(shape: shape, storage: K.broadcast(mul(g, a, shape), mul(b, b, b.shape), out: shape,
                                                                          K.NegDiv.self)), to: b.shape)
                : nil
            return [a.requiresGrad ? K.unbroadcast(div(g, b, shape), to: a.shape) : nil, gb]
        }
    }

    // MARK: neg
    public static prefix func - (x: Tensor) -> Tensor {
        let out = K.map(x.storage) { -$0 }
        return result("neg", shape: x.shape, storage: out, inputs: [x]) { g in [-g] }
    }

    // MARK: scalar forms (no broadcasting check needed)
    public static func + (a: Tensor, s: Float) -> Tensor {
        let out = K.map(a.storage) { $0 + s }
        return result("add_scalar", shape: a.shape, storage: out, inputs: [a]) { g in [g] }
    }
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    public static func - (s: Float, a: Tensor) -> Tensor { (-a) + s }

    public static func * (a: Tensor, s: Float) -> Tensor {
        let out = K.map(a.storage) { $0 * s }
        return result("mul_scalar", shape: a.shape, storage: out, inputs: [a]) { g in [g * s] }
    }
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }

    /// s / a
    public static func / (s: Float, a: Tensor) -> Tensor {
        let out = K.map(a.storage) { SIMD16<Float>(repeating: s) / $0 }
        return result("rdiv_scalar", shape: a.shape, storage: out, inputs: [a]) { g in
            [Tensor(shape: a.shape, storage: K.zip(g.storage, a.storage) { -SIMD16<Float>(repeating: s) * $0 / ($1 * $1) })]
        }
    }
}

/// Internal same-shape accumulation used by the backward pass (never recorded).
func addSame(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.shape == b.shape, "internal add: \(a.shape) vs \(b.shape)")
    return Tensor(shape: a.shape, storage: K.zip(a.storage, b.storage, K.Add.self))
}

extension K {
    /// The binary ops' lane and scalar forms, as types so that the broadcast loops inline them.
    enum Add: Binary {
        @inline(__always) static func apply(_ a: K.V, _ b: K.V) -> K.V { a + b }
        @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b }
    }
    enum Sub: Binary {
        @inline(__always) static func apply(_ a: K.V, _ b: K.V) -> K.V { a - b }
        @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b }
    }
    enum Mul: Binary {
        @inline(__always) static func apply(_ a: K.V, _ b: K.V) -> K.V { a * b }
        @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b }
    }
    enum Div: Binary {
        @inline(__always) static func apply(_ a: K.V, _ b: K.V) -> K.V { a / b }
        @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b }
    }
    /// -a / b: div's gradient for its denominator.
    enum NegDiv: Binary {
        @inline(__always) static func apply(_ a: K.V, _ b: K.V) -> K.V { -a / b }
        @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { -a / b }
    }
}
