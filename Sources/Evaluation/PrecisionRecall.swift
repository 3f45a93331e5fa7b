import Foundation
import Autograd
import TensorCore

// Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019), in an evaluator's feature
// space: each set's manifold is the union of balls around its points, each ball's radius the
// distance to the point's k-th nearest neighbour in its own set. Precision is the share of
// generated points inside the real manifold (fidelity), recall the share of real points inside
// the generated one (diversity). FD mixes the two; these read them apart.

/// Rows of an [N, D] feature tensor in Double, with their squared norms.
struct FeatureSet {
    let rows: [Double]
    let norms: [Double]
    let count: Int, dim: Int

    init(_ t: Tensor) throws {
        guard t.rank == 2, t.shape[0] >= 1 else {
            throw ShapeError(op: "precisionRecall", "features must be [N >= 1, D], got \(t.shape)")
        }
        let n = t.shape[0], d = t.shape[1]
        let r = (0..<t.count).map { Double(t.storage.ptr[$0]) }
        count = n; dim = d; rows = r
        norms = (0..<n).map { i in (0..<d).reduce(0.0) { $0 + r[i * d + $1] * r[i * d + $1] } }
    }

    /// Squared distances from rows lo..<hi of `self` to every row of `other`, row-major.
    func squaredDistances(_ lo: Int, _ hi: Int, to other: FeatureSet) -> [Double] {
        let m = hi - lo, n = other.count
        var g = [Double](repeating: 0, count: m * n)
        rows.withUnsafeBufferPointer { a in
            other.rows.withUnsafeBufferPointer { b in
                g.withUnsafeMutableBufferPointer { c in
                    BLAS.dgemmABt(m: m, n: n, k: dim, a: a.baseAddress! + lo * dim, b: b.baseAddress!, c: c.baseAddress!)
                }
            }
        }
        for i in 0..<m { for j in 0..<n { g[i * n + j] = max(0, norms[lo + i] + other.norms[j] - 2 * g[i * n + j]) } }
        return g
    }

    /// Squared distance of each point to its k-th nearest neighbour in the set (itself excluded).
    func kthNeighbourRadii(k: Int, block: Int = 512) -> [Double] {
        var radii: [Double] = []
        radii.reserveCapacity(count)
        var lo = 0
        while lo < count {
            let hi = min(count, lo + block)
            let d = squaredDistances(lo, hi, to: self)
            // The k smallest distances to other points, kept sorted (k is small: no full sort).
            var best = [Double](repeating: .infinity, count: k)
            for i in 0..<(hi - lo) {
                for j in 0..<k { best[j] = .infinity }
                let row = i * count
                for j in 0..<count where j != lo + i {
                    var v = d[row + j]
                    guard v < best[k - 1] else { continue }
                    for m in 0..<k where v < best[m] { swap(&v, &best[m]) }
                }
                radii.append(best[k - 1])
            }
            lo = hi
        }
        return radii
    }

    /// Share of this set's points that lie in some ball (centre in `other`, radius `radii`).
    func coveredShare(by other: FeatureSet, radii: [Double], block: Int = 512) -> Double {
        var inside = 0
        var lo = 0
        while lo < count {
            let hi = min(count, lo + block)
            let d = squaredDistances(lo, hi, to: other)
            for i in 0..<(hi - lo) {
                for j in 0..<other.count where d[i * other.count + j] <= radii[j] { inside += 1; break }
            }
            lo = hi
        }
        return Double(inside) / Double(count)
    }
}

/// The real set's side of precision and recall, computed once per evaluation.
public struct RealManifold {
    let set: FeatureSet
    let radii: [Double]
    public let k: Int

    public init(real: Tensor, k: Int = 3) throws {
        set = try FeatureSet(real)
        guard k >= 1, set.count > k else {
            throw ShapeError(op: "precisionRecall", "need more than k = \(k) real points, got \(set.count)")
        }
        self.k = k
        radii = set.kthNeighbourRadii(k: k)
    }

    /// (precision, recall) of generated features [M, D] against this manifold.
    public func precisionRecall(_ fake: Tensor) throws -> (precision: Double, recall: Double) {
        let f = try FeatureSet(fake)
        guard f.dim == set.dim else {
            throw ShapeError(op: "precisionRecall", "feature widths differ: \(f.dim) vs \(set.dim)")
        }
        guard f.count > k else { throw ShapeError(op: "precisionRecall", "need more than k = \(k) generated points, got \(f.count)") }
        let precision = f.coveredShare(by: set, radii: radii)
        let recall = set.coveredShare(by: f, radii: f.kthNeighbourRadii(k: k))
        return (precision, recall)
    }
}
