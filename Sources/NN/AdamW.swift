import Foundation
import Autograd
import TensorCore

/// Optimizer moments and step counts keyed by parameter name: what a training-state file
/// stores for an exact resume.
public struct OptimizerState {
    /// Per parameter name: first moment (exp_avg), second moment (exp_avg_sq), step count.
    public var entries: [String: (expAvg: Tensor, expAvgSq: Tensor, step: Int)]
    public init(entries: [String: (expAvg: Tensor, expAvgSq: Tensor, step: Int)] = [:]) { self.entries = entries }
}

/// torch.optim.AdamW, step for step (single-tensor path):
///   p  *= 1 - lr * wd                        (decoupled weight decay, before the moments)
///   m  += (1 - b1) * (g - m)                 (torch's lerp)
///   v   = v * b2 + (1 - b2) * g * g
///   p  += (-lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// Scalars are formed in Double as Python does, then rounded to Float; the lerp and the
/// addcmul are fused multiply-adds like ATen's AVX kernels, so results equal torch's bit for
/// bit except where torch's (MKL) sqrt is off by an ulp. Parameters without a gradient are
/// skipped (their step does not advance), as in torch.
/// With `weightDecay = 0` this is exactly torch.optim.Adam (weight_decay = 0).
public final class AdamW {
    public let parameters: [(name: String, tensor: Tensor)]
    public var lr: Double
    public var beta1: Double, beta2: Double
    public var eps: Double
    public var weightDecay: Double
    /// Names of parameters exempt from weight decay (e.g. biases and norm scales).
    public var noDecay: Set<String>

    final class Slot {
        let expAvg: Storage, expAvgSq: Storage
        var step = 0
        init(count: Int) { expAvg = Storage(zeros: count); expAvgSq = Storage(zeros: count) }
    }
    var slots: [Slot?]

    public init(_ parameters: [(String, Tensor)], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                eps: Double = 1e-8, weightDecay: Double = 0.01, noDecay: Set<String> = []) {
        self.parameters = parameters.map { (name: $0.0, tensor: $0.1) }
        self.lr = lr
        self.beta1 = betas.0
        self.beta2 = betas.1
        self.eps = eps
        self.weightDecay = weightDecay
        self.noDecay = noDecay
        self.slots = Array(repeating: nil, count: parameters.count)
    }

    /// Optimises every (distinct) parameter of `model`.
    public convenience init(_ model: Module, lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                            eps: Double = 1e-8, weightDecay: Double = 0.01, noDecay: Set<String> = []) {
        self.init(model.namedParameters(), lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, noDecay: noDecay)
    }

    /// Drops all gradients (set_to_none).
    public func zeroGrad() { for p in parameters { p.tensor.grad = nil } }

    /// One update of every parameter that has a gradient.
    public func step() {
        for (i, p) in parameters.enumerated() {
            guard let g = p.tensor.grad else { continue }
            precondition(g.count == p.tensor.count, "AdamW: gradient of '\(p.name)' has shape \(g.shape), parameter \(p.tensor.shape)")
            let slot: Slot
            if let s = slots[i] { slot = s } else { slot = Slot(count: p.tensor.count); slots[i] = slot }
            slot.step += 1
            let t = Double(slot.step)
            let bc1 = 1 - pow(beta1, t)
            let bc2Sqrt = (1 - pow(beta2, t)).squareRoot()
            let wd = noDecay.contains(p.name) ? 0 : weightDecay
            AdamW.update(count: p.tensor.count, param: p.tensor.storage.ptr, grad: g.storage.ptr,
                         expAvg: slot.expAvg.ptr, expAvgSq: slot.expAvgSq.ptr,
                         decay: Float(1 - lr * wd), lerpWeight: Float(1 - beta1), beta2: Float(beta2),
                         oneMinusBeta2: Float(1 - beta2), negStepSize: Float(-(lr / bc1)),
                         bc2Sqrt: Float(bc2Sqrt), eps: Float(eps))
        }
    }

    /// The fused elementwise update, 16 lanes at a time over chunks split across threads.
    static func update(count: Int, param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>,
                       expAvg: UnsafeMutablePointer<Float>, expAvgSq: UnsafeMutablePointer<Float>,
                       decay: Float, lerpWeight: Float, beta2: Float, oneMinusBeta2: Float,
                       negStepSize: Float, bc2Sqrt: Float, eps: Float) {
        typealias V = SIMD16<Float>
        Parallel.chunks(count) { r in
            var i = r.lowerBound
            let vDecay = V(repeating: decay), vW = V(repeating: lerpWeight), vB2 = V(repeating: beta2)
            let vOmB2 = V(repeating: oneMinusBeta2), vNeg = V(repeating: negStepSize)
            let vBc = V(repeating: bc2Sqrt), vEps = V(repeating: eps)
            while i + 16 <= r.upperBound {
                var p = UnsafeRawPointer(param + i).loadUnaligned(as: V.self)
                let g = UnsafeRawPointer(grad + i).loadUnaligned(as: V.self)
                var m = UnsafeRawPointer(expAvg + i).loadUnaligned(as: V.self)
                var v = UnsafeRawPointer(expAvgSq + i).loadUnaligned(as: V.self)
                p = p * vDecay
                m = m.addingProduct(vW, g - m)
                v = (v * vB2).addingProduct(vOmB2 * g, g)
                // VMathExtra.sqrt equals squareRoot() bit for bit; the stdlib's SIMD
                // squareRoot() runs lane by lane (16 branchy scalar sqrts): 3x slower here.
                p = p + vNeg * m / (VMathExtra.sqrt(v) / vBc + vEps)
                UnsafeMutableRawPointer(param + i).storeBytes(of: p, as: V.self)
                UnsafeMutableRawPointer(expAvg + i).storeBytes(of: m, as: V.self)
                UnsafeMutableRawPointer(expAvgSq + i).storeBytes(of: v, as: V.self)
                i += 16
            }
            while i < r.upperBound {
                var p = param[i] * decay
                let g = grad[i]
                let m = expAvg[i].addingProduct(lerpWeight, g - expAvg[i])
                let v = (expAvgSq[i] * beta2).addingProduct(oneMinusBeta2 * g, g)
                p = p + negStepSize * m / (v.squareRoot() / bc2Sqrt + eps)
                param[i] = p; expAvg[i] = m; expAvgSq[i] = v
                i += 1
            }
        }
    }

    /// Step count of a parameter (0 before its first update), e.g. for logging.
    public func stepCount(of name: String) -> Int {
        guard let i = parameters.firstIndex(where: { $0.name == name }) else { return 0 }
        return slots[i]?.step ?? 0
    }

    /// Copies of the moments of every parameter updated so far, by parameter name.
    public func exportState() -> OptimizerState {
        var st = OptimizerState()
        for (i, p) in parameters.enumerated() {
            guard let s = slots[i] else { continue }
            st.entries[p.name] = (Tensor(shape: p.tensor.shape, storage: s.expAvg.copy()),
                                  Tensor(shape: p.tensor.shape, storage: s.expAvgSq.copy()), s.step)
        }
        return st
    }

    /// Restores moments exported by `exportState` (or read from a training-state file).
    /// Parameters absent from `state` start fresh; an unknown name or a wrong shape throws and
    /// leaves the optimizer unchanged.
    public func importState(_ state: OptimizerState) throws {
        var index: [String: Int] = [:]
        for (i, p) in parameters.enumerated() { index[p.name] = i }
        for name in state.entries.keys.sorted() {
            let e = state.entries[name]!
            guard let i = index[name] else {
                throw CheckpointError("optimizer state has moments for '\(name)', which the optimizer does not hold")
            }
            let shape = parameters[i].tensor.shape
            if e.expAvg.shape != shape || e.expAvgSq.shape != shape {
                throw CheckpointError("optimizer state for '\(name)' has shape \(e.expAvg.shape), parameter has \(shape)")
            }
            if e.step < 0 { throw CheckpointError("optimizer state for '\(name)' has negative step \(e.step)") }
        }
        for (i, p) in parameters.enumerated() {
            guard let e = state.entries[p.name] else { slots[i] = nil; continue }
            let s = Slot(count: p.tensor.count)
            s.expAvg.ptr.update(from: e.expAvg.storage.ptr, count: p.tensor.count)
            s.expAvgSq.ptr.update(from: e.expAvgSq.storage.ptr, count: p.tensor.count)
            s.step = e.step
            slots[i] = s
        }
    }
}
