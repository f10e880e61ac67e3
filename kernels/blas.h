/* blas — OpenBLAS, opened the first time a product is needed.
 *
 * Only the dit engine multiplies matrices, but the engine table links its
 * code into the coordinator and every worker. Linked, OpenBLAS brings in
 * libgfortran and libquadmath, and libquadmath registers printf handlers
 * when it loads, which sends every glibc printf of the process down its
 * slow path: measured, a sixth of the coordinator's event loop was printf
 * (bench/README.md). Opened with dlopen on first use instead, a process
 * that never runs the dit engine never loads any of them.
 *
 * The types and constants come from <cblas.h>; the library is the one the
 * build found (RF_OPENBLAS_PATH), or the system's libopenblas.so.0.
 */
#ifndef BLAS_H
#define BLAS_H

#include <stddef.h>

#include <cblas.h>

/* Open the library now: 0, or -1 with why in err (then blas_sgemm must
 * not be called). Thread-safe; later calls return the first outcome. */
int blas_load(char *err, size_t errlen);

/* cblas_sgemm. Opens the library if need be; a library that cannot be
 * opened here ends the process with a message (callers that can fail
 * cleanly call blas_load first). */
void blas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int m,
                int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc);

/* openblas_set_num_threads / openblas_get_num_threads (after blas_load). */
void blas_set_threads(int n);
int blas_threads(void);

#endif
