#include <cblas.h>
// Declared by OpenBLAS but not always in cblas.h.
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);
// LAPACK (bundled in OpenBLAS): symmetric eigen-decomposition, for Fréchet distances.
extern void dsyevd_(char *jobz, char *uplo, int *n, double *a, int *lda, double *w,
                    double *work, int *lwork, int *iwork, int *liwork, int *info);
