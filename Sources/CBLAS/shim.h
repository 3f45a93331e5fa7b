#include <cblas.h>
// Declared by OpenBLAS but not always in cblas.h.
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);
// LAPACK (bundled in OpenBLAS): symmetric eigen-decomposition, for Fréchet distances.
extern void dsyevd_(char *jobz, char *uplo, int *n, double *a, int *lda, double *w,
                    double *work, int *lwork, int *iwork, int *liwork, int *info);
// Not BLAS, but this is TensorCore's only C module: keep large buffers mapped between training
// steps (glibc would otherwise unmap and re-fault multi-MB activations every step).
#include <malloc.h>
static inline void rf_keep_large_allocations(void) {
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}
