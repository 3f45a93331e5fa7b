import CBLAS

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
/// op(A) is [m, k], op(B) is [k, n], C is [m, n].
///
/// OpenBLAS always runs on one thread; a large product is split over our own ThreadPool instead.
/// With both pools alive, OpenBLAS's idle workers spin on sched_yield for ~0.1 s after every
/// threaded call and fight ours for the 2 cores (19% system time in a fashion training step).
public enum BLAS {
    /// Multiply-adds below which a product runs on the calling thread (a hand-off costs ~20 us,
    /// about 0.3M multiply-adds of sgemm on one core).
    public static let parallelWork = 1 << 19

    /// Pins OpenBLAS to one thread, once per process (before its first product).
    public static let serialOpenBLAS: Void = { openblas_set_num_threads(1) }()

    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int, oneThread: Bool = false) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS leaves C scaled by beta; make the empty-sum case explicit.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        _ = serialOpenBLAS
        let threads = Runtime.threads
        guard threads > 1, !oneThread, m * n * k >= parallelWork, max(m, n) >= 32 else {
            serial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        // Split the longer side of C; column blocks stay multiples of 16 (the kernels' width).
        if n >= m {
            let step = ((n + threads - 1) / threads + 15) / 16 * 16
            let parts = (n + step - 1) / step
            ThreadPool.perform(parts) { p in
                let j0 = p * step, cols = min(n, j0 + step) - j0
                serial(transA, transB, m, cols, k, alpha, a, lda, transB ? b + j0 * ldb : b + j0, ldb, beta, c + j0, ldc)
            }
        } else {
            let step = (m + threads - 1) / threads
            let parts = (m + step - 1) / step
            ThreadPool.perform(parts) { p in
                let i0 = p * step, rows = min(m, i0 + step) - i0
                serial(transA, transB, rows, n, k, alpha, transA ? a + i0 : a + i0 * lda, lda, b, ldb, beta, c + i0 * ldc, ldc)
            }
        }
    }

    @usableFromInline
    static func serial(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                       _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float,
                       _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y += alpha * x
    @inlinable
    public static func saxpy(_ n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        _ = serialOpenBLAS
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    /// Double-precision C = A * B^T for row-major A [m, k], B [n, k], C [m, n] (distances
    /// between feature sets, where Float32 would blur near ties).
    public static func dgemmABt(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, b: UnsafePointer<Double>,
                                c: UnsafeMutablePointer<Double>) {
        if m == 0 || n == 0 { return }
        if k == 0 { c.update(repeating: 0, count: m * n); return }
        _ = serialOpenBLAS
        let split = m * n * k >= parallelWork ? Runtime.threads : 1
        let step = (m + split - 1) / split
        ThreadPool.perform((m + step - 1) / step) { p in
            let i0 = p * step, rows = min(m, i0 + step) - i0
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(k), 1, a + i0 * k, Int32(k),
                        b, Int32(k), 0, c + i0 * n, Int32(n))
        }
    }
}
