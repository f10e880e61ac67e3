/* kn — backend selection. See kn.h. */
#include "kn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RF_HAVE_CUDA
#include "kn_cuda.h"
#endif

#include "kn_internal.h"

int kn_new(kn_pref pref, kn_ctx **out, char *err, size_t errlen) {
    *out = NULL;
    kn_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "kernels: out of memory");
        return -1;
    }
    c->cuda = 0;
    if (pref == KN_C) {
        snprintf(c->reason, sizeof c->reason, "C reference requested");
    } else {
#ifdef RF_HAVE_CUDA
        char why[200];
        c->gpus = kn_cuda_probe(why, sizeof why);
        if (c->gpus > 0) {
            c->cuda = 1;
            snprintf(c->reason, sizeof c->reason, "%s", why);
        } else {
            snprintf(c->reason, sizeof c->reason, "no CUDA device: %s", why);
        }
#else
        snprintf(c->reason, sizeof c->reason, "built without CUDA");
#endif
        if (pref == KN_CUDA && !c->cuda) {
            snprintf(err, errlen, "kernels: CUDA requested but unavailable (%s)", c->reason);
            free(c);
            return -1;
        }
    }
    *out = c;
    return 0;
}

void kn_free(kn_ctx *ctx) { free(ctx); }

const char *kn_backend(const kn_ctx *ctx) { return ctx->cuda ? "cuda" : "c"; }
const char *kn_reason(const kn_ctx *ctx) { return ctx->reason; }
int kn_gpu_count(const kn_ctx *ctx) { return ctx->gpus; }

int kn_pref_parse(const char *s, kn_pref *out) {
    if (strcmp(s, "auto") == 0)
        *out = KN_AUTO;
    else if (strcmp(s, "c") == 0)
        *out = KN_C;
    else if (strcmp(s, "cuda") == 0)
        *out = KN_CUDA;
    else
        return -1;
    return 0;
}
