/* blend — C reference and dispatch. See blend.h. */
#include "blend.h"

#include <stdio.h>

#include "kn_internal.h"
#ifdef RF_HAVE_CUDA
#include "kn_cuda.h"
#endif

void kn_blend_u8_c(const uint8_t *const *src, const uint32_t *w_q16, unsigned nsrc, uint8_t *dst,
                   size_t n) {
    if (nsrc == 2) {
        /* The overwhelmingly common case (two segments meet): one pass,
         * which the compiler vectorises. */
        const uint8_t *a = src[0], *b = src[1];
        uint32_t wa = w_q16[0], wb = w_q16[1];
        for (size_t p = 0; p < n; p++)
            dst[p] = (uint8_t)((wa * a[p] + wb * b[p] + 32768u) >> 16);
        return;
    }
    for (size_t p = 0; p < n; p++) {
        uint32_t acc = 32768u;
        for (unsigned i = 0; i < nsrc; i++)
            acc += w_q16[i] * src[i][p];
        dst[p] = (uint8_t)(acc >> 16);
    }
}

int kn_blend_u8(const kn_ctx *ctx, const uint8_t *const *src, const uint32_t *w_q16, unsigned nsrc,
                uint8_t *dst, size_t n, char *err, size_t errlen) {
    uint64_t sum = 0;
    for (unsigned i = 0; i < nsrc; i++)
        sum += w_q16[i];
    if (nsrc == 0 || sum != KN_BLEND_ONE) {
        snprintf(err, errlen, "blend: %u weights sum to %llu, not %u", nsrc,
                 (unsigned long long)sum, KN_BLEND_ONE);
        return -1;
    }
#ifdef RF_HAVE_CUDA
    if (ctx && ctx->cuda)
        return kn_cuda_blend_u8(src, w_q16, nsrc, dst, n, err, errlen);
#else
    (void)ctx;
#endif
    kn_blend_u8_c(src, w_q16, nsrc, dst, n);
    return 0;
}
