/* conv — C reference of the VAE decoder's operations (see conv.h).
 *
 * The convolution is im2col + one sgemm per tile of output pixels. The
 * patch matrix for a tile has one row per (input channel, kernel tap) in
 * exactly the order of the weight's trailing dimensions, so the weight
 * tensor is used as stored, without repacking. Tiles exist only to bound
 * memory: a 3x3x3 kernel over 96 channels of a 480x832 frame would need a
 * 4 GB patch matrix in one piece; in tiles it needs whatever scratch the
 * caller grants, and each sgemm is still large enough to run near peak.
 */
#include "conv.h"

#include <math.h>
#include <string.h>

#include "blas.h"

size_t kn_conv_scratch_min(int cin, int kt, int kh, int kw)
{
    if (kt == 1 && kh == 1 && kw == 1)
        return 0; /* pointwise: the input frame is the patch matrix */
    return (size_t)cin * (size_t)kt * (size_t)kh * (size_t)kw;
}

size_t kn_conv_scratch_want(int cin, int kt, int kh, int kw, int h, int w)
{
    return kn_conv_scratch_min(cin, kt, kh, kw) * (size_t)h * (size_t)w;
}

/* One row of the patch matrix for pixels [p0, p0 + np) of a w-wide frame:
 * the values of plane `src` (NULL = zeros) shifted by (oy, ox), zero where
 * the shifted position falls outside the frame. */
static void gather_row(const float *src, int h, int w, int oy, int ox, size_t p0, size_t np,
                       float *dst)
{
    size_t p = p0, end = p0 + np;
    while (p < end) {
        int y = (int)(p / (size_t)w), x = (int)(p % (size_t)w);
        size_t run = (size_t)(w - x);
        if (run > end - p)
            run = end - p;
        int sy = y + oy;
        if (!src || sy < 0 || sy >= h) {
            memset(dst, 0, run * sizeof *dst);
        } else {
            const float *row = src + (size_t)sy * (size_t)w;
            /* Output columns x..x+run-1 read source columns shifted by ox;
             * only the part inside [0, w) is copied, the rest is zero. */
            int lo = x + ox, hi = x + (int)run + ox; /* source [lo, hi) */
            int a = lo < 0 ? 0 : lo, b = hi > w ? w : hi;
            size_t lead = (size_t)(a - lo);
            if (b <= a) {
                memset(dst, 0, run * sizeof *dst);
            } else {
                size_t mid = (size_t)(b - a);
                memset(dst, 0, lead * sizeof *dst);
                memcpy(dst + lead, row + a, mid * sizeof *dst);
                memset(dst + lead + mid, 0, (run - lead - mid) * sizeof *dst);
            }
        }
        dst += run;
        p += run;
    }
}

static void im2col_tile(const float *const *in, int cin, int h, int w, int kt, int kh, int kw,
                        size_t p0, size_t np, float *col)
{
    size_t hw = (size_t)h * (size_t)w;
    int ph = (kh - 1) / 2, pw = (kw - 1) / 2;
    float *dst = col;
    for (int ci = 0; ci < cin; ci++)
        for (int dt = 0; dt < kt; dt++) {
            const float *plane = in[dt] ? in[dt] + (size_t)ci * hw : NULL;
            for (int dy = 0; dy < kh; dy++)
                for (int dx = 0; dx < kw; dx++) {
                    gather_row(plane, h, w, dy - ph, dx - pw, p0, np, dst);
                    dst += np;
                }
        }
}

int kn_conv_3d(const float *const *in, int n_in, int cin, int h, int w, const float *weight,
               const float *bias, int cout, int kt, int kh, int kw, float *out, float *scratch,
               size_t scratch_n)
{
    if (cin <= 0 || cout <= 0 || h <= 0 || w <= 0 || kt <= 0 || kh <= 0 || kw <= 0 || kh % 2 == 0 ||
        kw % 2 == 0 || n_in < kt)
        return -1;
    size_t hw = (size_t)h * (size_t)w;
    size_t kdim = (size_t)cin * (size_t)kt * (size_t)kh * (size_t)kw;
    int pointwise = kt == 1 && kh == 1 && kw == 1;
    size_t tile = hw;
    if (!pointwise) {
        if (!scratch || scratch_n < kdim)
            return -1;
        tile = scratch_n / kdim;
        if (tile > hw)
            tile = hw;
    }
    int n_out = n_in - kt + 1;
    for (int f = 0; f < n_out; f++) {
        float *of = out + (size_t)f * (size_t)cout * hw;
        for (size_t p0 = 0; p0 < hw; p0 += tile) {
            size_t np = hw - p0 < tile ? hw - p0 : tile;
            for (int co = 0; co < cout; co++) {
                float b = bias ? bias[co] : 0.0f;
                float *row = of + (size_t)co * hw + p0;
                for (size_t i = 0; i < np; i++)
                    row[i] = b;
            }
            const float *bm;
            size_t ldb;
            if (pointwise) {
                if (!in[f])
                    continue; /* a zero frame contributes nothing but the bias */
                bm = in[f] + p0;
                ldb = hw;
            } else {
                im2col_tile(in + f, cin, h, w, kt, kh, kw, p0, np, scratch);
                bm = scratch;
                ldb = np;
            }
            blas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)np, (int)kdim, 1.0f,
                       weight, (int)kdim, bm, (int)ldb, 1.0f, of + p0, (int)hw);
        }
    }
    return 0;
}

void kn_conv_rmsnorm(const float *x, int nframes, int c, size_t hw, const float *gamma, float *out)
{
    enum { BLK = 256 };
    float scale = sqrtf((float)c);
    for (int f = 0; f < nframes; f++) {
        const float *xf = x + (size_t)f * (size_t)c * hw;
        float *of = out + (size_t)f * (size_t)c * hw;
        /* Pixels in blocks so the per-pixel sums stay in a small buffer
         * while the channel planes stream past with unit stride. */
        for (size_t p0 = 0; p0 < hw; p0 += BLK) {
            size_t np = hw - p0 < BLK ? hw - p0 : BLK;
            float acc[BLK];
            for (size_t i = 0; i < np; i++)
                acc[i] = 0.0f;
            for (int ch = 0; ch < c; ch++) {
                const float *src = xf + (size_t)ch * hw + p0;
                for (size_t i = 0; i < np; i++)
                    acc[i] += src[i] * src[i];
            }
            for (size_t i = 0; i < np; i++) {
                float norm = sqrtf(acc[i]);
                acc[i] = scale / (norm > 1e-12f ? norm : 1e-12f);
            }
            for (int ch = 0; ch < c; ch++) {
                const float *src = xf + (size_t)ch * hw + p0;
                float *dst = of + (size_t)ch * hw + p0;
                float g = gamma[ch];
                for (size_t i = 0; i < np; i++)
                    dst[i] = src[i] * acc[i] * g;
            }
        }
    }
}

void kn_conv_silu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + expf(-x[i]));
}

void kn_conv_add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void kn_conv_clamp(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

void kn_conv_upsample2x(const float *x, int nframes, int c, int h, int w, float *out)
{
    size_t planes = (size_t)nframes * (size_t)c;
    size_t w2 = 2 * (size_t)w;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *src = x + pl * (size_t)h * (size_t)w;
        float *dst = out + pl * 4 * (size_t)h * (size_t)w;
        for (int y = 0; y < h; y++) {
            const float *srow = src + (size_t)y * (size_t)w;
            float *d0 = dst + (size_t)(2 * y) * w2;
            for (int xx = 0; xx < w; xx++)
                d0[2 * xx] = d0[2 * xx + 1] = srow[xx];
            memcpy(d0 + w2, d0, w2 * sizeof *d0);
        }
    }
}

size_t kn_conv_attn_scratch_want(int n)
{
    return (size_t)n * (size_t)n;
}

int kn_conv_attn(const float *q, const float *k, const float *v, int c, int n, float *out,
                 float *scratch, size_t scratch_n)
{
    if (c <= 0 || n <= 0 || !scratch || scratch_n < (size_t)n)
        return -1;
    size_t blk = scratch_n / (size_t)n;
    if (blk > (size_t)n)
        blk = (size_t)n;
    float scale = 1.0f / sqrtf((float)c);
    for (size_t i0 = 0; i0 < (size_t)n; i0 += blk) {
        int nb = (int)((size_t)n - i0 < blk ? (size_t)n - i0 : blk);
        /* scores[nb, n] = q[:, i0:i0+nb]^T k * scale */
        blas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nb, n, c, scale, q + i0, n, k, n, 0.0f,
                   scratch, n);
        for (int r = 0; r < nb; r++) {
            float *s = scratch + (size_t)r * (size_t)n;
            float mx = s[0];
            for (int j = 1; j < n; j++)
                mx = s[j] > mx ? s[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j < n; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < n; j++)
                s[j] *= inv;
        }
        /* out[:, i0:i0+nb] = v[c, n] * scores^T */
        blas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, nb, n, 1.0f, v, n, scratch, n, 0.0f,
                   out + i0, n);
    }
    return 0;
}
