/* kn — the compute backend behind every kernel in kernels/.
 *
 * Each operation has one contract (its header), a C reference
 * implementation that is always built and always tested, and a CUDA
 * implementation built when the toolkit is present. Which one runs is
 * decided once, at run time, when a kn_ctx is made: callers never #ifdef.
 * A build with CUDA still runs on a machine without a GPU, on the C path,
 * and says so (kn_backend / kn_reason), so an operator can tell which path
 * a worker or coordinator really uses.
 */
#ifndef KN_H
#define KN_H

#include <stddef.h>

typedef enum {
    KN_AUTO = 0, /* CUDA when this build has it and a device is visible, else C */
    KN_C,        /* always the C reference */
    KN_CUDA      /* CUDA or fail */
} kn_pref;

typedef struct kn_ctx kn_ctx;

/* Choose a backend. On success *out is owned by the caller (kn_free).
 * Fails only for KN_CUDA when CUDA cannot be used, saying why. */
int kn_new(kn_pref pref, kn_ctx **out, char *err, size_t errlen);
void kn_free(kn_ctx *ctx);

/* "c" or "cuda". */
const char *kn_backend(const kn_ctx *ctx);
/* Why that backend: "CUDA device 0: NVIDIA H100", "built without CUDA",
 * "no CUDA device: ...". */
const char *kn_reason(const kn_ctx *ctx);
/* Number of CUDA devices visible (0 without CUDA). */
int kn_gpu_count(const kn_ctx *ctx);

/* Parse "auto" | "c" | "cuda". Returns 0 or -1. */
int kn_pref_parse(const char *s, kn_pref *out);

#endif
