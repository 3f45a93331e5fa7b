import XCTest
import Autograd
import TensorCore

/// Finite-difference gradient check. The scalar checked is sum(f(inputs) * R) for a fixed
/// random R (drawn from `seed`), so every output element contributes with a distinct weight.
/// `inputs` are the leaves whose gradients are checked: tensors passed to `f`, or parameters
/// `f` reaches by capture (a module's weights). Central differences in Float32 carry ~1e-3
/// relative noise, hence rtol 1e-2 (the PyTorch fixtures check 1e-4). Up to `maxProbes`
/// evenly spaced elements of each input are perturbed, to bound the cost on large tensors.
public func gradCheck(_ name: String, _ inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 1e-2, atol: Float = 1e-3,
                      maxProbes: Int = 48, seed: UInt64 = 1234, file: StaticString = #filePath, line: UInt = #line,
                      _ f: ([Tensor]) throws -> Tensor) throws {
    for x in inputs { x.requiresGrad = true; x.grad = nil }
    var rng = RNG(seed: seed)
    let probeOut = try noGrad { try f(inputs) }
    let r = Tensor.randn(probeOut.shape, rng: &rng)
    func objective() throws -> Double {
        let y = try noGrad { try f(inputs) }
        var s = 0.0
        for i in 0..<y.count { s += Double(y.storage.ptr[i]) * Double(r.storage.ptr[i]) }
        return s
    }
    let y = try f(inputs)
    let loss = try (y * r).sum()
    loss.backward()
    for (xi, x) in inputs.enumerated() {
        guard let g = x.grad else { XCTFail("\(name): input \(xi) got no gradient", file: file, line: line); continue }
        XCTAssertEqual(g.shape, x.shape, "\(name): gradient shape of input \(xi)", file: file, line: line)
        let n = x.count
        let stride = max(1, n / maxProbes)
        var i = 0
        while i < n {
            let old = x.storage.ptr[i]
            x.storage.ptr[i] = old + eps
            let up = try objective()
            x.storage.ptr[i] = old - eps
            let down = try objective()
            x.storage.ptr[i] = old
            let numeric = Float((up - down) / Double(2 * eps))
            let analytic = g.storage.ptr[i]
            if abs(numeric - analytic) > atol + rtol * abs(numeric) {
                XCTFail("\(name): input \(xi)[\(i)] analytic \(analytic) vs numeric \(numeric)", file: file, line: line)
                return
            }
            i += stride
        }
    }
}
