/* blas — OpenBLAS through dlopen. See blas.h. */
#include "blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cblas_sgemm's own type: its sizes are blasint, which is 64-bit in
 * OpenBLAS builds with 64-bit integers. */
typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint,
                         blasint, blasint, float, const float *, blasint, const float *, blasint,
                         float, float *, blasint);
#if defined(__GNUC__)
/* The header's declaration, compared without referring to the symbol
 * (which would link the library after all). */
_Static_assert(__builtin_types_compatible_p(sgemm_fn, __typeof__(&cblas_sgemm)),
               "sgemm_fn is not cblas_sgemm's type");
#endif

/* The library, as the dynamic linker's own state is: once per process,
 * set by the first blas_load (pthread_once) and read-only after it. */
static struct {
    pthread_once_t once;
    sgemm_fn sgemm;
    void (*set_threads)(int);
    int (*get_threads)(void);
    char err[512];
} lib = {.once = PTHREAD_ONCE_INIT};

static void *open_lib(void) {
    const char *names[] = {
#ifdef RF_OPENBLAS_PATH
        RF_OPENBLAS_PATH,
#endif
        "libopenblas.so.0",
    };
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    return h;
}

static void load_once(void) {
    void *h = open_lib();
    if (!h) {
        const char *why = dlerror();
        snprintf(lib.err, sizeof lib.err, "cannot open OpenBLAS (libopenblas.so.0): %s",
                 why ? why : "not found");
        return;
    }
    /* dlsym returns void *; POSIX guarantees it converts to a function
     * pointer, which the memcpy says without a cast ISO C frowns on. */
    void *f = dlsym(h, "cblas_sgemm"), *st = dlsym(h, "openblas_set_num_threads"),
         *gt = dlsym(h, "openblas_get_num_threads");
    if (!f || !st || !gt) {
        snprintf(lib.err, sizeof lib.err, "OpenBLAS library lacks cblas_sgemm or "
                 "openblas_set/get_num_threads");
        return; /* the handle stays open: dlclose would not make this better */
    }
    memcpy(&lib.set_threads, &st, sizeof st);
    memcpy(&lib.get_threads, &gt, sizeof gt);
    memcpy(&lib.sgemm, &f, sizeof f);
}

int blas_load(char *err, size_t errlen) {
    pthread_once(&lib.once, load_once);
    if (lib.sgemm)
        return 0;
    snprintf(err, errlen, "%s", lib.err);
    return -1;
}

void blas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int m,
                int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc) {
    char err[512];
    if (blas_load(err, sizeof err) != 0) {
        fprintf(stderr, "rfarm: %s\n", err);
        fflush(stderr); /* abort does not, and stderr may be buffered */
        abort();
    }
    lib.sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_set_threads(int n) {
    char err[512];
    if (blas_load(err, sizeof err) == 0)
        lib.set_threads(n);
}

int blas_threads(void) {
    char err[512];
    return blas_load(err, sizeof err) == 0 ? lib.get_threads() : 1;
}
