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
// Sequentially consistent atomics on a long, and a spin-wait hint, for TensorCore's thread pool
// (its wake-up protocol needs store->load ordering between two flags).
static inline long rf_atomic_load(long *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void rf_atomic_store(long *p, long v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline long rf_atomic_add(long *p, long v) { return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST); }
static inline long rf_atomic_exchange(long *p, long v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline int rf_atomic_cas(long *p, long expected, long desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline void rf_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
