/* yuv — float RGB to I420, the C reference (see yuv.h for the matrix).
 *
 * The frame is walked a pair of rows at a time: each 2x2 block gives four
 * luma samples and one Cb/Cr pair. Cb and Cr are linear in R, G, B, so the
 * mean of the four pixels' chroma is the chroma of their mean colour, which
 * is what is computed (one matrix product per block instead of four).
 * Arithmetic is float; every output is in range after clamping the inputs,
 * so only rounding remains.
 */
#include "yuv.h"

#define KR 0.2126f
#define KG 0.7152f
#define KB 0.0722f

/* [-1, 1] -> [0, 1], clamped; NaN -> 0. */
static inline float unit(float x) {
    float v = (x + 1.0f) * 0.5f;
    if (!(v > 0.0f))
        return 0.0f;
    return v > 1.0f ? 1.0f : v;
}

static inline uint8_t to_u8(float v) { return (uint8_t)(int)(v + 0.5f); }

void kn_rgbf_to_i420(const float *r, const float *g, const float *b, int w, int h, uint8_t *dst) {
    const int cw = w / 2;
    uint8_t *Y = dst, *U = dst + (size_t)w * h, *V = U + (size_t)cw * (h / 2);
    for (int y = 0; y < h; y += 2) {
        const size_t o0 = (size_t)y * w, o1 = o0 + (size_t)w;
        uint8_t *urow = U + (size_t)(y / 2) * cw, *vrow = V + (size_t)(y / 2) * cw;
        for (int x = 0; x < w; x += 2) {
            const size_t at[4] = {o0 + x, o0 + x + 1, o1 + x, o1 + x + 1};
            float rs = 0.0f, gs = 0.0f, bs = 0.0f;
            for (int k = 0; k < 4; k++) {
                float rv = unit(r[at[k]]), gv = unit(g[at[k]]), bv = unit(b[at[k]]);
                Y[at[k]] = to_u8(16.0f + 219.0f * (KR * rv + KG * gv + KB * bv));
                rs += rv;
                gs += gv;
                bs += bv;
            }
            rs *= 0.25f;
            gs *= 0.25f;
            bs *= 0.25f;
            float luma = KR * rs + KG * gs + KB * bs;
            urow[x / 2] = to_u8(128.0f + 224.0f * (bs - luma) / 1.8556f);
            vrow[x / 2] = to_u8(128.0f + 224.0f * (rs - luma) / 1.5748f);
        }
    }
}
