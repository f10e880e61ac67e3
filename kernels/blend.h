/* blend — weighted sum of several 8-bit images: the stitcher's seam blend.
 *
 *     dst[p] = (sum_i w_q16[i] * src[i][p] + 2^15) >> 16
 *
 * Weights are fixed point with 16 fractional bits and must sum to exactly
 * 65536 (the planner guarantees it). Integer arithmetic makes the result
 * exact and identical on every backend: when all sources agree the output
 * equals them bit for bit, which is what lets a segmented render match a
 * single-worker render byte for byte.
 */
#ifndef BLEND_H
#define BLEND_H

#include <stddef.h>
#include <stdint.h>

#include "kn.h"

#define KN_BLEND_ONE 65536u

/* Blend nsrc (>= 1) images of n bytes each into dst (which may alias
 * none of the sources). Returns 0, or -1 with err set (weights that do
 * not sum to KN_BLEND_ONE, a CUDA failure). */
int kn_blend_u8(const kn_ctx *ctx, const uint8_t *const *src, const uint32_t *w_q16, unsigned nsrc,
                uint8_t *dst, size_t n, char *err, size_t errlen);

/* The C reference, callable directly (tests compare backends with it). */
void kn_blend_u8_c(const uint8_t *const *src, const uint32_t *w_q16, unsigned nsrc, uint8_t *dst,
                   size_t n);

#endif
