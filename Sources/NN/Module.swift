import Autograd
import TensorCore

/// A node of a model tree. Each module lists its own parameters and its sub-modules by local
/// name, in a fixed order; dotted names ("blocks.0.norm1.weight") follow from the tree, so
/// checkpoints, optimizer state and EMA shadows can all be keyed by name without reflection.
///
/// Parameters are plain `Tensor`s with `requiresGrad == true`. Their storage is updated in
/// place (optimizer steps, checkpoint loads), so references held by the model stay valid.
///
/// Conforming classes should implement `ownParameters()` and `children()` themselves (the
/// defaults return nothing) and store `isTraining`.
public protocol Module: AnyObject {
    /// Parameters held directly by this module, by local name, in a fixed order.
    func ownParameters() -> [(String, Tensor)]
    /// Direct sub-modules, by local name, in a fixed order.
    func children() -> [(String, Module)]
    /// Training mode (dropout active). Set for a whole tree with `train()` / `eval()`.
    var isTraining: Bool { get set }
}

extension Module {
    public func ownParameters() -> [(String, Tensor)] { [] }
    public func children() -> [(String, Module)] { [] }
}

/// A module with a single-tensor forward pass; what `Sequential` chains.
public protocol Layer: Module {
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

extension Module {
    /// Every module of the tree (self first, named ""), depth first, children in order.
    public func namedModules(prefix: String = "") -> [(String, Module)] {
        var out: [(String, Module)] = [(prefix, self)]
        for (name, child) in children() {
            out += child.namedModules(prefix: prefix.isEmpty ? name : "\(prefix).\(name)")
        }
        return out
    }

    /// All (dotted name, tensor) pairs, including repeats of a shared (tied) tensor under each
    /// of its names: what a checkpoint holds.
    public func stateDict() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (prefix, m) in namedModules() {
            for (name, p) in m.ownParameters() {
                out.append((prefix.isEmpty ? name : "\(prefix).\(name)", p))
            }
        }
        return out
    }

    /// Parameters by dotted name; a tensor shared by several modules appears once (under its
    /// first name), so an optimizer updates it once. Deterministic order.
    public func namedParameters() -> [(String, Tensor)] {
        var seen = Set<ObjectIdentifier>()
        return stateDict().filter { seen.insert(ObjectIdentifier($0.1)).inserted }
    }

    public func parameters() -> [Tensor] { namedParameters().map { $0.1 } }

    /// Total number of scalars over all (distinct) parameters.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Drops every parameter's gradient (PyTorch's `set_to_none=True`).
    public func zeroGrad() { for p in parameters() { p.grad = nil } }

    /// Sets training mode on the whole tree.
    public func train(_ on: Bool = true) { for (_, m) in namedModules() { m.isTraining = on } }

    /// Sets evaluation mode on the whole tree.
    public func eval() { train(false) }
}

// MARK: - Containers

/// Layers applied in order; children are named "0", "1", ... like torch.nn.Sequential.
public final class Sequential: Layer {
    public var layers: [Layer]
    public var isTraining = true

    public init(_ layers: [Layer]) { self.layers = layers }

    public func children() -> [(String, Module)] { layers.enumerated().map { ("\($0.offset)", $0.element as Module) } }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = x
        for l in layers { h = try l(h) }
        return h
    }
}

/// An indexed list of modules of one type (e.g. the blocks of a network); children are
/// named "0", "1", ... like torch.nn.ModuleList.
public final class ModuleList<M: Module>: Module {
    public var modules: [M]
    public var isTraining = true

    public init(_ modules: [M]) { self.modules = modules }

    public func children() -> [(String, Module)] { modules.enumerated().map { ("\($0.offset)", $0.element as Module) } }

    public var count: Int { modules.count }
    public subscript(i: Int) -> M { modules[i] }
}

// MARK: - Initialisation

/// Parameter initialisers. All draw from an explicit `RNG`, so a seed fixes a model.
public enum Init {
    /// U(-bound, bound), as a parameter (requiresGrad).
    public static func uniform(_ shape: [Int], bound: Float, rng: inout RNG) -> Tensor {
        let s = Storage(uninitializedCount: ShapeUtil.count(shape))
        rng.uniform(s.ptr, count: s.count)
        for i in 0..<s.count { s.ptr[i] = (2 * s.ptr[i] - 1) * bound }
        return Tensor(shape: shape, storage: s, requiresGrad: true)
    }

    /// N(0, std^2), as a parameter.
    public static func normal(_ shape: [Int], std: Float = 1, rng: inout RNG) -> Tensor {
        let s = Storage(uninitializedCount: ShapeUtil.count(shape))
        rng.normal(s.ptr, count: s.count)
        if std != 1 { for i in 0..<s.count { s.ptr[i] *= std } }
        return Tensor(shape: shape, storage: s, requiresGrad: true)
    }

    /// PyTorch's default for Linear/Conv weights and biases: kaiming_uniform(a = sqrt(5))
    /// reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    public static func torchDefault(_ shape: [Int], fanIn: Int, rng: inout RNG) -> Tensor {
        uniform(shape, bound: fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0, rng: &rng)
    }

    /// Xavier/Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
    public static func xavierUniform(_ shape: [Int], fanIn: Int, fanOut: Int, gain: Float = 1, rng: inout RNG) -> Tensor {
        uniform(shape, bound: gain * (6 / Float(max(1, fanIn + fanOut))).squareRoot(), rng: &rng)
    }

    public static func constant(_ shape: [Int], _ value: Float) -> Tensor {
        Tensor(shape: shape, storage: Storage(repeating: value, count: ShapeUtil.count(shape)), requiresGrad: true)
    }
}
