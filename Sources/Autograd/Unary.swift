import TensorCore
#if canImport(Glibc)
import Glibc
#endif

// Elementwise math: exp, log, sqrt, pow, abs, square, and the fused MSE loss. Each forward is
// one vectorised, parallel pass (K.map); each pullback one more (K.zip / K.zip3). Pullbacks
// hold the input's or the output's Storage, never the output Tensor (that would be a cycle).

extension K {
    /// exp with IEEE edges: VMathExtra.exp clamps its argument to [-87.3, 88.3], so blocks holding
    /// a lane outside that range (or a NaN) take exp(x/2)^2, which overflows to inf and
    /// underflows through the denormals like expf. Rare, hence a per-block branch.
    @inline(__always)
    static func expFull(_ x: V) -> V {
        let outside = (x .> V(repeating: 87)) .| (x .< V(repeating: -87)) .| (x .!= x)
        if !any(outside) { return VMathExtra.exp(x) }
        let h = VMathExtra.exp(x * V(repeating: 0.5))
        var r = VMathExtra.exp(x).replacing(with: h * h, where: outside)
        r = r.replacing(with: x, where: x .!= x)
        return r
    }

    /// x^n for an integer n >= 0 by binary powering (exact for small n up to rounding).
    @inline(__always)
    static func powInt(_ x: V, _ n: Int) -> V {
        var result = V(repeating: 1), base = x, k = n
        while k > 0 {
            if k & 1 == 1 { result *= base }
            k >>= 1
            if k > 0 { base *= base }
        }
        return result
    }

    /// out = x^p. Vectorised for the common exponents; other ones go through powf per element
    /// (correctly handles negative bases, zeros and infinities like C and PyTorch).
    static func pow(_ x: Storage, _ p: Float) -> Storage {
        switch p {
        case 0: return Storage(repeating: 1, count: x.count)
        case 1: return x.copy()
        case 2: return map(x) { $0 * $0 }
        case 0.5: return map(x) { VMathExtra.sqrt($0) }
        case -0.5: return map(x) { V(repeating: 1) / VMathExtra.sqrt($0) }
        case -1: return map(x) { V(repeating: 1) / $0 }
        default: break
        }
        if p == p.rounded(), abs(p) <= 64 {
            let n = Int(abs(p))
            return p > 0 ? map(x) { powInt($0, n) } : map(x) { V(repeating: 1) / powInt($0, n) }
        }
        let out = Storage(uninitializedCount: x.count)
        let src = x.ptr, dst = out.ptr
        Parallel.chunks(x.count, grain: Parallel.grain / 8) { r in
            for i in r { dst[i] = Glibc.powf(src[i], p) }
        }
        return out
    }
}

extension Tensor {
    // MARK: exp
    public func exp() -> Tensor {
        let x = self
        let y = K.map(x.storage) { K.expFull($0) }
        return Tensor.result("exp", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, y) { $0 * $1 })]  // d e^x = e^x
        }
    }

    // MARK: log
    public func log() -> Tensor {
        let x = self
        let y = K.map(x.storage) { VMathExtra.log($0) }
        return Tensor.result("log", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, x.storage) { $0 / $1 })]
        }
    }

    // MARK: sqrt
    public func sqrt() -> Tensor {
        let x = self
        let y = K.map(x.storage) { VMathExtra.sqrt($0) }
        return Tensor.result("sqrt", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, y) { $0 * 0.5 / $1 })]  // 1 / (2 sqrt x)
        }
    }

    // MARK: pow
    /// Elementwise x^p for a constant exponent (as torch.pow(x, p): NaN for a negative base
    /// with a non-integer exponent).
    public func pow(_ p: Float) -> Tensor {
        let x = self
        let y = K.pow(x.storage, p)
        return Tensor.result("pow", shape: x.shape, storage: y, inputs: [x]) { g in
            // d x^p = p x^(p-1); exactly zero for p = 0 (as torch), even at x = 0.
            if p == 0 { return [Tensor.zeros(x.shape)] }
            if p == 1 { return [g] }
            if p == 2 { return [Tensor(shape: x.shape, storage: K.zip(g.storage, x.storage) { 2 * $0 * $1 })] }
            let d = K.pow(x.storage, p - 1)
            return [Tensor(shape: x.shape, storage: K.zip(g.storage, d) { p * $0 * $1 })]
        }
    }

    // MARK: abs
    public func abs() -> Tensor {
        let x = self
        let y = K.map(x.storage) { VMathExtra.abs($0) }
        return Tensor.result("abs", shape: x.shape, storage: y, inputs: [x]) { g in
            // sign(x) * g, with sign(0) = 0 as in torch.
            [Tensor(shape: x.shape, storage: K.zip(g.storage, x.storage) { g, x in
                let s = SIMD16<Float>(repeating: 0).replacing(with: 1, where: x .> 0).replacing(with: -1, where: x .< 0)
                return g * s
            })]
        }
    }

    // MARK: square
    public func square() -> Tensor {
        let x = self
        let y = K.map(x.storage) { $0 * $0 }
        return Tensor.result("square", shape: x.shape, storage: y, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: K.zip(g.storage, x.storage) { 2 * $0 * $1 })]
        }
    }
}

// MARK: mseLoss
/// Mean of (a - b)^2 over all elements, as a scalar (shape []). Shapes must be equal: a silent
/// broadcast here is almost always a bug ([N, 1] against [N]).
public func mseLoss(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    guard a.shape == b.shape else {
        throw ShapeError(op: "mseLoss", "shapes \(a.shape) and \(b.shape) differ")
    }
    let n = a.count
    let pa = a.storage.ptr, pb = b.storage.ptr
    let total = K.parallelSum(n) { r in
        var acc = SIMD16<Float>(repeating: 0)
        var i = r.lowerBound
        while i + 16 <= r.upperBound {
            let d = UnsafeRawPointer(pa + i).loadUnaligned(as: SIMD16<Float>.self)
                - UnsafeRawPointer(pb + i).loadUnaligned(as: SIMD16<Float>.self)
            acc = acc.addingProduct(d, d)
            i += 16
        }
        var s = Double(acc.sum())
        while i < r.upperBound { let d = pa[i] - pb[i]; s += Double(d * d); i += 1 }
        return s
    }
    let out = Storage(repeating: Float(total / Double(max(n, 1))), count: 1)
    return Tensor.result("mse_loss", shape: [], storage: out, inputs: [a, b]) { g in
        let k = 2 * g.item / Float(max(n, 1))
        let ga = Tensor(shape: a.shape, storage: K.zip(a.storage, b.storage) { ($0 - $1) * k })
        return [a.requiresGrad ? ga : nil, b.requiresGrad ? -ga : nil]
    }
}

extension K {
    /// Sum of per-block partial results, blocks run in parallel; combined in Double and in a
    /// fixed order, so the result does not depend on the thread count's timing.
    static func parallelSum(_ n: Int, _ body: (Range<Int>) -> Double) -> Double {
        let block = 16_384
        let nb = (n + block - 1) / block
        if nb <= 1 { return n > 0 ? body(0..<n) : 0 }
        var partial = [Double](repeating: 0, count: nb)
        partial.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.items(nb, costPerItem: block) { i in
                base[i] = body((i * block)..<min(n, (i + 1) * block))
            }
        }
        return partial.reduce(0, +)
    }
}
