import Autograd
import TensorCore

/// Exponential moving average of parameters: shadow = decay * shadow + (1 - decay) * p after
/// each optimizer step. The shadow is a copy keyed by parameter name; `swapped(_:)` runs
/// code (sampling, evaluation) with the averaged weights in the model.
public final class EMA {
    /// Double like torch's Python-float hyperparameters, so 1 - decay rounds as there.
    public var decay: Double
    /// Warm-up (diffusers' EMAModel default): update k (from 0) uses min(decay, (1 + k) / (10 + k))
    /// and update 0 copies the weights. Without it the shadow keeps decay^n of the starting
    /// weights, 5% after 3000 steps at 0.999: harmless from a flow teacher, but a 2-RF started from
    /// eps weights (whose output meant something else) kept enough of them to double its FD.
    public var warmup = false
    /// Number of `update()` calls so far (saved for an exact resume).
    public private(set) var updates: Int = 0
    public let parameters: [(name: String, tensor: Tensor)]
    /// Shadow copies, one per parameter, in `parameters` order.
    public let shadow: [Tensor]

    public init(_ parameters: [(String, Tensor)], decay: Double = 0.999) {
        self.parameters = parameters.map { (name: $0.0, tensor: $0.1) }
        self.decay = decay
        self.shadow = parameters.map { Tensor(shape: $0.1.shape, storage: $0.1.storage.copy()) }
    }

    /// A Float decay means the decimal it prints as (0.99, not 0.9900000095...).
    public convenience init(_ parameters: [(String, Tensor)], decay: Float) {
        self.init(parameters, decay: Double("\(decay)") ?? Double(decay))
    }

    public convenience init(_ model: Module, decay: Double = 0.999) {
        self.init(model.namedParameters(), decay: decay)
    }

    public convenience init(_ model: Module, decay: Float) {
        self.init(model.namedParameters(), decay: decay)
    }

    /// shadow = decay * shadow + (1 - decay) * p, computed as shadow + (1 - decay) * (p - shadow)
    /// in one fused multiply-add: what torch's `shadow.lerp_(p, 1 - decay)` does for decay > 0.5.
    public func update() {
        let od = Float(1 - currentDecay)
        for (p, s) in zip(parameters, shadow) {
            let src = p.tensor.storage.ptr, dst = s.storage.ptr
            Parallel.chunks(s.count) { r in
                var i = r.lowerBound
                let vo = SIMD16<Float>(repeating: od)
                while i + 16 <= r.upperBound {
                    let e = UnsafeRawPointer(dst + i).loadUnaligned(as: SIMD16<Float>.self)
                    let x = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(dst + i).storeBytes(of: e.addingProduct(vo, x - e), as: SIMD16<Float>.self)
                    i += 16
                }
                while i < r.upperBound { dst[i] = dst[i].addingProduct(od, src[i] - dst[i]); i += 1 }
            }
        }
        updates += 1
    }

    /// The decay the next `update()` applies.
    public var currentDecay: Double {
        guard warmup else { return decay }
        if updates == 0 { return 0 }
        return min(decay, Double(1 + updates) / Double(10 + updates))
    }

    /// The shadow by parameter name.
    public func namedShadow() -> [(String, Tensor)] { zip(parameters, shadow).map { ($0.0.name, $0.1) } }

    /// Writes the averaged weights into the parameters (e.g. before exporting an EMA model).
    public func copyToParameters() {
        for (p, s) in zip(parameters, shadow) { p.tensor.storage.ptr.update(from: s.storage.ptr, count: s.count) }
    }

    /// Runs `body` with the averaged weights in the parameters, then restores the live ones
    /// (also when `body` throws).
    public func swapped<T>(_ body: () throws -> T) rethrows -> T {
        let saved = parameters.map { $0.tensor.storage.copy() }
        copyToParameters()
        defer { for (p, s) in zip(parameters, saved) { p.tensor.storage.ptr.update(from: s.ptr, count: s.count) } }
        return try body()
    }

    /// Restores a shadow saved by name (training state). Every parameter must be present with
    /// its shape; throws before changing anything otherwise.
    /// `source` (the file) prefixes the errors.
    public func load(shadow named: [String: Tensor], updates: Int, source: String? = nil) throws {
        let from = source.map { "\($0): " } ?? ""
        for (p, _) in zip(parameters, shadow) {
            guard let t = named[p.name] else { throw CheckpointError("\(from)EMA state has no shadow for '\(p.name)'") }
            if t.shape != p.tensor.shape {
                throw CheckpointError("\(from)EMA shadow '\(p.name)' has shape \(t.shape), parameter has \(p.tensor.shape)")
            }
        }
        let known = Set(parameters.map { $0.name })
        if let extra = named.keys.sorted().first(where: { !known.contains($0) }) {
            throw CheckpointError("\(from)EMA state has a shadow for '\(extra)', which the model does not hold")
        }
        for (p, s) in zip(parameters, shadow) { s.storage.ptr.update(from: named[p.name]!.storage.ptr, count: s.count) }
        self.updates = updates
    }
}
