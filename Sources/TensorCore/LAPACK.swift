import CBLAS

public enum LAPACK {
    /// Eigenvalues (ascending) and, when `vectors`, eigenvectors of a symmetric n x n matrix
    /// (symmetric, so row- or column-major is the same). LAPACK returns eigenvectors as columns
    /// of a column-major matrix: eigenvector k is `vectors[k*n ..< (k+1)*n]`.
    public static func symmetricEigen(_ a: [Double], n: Int, vectors: Bool = true) throws -> (values: [Double], vectors: [Double]) {
        precondition(a.count == n * n, "symmetricEigen: \(a.count) values for a \(n)x\(n) matrix")
        var m = a
        var w = [Double](repeating: 0, count: n)
        var jobz: CChar = vectors ? 86 : 78  // 'V' : 'N'
        var uplo: CChar = 85  // 'U'
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        var lwork: Int32 = -1, liwork: Int32 = -1
        var wq = [Double](repeating: 0, count: 1)
        var iq = [Int32](repeating: 0, count: 1)
        dsyevd_(&jobz, &uplo, &nn, &m, &lda, &w, &wq, &lwork, &iq, &liwork, &info)  // workspace query
        lwork = Int32(wq[0]); liwork = iq[0]
        var work = [Double](repeating: 0, count: Int(max(lwork, 1)))
        var iwork = [Int32](repeating: 0, count: Int(max(liwork, 1)))
        dsyevd_(&jobz, &uplo, &nn, &m, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
        if info != 0 { throw ShapeError(op: "symmetricEigen", "LAPACK dsyevd failed with info \(info) for n = \(n)") }
        return (w, m)
    }
}
