import TensorCore

extension Tensor {
    /// Sum over `axes` (all axes when nil). With `keepDims` the reduced axes stay as size 1.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let x = self
        let ax = try Tensor.resolveAxes("sum", axes, shape: x.shape)
        let keepShape = x.shape.enumerated().map { ax.contains($0.offset) ? 1 : $0.element }
        let outShape = keepDims ? keepShape : x.shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element }
        let out = Storage(uninitializedCount: ShapeUtil.count(keepShape))
        Reduce.sumToShape(x.storage.ptr, from: x.shape, to: keepShape, into: out.ptr)
        return Tensor.result("sum", shape: outShape, storage: out, inputs: [x]) { g in
            [K.expand(Tensor(shape: keepShape, storage: g.storage), to: x.shape)]
        }
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let ax = try Tensor.resolveAxes("mean", axes, shape: shape)
        let n = ax.reduce(1) { $0 * shape[$1] }
        return try sum(axes: axes, keepDims: keepDims) * (1 / Float(max(n, 1)))
    }

    static func resolveAxes(_ op: String, _ axes: [Int]?, shape: [Int]) throws -> Set<Int> {
        guard let axes else { return Set(0..<shape.count) }
        var out = Set<Int>()
        for a in axes {
            guard let r = ShapeUtil.axis(a, rank: shape.count) else {
                throw ShapeError(op: op, "axis \(a) is out of range for shape \(shape)")
            }
            out.insert(r)
        }
        return out
    }
}

extension K {
    /// Broadcast copy of `x` to `shape` (x's shape must broadcast to it).
    static func expand(_ x: Tensor, to shape: [Int]) -> Tensor {
        if x.shape == shape { return x }
        let one = Tensor(shape: [], storage: Storage(zeros: 1))
        return Tensor(shape: shape, storage: broadcast(x, one, out: shape, First.self))
    }

    /// (a, b) -> a: broadcasting against a scalar as a copy.
    enum First: Binary {
        @inline(__always) static func apply(_ a: V, _ b: V) -> V { a }
        @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a }
    }
}
