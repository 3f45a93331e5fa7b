import Autograd
import Models
import NN
import TensorCore

/// A layer of the velocity network that LoRA can adapt, by its dotted name in the checkpoint
/// (`net.mid_attn.attn.q_proj`).
public enum AdaptableLayer {
    case linear(Linear, attention: Bool)
    case conv(Conv2d)

    public var target: LoRATarget {
        switch self {
        case .linear(_, let attention): return attention ? .attention : .linear
        case .conv: return .conv
        }
    }

    /// The base weight the adapter's B·A is added to by a merge.
    public var weight: Tensor {
        switch self {
        case .linear(let l, _): return l.weight
        case .conv(let c): return c.weight
        }
    }

    var adapters: [LayerAdapter] {
        get {
            switch self {
            case .linear(let l, _): return l.adapters
            case .conv(let c): return c.adapters
            }
        }
        nonmutating set {
            switch self {
            case .linear(let l, _): l.adapters = newValue
            case .conv(let c): c.adapters = newValue
            }
        }
    }
}

extension FlowModel {
    /// The velocity network's linear layers (attention projections marked) and convolutions,
    /// by dotted name, in the model's order. The text encoder is left out: LoRA changes how
    /// images are drawn, not how captions are read.
    public func adaptableLayers() -> [(String, AdaptableLayer)] {
        let modules = namedModules()
        let attentionNames = Set(modules.compactMap { $0.1 is MultiheadAttention ? $0.0 : nil })
        return modules.compactMap { name, m in
            guard name.hasPrefix("net.") else { return nil }
            if let l = m as? Linear {
                let parent = name.split(separator: ".").dropLast().joined(separator: ".")
                return (name, .linear(l, attention: attentionNames.contains(parent)))
            }
            if let c = m as? Conv2d { return (name, .conv(c)) }
            return nil
        }
    }
}

/// The adapters of one LoRA, by layer name: a Module whose parameter names are the file's
/// tensor names (`<layer>.lora_A.weight`, `<layer>.lora_B.weight`).
public final class LoRASet: Module {
    public let rank: Int
    public let alpha: Float
    public let targets: [LoRATarget]
    public let layers: [(name: String, adapter: LoRALayer)]
    public var isTraining = true

    public init(rank: Int, alpha: Float, targets: [LoRATarget], layers: [(name: String, adapter: LoRALayer)]) {
        self.rank = rank; self.alpha = alpha; self.targets = targets; self.layers = layers
    }

    /// Fresh adapters (B = 0) on every layer of `model` whose kind is in `targets`.
    public convenience init(model: FlowModel, rank: Int, alpha: Float, targets: [LoRATarget], seed: UInt64) throws {
        guard rank >= 1 else { throw LoRAError("LoRA rank must be at least 1, got \(rank)") }
        guard alpha > 0, alpha.isFinite else { throw LoRAError("LoRA alpha must be positive, got \(alpha)") }
        var rng = RNG(seed: seed)
        var out: [(name: String, adapter: LoRALayer)] = []
        for (name, layer) in model.adaptableLayers() where targets.contains(layer.target) {
            switch layer {
            case .linear(let l, _): out.append((name, LoRALayer(linear: l, rank: rank, alpha: alpha, rng: &rng)))
            case .conv(let c): out.append((name, LoRALayer(conv: c, rank: rank, alpha: alpha, rng: &rng)))
            }
        }
        guard !out.isEmpty else {
            throw LoRAError("LoRA targets \(targets.map(\.rawValue)) match no layer of this \(model.spec.kind.rawValue) network (it has: \(Set(model.adaptableLayers().map { $0.1.target.rawValue }).sorted().joined(separator: ", ")))")
        }
        self.init(rank: rank, alpha: alpha, targets: targets, layers: out)
    }

    public func children() -> [(String, Module)] { layers.map { ($0.name, $0.adapter as Module) } }

    /// Adds each adapter to its layer of `model` (after any adapters already there).
    public func attach(to model: FlowModel) throws {
        let byName = Dictionary(model.adaptableLayers(), uniquingKeysWith: { a, _ in a })
        for (name, adapter) in layers {
            guard let layer = byName[name] else { throw LoRAError("LoRA layer '\(name)' is not a linear or convolution layer of the model") }
            layer.adapters = layer.adapters + [adapter]
        }
    }

    /// Folds the adapters into the base weights of `model`: W += scale · B·A.
    public func merge(into model: FlowModel) throws {
        let byName = Dictionary(model.adaptableLayers(), uniquingKeysWith: { a, _ in a })
        for (name, adapter) in layers {
            guard let layer = byName[name] else { throw LoRAError("LoRA layer '\(name)' is not a linear or convolution layer of the model") }
            let w = layer.weight, d = adapter.weightDelta()
            precondition(d.count == w.count, "LoRA merge: shapes were checked on load")
            for i in 0..<w.count { w.storage.ptr[i] += d.storage.ptr[i] }
        }
    }

    /// Sets the scale every adapter is applied with: (α / r) · `scale`.
    public func setScale(_ scale: Float) {
        for (_, a) in layers { a.scale = alpha / Float(rank) * scale }
    }
}
