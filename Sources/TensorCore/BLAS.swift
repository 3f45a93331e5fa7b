import CBLAS

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
/// op(A) is [m, k], op(B) is [k, n], C is [m, n].
public enum BLAS {
    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS leaves C scaled by beta; make the empty-sum case explicit.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y += alpha * x
    @inlinable
    public static func saxpy(_ n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    /// Double-precision C = A * B^T for row-major A [m, k], B [n, k], C [m, n] (distances
    /// between feature sets, where Float32 would blur near ties).
    public static func dgemmABt(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, b: UnsafePointer<Double>,
                                c: UnsafeMutablePointer<Double>) {
        if m == 0 || n == 0 { return }
        if k == 0 { c.update(repeating: 0, count: m * n); return }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k),
                    0, c, Int32(n))
    }
}
