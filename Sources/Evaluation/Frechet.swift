import Foundation
import Autograd
import TensorCore

/// Mean and covariance of the rows of an [N, D] feature matrix, in Double.
public struct GaussianFit {
    public let mean: [Double]
    public let cov: [Double]
    public let dim: Int
    public let count: Int

    public init(_ features: Tensor) throws {
        guard features.rank == 2, features.shape[0] >= 2 else {
            throw ShapeError(op: "GaussianFit", "need [N >= 2, D] features, got \(features.shape)")
        }
        let n = features.shape[0], d = features.shape[1]
        let p = features.storage.ptr
        var mu = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mu[j] += Double(p[i * d + j]) } }
        for j in 0..<d { mu[j] /= Double(n) }
        // Centred copy, then C = X^T X / (n - 1) with one dgemm-sized loop (D is small: <= 784).
        var xc = [Double](repeating: 0, count: n * d)
        for i in 0..<n { for j in 0..<d { xc[i * d + j] = Double(p[i * d + j]) - mu[j] } }
        var c = [Double](repeating: 0, count: d * d)
        xc.withUnsafeBufferPointer { x in
            c.withUnsafeMutableBufferPointer { cc in
                for i in 0..<n {
                    let row = x.baseAddress! + i * d
                    for a in 0..<d {
                        let va = row[a]
                        if va == 0 { continue }
                        let out = cc.baseAddress! + a * d
                        for b in a..<d { out[b] += va * row[b] }
                    }
                }
            }
        }
        for a in 0..<d { for b in a..<d { c[a * d + b] /= Double(n - 1); c[b * d + a] = c[a * d + b] } }
        mean = mu; cov = c; dim = d; count = n
    }
}

/// Fréchet distance between two Gaussians: ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)).
/// Tr((C1 C2)^(1/2)) is the sum of square roots of the eigenvalues of sqrt(C1) C2 sqrt(C1),
/// which is symmetric PSD, so two symmetric eigen-decompositions do it stably.
public func frechetDistance(_ a: GaussianFit, _ b: GaussianFit) throws -> Double {
    guard a.dim == b.dim else { throw ShapeError(op: "frechetDistance", "feature widths differ: \(a.dim) vs \(b.dim)") }
    let d = a.dim
    var m = 0.0
    for j in 0..<d { m += (a.mean[j] - b.mean[j]) * (a.mean[j] - b.mean[j]) }
    let (w1, v1) = try LAPACK.symmetricEigen(a.cov, n: d)
    // sqrt(C1) = V diag(sqrt(max(w, 0))) V^T, V's columns are v1[k*d ..< (k+1)*d].
    var s1 = [Double](repeating: 0, count: d * d)
    for k in 0..<d {
        let r = max(w1[k], 0).squareRoot()
        if r == 0 { continue }
        for i in 0..<d { let vi = v1[k * d + i] * r; for j in 0..<d { s1[i * d + j] += vi * v1[k * d + j] } }
    }
    let t = matmul(matmul(s1, b.cov, d), s1, d)
    let (w2, _) = try LAPACK.symmetricEigen(t, n: d, vectors: false)
    let trSqrt = w2.reduce(0) { $0 + max($1, 0).squareRoot() }
    var tr1 = 0.0, tr2 = 0.0
    for i in 0..<d { tr1 += a.cov[i * d + i]; tr2 += b.cov[i * d + i] }
    return max(0, m + tr1 + tr2 - 2 * trSqrt)
}

private func matmul(_ x: [Double], _ y: [Double], _ d: Int) -> [Double] {
    var out = [Double](repeating: 0, count: d * d)
    for i in 0..<d { for k in 0..<d { let v = x[i * d + k]; if v == 0 { continue }; for j in 0..<d { out[i * d + j] += v * y[k * d + j] } } }
    return out
}
