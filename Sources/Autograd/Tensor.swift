import TensorCore

/// A Float32 tensor in row-major, contiguous layout, and a node of the autodiff tape.
///
/// An op records itself (its inputs and a pullback) only when grad mode is on and some input
/// requires a gradient; otherwise the result is a plain leaf and nothing is kept alive.
public final class Tensor: CustomStringConvertible {
    public let shape: [Int]
    public let storage: Storage
    /// Leaves the user wants gradients for (parameters, or inputs in a gradient check).
    public var requiresGrad: Bool
    /// Accumulated gradient after `backward()`; same shape as the tensor.
    public var grad: Tensor?
    /// Optional label used in error messages and checkpoints.
    public var name: String?

    // Tape: set only on recorded op outputs, cleared after the backward pass.
    var inputs: [Tensor] = []
    var pullback: ((Tensor) -> [Tensor?])?
    let opName: String?

    public init(shape: [Int], storage: Storage, requiresGrad: Bool = false) {
        precondition(ShapeUtil.count(shape) == storage.count,
                     "Tensor: shape \(shape) needs \(ShapeUtil.count(shape)) elements, storage has \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.requiresGrad = requiresGrad
        self.opName = nil
    }

    init(shape: [Int], storage: Storage, op: String, inputs: [Tensor], pullback: @escaping (Tensor) -> [Tensor?]) {
        self.shape = shape
        self.storage = storage
        self.requiresGrad = true
        self.opName = op
        self.inputs = inputs
        self.pullback = pullback
    }

    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        precondition(values.count == ShapeUtil.count(shape), "Tensor: \(values.count) values for shape \(shape)")
        self.init(shape: shape, storage: Storage(values), requiresGrad: requiresGrad)
    }

    public convenience init(scalar: Float) { self.init([scalar], shape: []) }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, storage: Storage(zeros: ShapeUtil.count(shape)), requiresGrad: requiresGrad)
    }
    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, storage: Storage(repeating: 1, count: ShapeUtil.count(shape)), requiresGrad: requiresGrad)
    }
    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        Tensor(shape: shape, storage: Storage(repeating: value, count: ShapeUtil.count(shape)))
    }
    /// Standard normals from a sequential generator (one stream per call).
    public static func randn(_ shape: [Int], rng: inout RNG, requiresGrad: Bool = false) -> Tensor {
        let s = Storage(uninitializedCount: ShapeUtil.count(shape))
        rng.normal(s.ptr, count: s.count)
        return Tensor(shape: shape, storage: s, requiresGrad: requiresGrad)
    }
    public static func rand(_ shape: [Int], rng: inout RNG) -> Tensor {
        let s = Storage(uninitializedCount: ShapeUtil.count(shape))
        rng.uniform(s.ptr, count: s.count)
        return Tensor(shape: shape, storage: s)
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var scalars: [Float] { storage.array }
    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements, not 1")
        return storage.ptr[0]
    }
    /// True when this tensor is the output of a recorded op (not a leaf).
    public var isRecorded: Bool { pullback != nil }

    /// A leaf with the same values, cut from the tape.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    public var description: String {
        let vals = count <= 8 ? "\(scalars)" : "\(Array(scalars.prefix(8)))..."
        return "Tensor(shape: \(shape), \(vals)\(requiresGrad ? ", requiresGrad" : ""))"
    }

    /// Output of an op: recorded on the tape only when some input needs a gradient.
    static func result(_ op: String, shape: [Int], storage: Storage, inputs: [Tensor],
                       pullback: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        OpProfile.forwardDone(op)
        if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            return Tensor(shape: shape, storage: storage, op: op, inputs: inputs, pullback: pullback)
        }
        return Tensor(shape: shape, storage: storage)
    }
}

/// Global switch for recording. Sampling and evaluation run under `noGrad`.
public enum GradMode {
    nonisolated(unsafe) public private(set) static var isEnabled = true

    public static func noGrad<T>(_ body: () throws -> T) rethrows -> T {
        let old = isEnabled
        isEnabled = false
        defer { isEnabled = old }
        return try body()
    }
}

public func noGrad<T>(_ body: () throws -> T) rethrows -> T { try GradMode.noGrad(body) }
