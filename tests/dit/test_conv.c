/* test_conv — the VAE decoder's layers (kernels/conv.c) against direct,
 * loop-by-loop definitions: convolutions of every kernel shape the decoder
 * uses with zero frames and the smallest and largest tilings, the channel
 * RMS norm, nearest upsampling and single-head attention with the smallest
 * and largest query blocks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conv.h"

static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / (float)0x1000000 * 2.0f - 1.0f;
}

static float *rand_buf(size_t n, uint64_t seed)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand(&seed);
    return p;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        m = d > m ? d : m;
    }
    return m;
}

/* The definition: out[f][co][y][x] = b[co] + sum in[f+dt][ci][y+dy-ph][x+dx-pw] w[...] */
static void conv_ref(const float *const *in, int n_in, int cin, int h, int w, const float *wt,
                     const float *bias, int cout, int kt, int kh, int kw, float *out)
{
    int ph = (kh - 1) / 2, pw = (kw - 1) / 2;
    for (int f = 0; f + kt <= n_in; f++)
        for (int co = 0; co < cout; co++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int ci = 0; ci < cin; ci++)
                        for (int dt = 0; dt < kt; dt++)
                            for (int dy = 0; dy < kh; dy++)
                                for (int dx = 0; dx < kw; dx++) {
                                    int sy = y + dy - ph, sx = x + dx - pw;
                                    const float *fr = in[f + dt];
                                    if (!fr || sy < 0 || sy >= h || sx < 0 || sx >= w)
                                        continue;
                                    acc += (double)fr[((size_t)ci * h + sy) * w + sx] *
                                           wt[(((size_t)co * cin + ci) * kt + dt) * kh * kw +
                                              (size_t)dy * kw + dx];
                                }
                    out[(((size_t)f * cout + co) * h + y) * w + x] = (float)acc;
                }
}

static void check_conv(int n_in, int n_null, int cin, int cout, int h, int w, int kt, int kh,
                       int kw)
{
    size_t frame = (size_t)cin * h * w, n_out = (size_t)(n_in - kt + 1) * cout * h * w;
    float *x = rand_buf((size_t)n_in * frame, 11);
    float *wt = rand_buf((size_t)cout * cin * kt * kh * kw, 12);
    float *b = rand_buf((size_t)cout, 13);
    const float **in = malloc((size_t)n_in * sizeof *in);
    for (int i = 0; i < n_in; i++)
        in[i] = i < n_null ? NULL : x + (size_t)i * frame;
    float *want = malloc(n_out * sizeof *want), *got = malloc(n_out * sizeof *got);
    conv_ref(in, n_in, cin, h, w, wt, b, cout, kt, kh, kw, want);

    size_t smin = kn_conv_scratch_min(cin, kt, kh, kw);
    size_t swant = kn_conv_scratch_want(cin, kt, kh, kw, h, w);
    /* one pixel per tile, an awkward tile that splits rows, one tile */
    size_t sizes[3] = {smin, smin * 5, swant + 7};
    for (int s = 0; s < 3; s++) {
        size_t sn = sizes[s] ? sizes[s] : 1;
        float *scratch = malloc(sn * sizeof *scratch);
        memset(got, 0xff, n_out * sizeof *got);
        assert_int_equal(kn_conv_3d(in, n_in, cin, h, w, wt, b, cout, kt, kh, kw, got, scratch, sn),
                         0);
        assert_true(max_abs_diff(got, want, n_out) < 1e-5);
        free(scratch);
    }
    free(x), free(wt), free(b), free(in), free(want), free(got);
}

static void conv_3x3x3_with_causal_zero_frames(void **state)
{
    (void)state;
    check_conv(5, 2, 3, 5, 5, 7, 3, 3, 3);
    check_conv(3, 0, 4, 2, 1, 1, 3, 3, 3); /* a 1x1 frame: every tap but the centre is padding */
}

static void conv_time_only_kernel(void **state)
{
    (void)state;
    check_conv(4, 1, 6, 12, 3, 4, 3, 1, 1);
}

static void conv_2d_3x3_and_pointwise(void **state)
{
    (void)state;
    check_conv(1, 0, 4, 2, 6, 5, 1, 3, 3);
    check_conv(3, 0, 5, 7, 4, 3, 1, 1, 1);
    check_conv(2, 1, 5, 7, 4, 3, 1, 1, 1); /* a zero frame gives the bias */
}

static void conv_refuses_too_little_scratch(void **state)
{
    (void)state;
    float x[2 * 9] = {0}, wt[3 * 2 * 27] = {0}, out[3 * 9], scratch[8];
    const float *in[3] = {NULL, x, x};
    assert_int_equal(kn_conv_3d(in, 3, 2, 3, 3, wt, NULL, 3, 3, 3, 3, out, scratch, 8), -1);
    assert_int_equal(kn_conv_3d(in, 2, 2, 3, 3, wt, NULL, 3, 3, 3, 3, out, scratch, 8), -1);
}

static void rmsnorm_is_l2_normalise_times_sqrt_c(void **state)
{
    (void)state;
    int nf = 2, c = 5;
    size_t hw = 300; /* more than one block of pixels */
    float *x = rand_buf((size_t)nf * c * hw, 21), *g = rand_buf((size_t)c, 22);
    float *got = malloc((size_t)nf * c * hw * sizeof *got);
    x[7] = 0.0f; /* a pixel of all zeros must give zeros, not NaN */
    for (int ch = 0; ch < c; ch++)
        x[(size_t)ch * hw + 7] = 0.0f;
    kn_conv_rmsnorm(x, nf, c, hw, g, got);
    for (int f = 0; f < nf; f++)
        for (size_t p = 0; p < hw; p++) {
            double ss = 0;
            for (int ch = 0; ch < c; ch++) {
                double v = x[((size_t)f * c + ch) * hw + p];
                ss += v * v;
            }
            double n = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
            for (int ch = 0; ch < c; ch++) {
                size_t i = ((size_t)f * c + ch) * hw + p;
                double want = x[i] / n * sqrt((double)c) * g[ch];
                assert_true(fabs(got[i] - want) < 1e-5);
            }
        }
    /* in place gives the same */
    kn_conv_rmsnorm(x, nf, c, hw, g, x);
    assert_true(max_abs_diff(x, got, (size_t)nf * c * hw) == 0.0);
    free(x), free(g), free(got);
}

static void silu_clamp_add(void **state)
{
    (void)state;
    float x[4] = {-100.0f, -1.0f, 0.0f, 2.0f};
    kn_conv_silu(x, 4);
    assert_true(fabsf(x[0]) < 1e-30f);
    assert_true(fabsf(x[1] - (float)(-1.0 / (1.0 + exp(1.0)))) < 1e-6f);
    assert_true(x[2] == 0.0f);
    assert_true(fabsf(x[3] - (float)(2.0 / (1.0 + exp(-2.0)))) < 1e-6f);
    float y[3] = {-3.0f, 0.5f, 7.0f}, one[3] = {1.0f, 1.0f, 1.0f};
    kn_conv_add(y, one, 3);
    kn_conv_clamp(y, 3, -1.0f, 1.0f);
    assert_true(y[0] == -1.0f && y[1] == 1.0f && y[2] == 1.0f);
}

static void upsample_duplicates_each_pixel(void **state)
{
    (void)state;
    int nf = 2, c = 3, h = 3, w = 5;
    float *x = rand_buf((size_t)nf * c * h * w, 31);
    float *out = malloc((size_t)nf * c * 4 * h * w * sizeof *out);
    kn_conv_upsample2x(x, nf, c, h, w, out);
    for (int pl = 0; pl < nf * c; pl++)
        for (int y = 0; y < 2 * h; y++)
            for (int xx = 0; xx < 2 * w; xx++)
                assert_true(out[((size_t)pl * 2 * h + y) * 2 * w + xx] ==
                            x[((size_t)pl * h + y / 2) * w + xx / 2]);
    free(x), free(out);
}

static void attention_matches_softmax_definition(void **state)
{
    (void)state;
    int c = 6, n = 37;
    float *q = rand_buf((size_t)c * n, 41), *k = rand_buf((size_t)c * n, 42),
          *v = rand_buf((size_t)c * n, 43);
    float *want = malloc((size_t)c * n * sizeof *want), *got = malloc((size_t)c * n * sizeof *got);
    double *p = malloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) {
        double mx = -1e300, sum = 0;
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int ch = 0; ch < c; ch++)
                s += (double)q[(size_t)ch * n + i] * k[(size_t)ch * n + j];
            p[j] = s / sqrt((double)c);
            mx = p[j] > mx ? p[j] : mx;
        }
        for (int j = 0; j < n; j++)
            sum += (p[j] = exp(p[j] - mx));
        for (int ch = 0; ch < c; ch++) {
            double acc = 0;
            for (int j = 0; j < n; j++)
                acc += p[j] / sum * v[(size_t)ch * n + j];
            want[(size_t)ch * n + i] = (float)acc;
        }
    }
    size_t sizes[3] = {(size_t)n, (size_t)n * 5, kn_conv_attn_scratch_want(n)};
    for (int s = 0; s < 3; s++) {
        float *scratch = malloc(sizes[s] * sizeof *scratch);
        assert_int_equal(kn_conv_attn(q, k, v, c, n, got, scratch, sizes[s]), 0);
        assert_true(max_abs_diff(got, want, (size_t)c * n) < 1e-5);
        free(scratch);
    }
    float small[4];
    assert_int_equal(kn_conv_attn(q, k, v, c, n, got, small, 4), -1);
    free(q), free(k), free(v), free(want), free(got), free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_3x3x3_with_causal_zero_frames),
        cmocka_unit_test(conv_time_only_kernel),
        cmocka_unit_test(conv_2d_3x3_and_pointwise),
        cmocka_unit_test(conv_refuses_too_little_scratch),
        cmocka_unit_test(rmsnorm_is_l2_normalise_times_sqrt_c),
        cmocka_unit_test(silu_clamp_add),
        cmocka_unit_test(upsample_duplicates_each_pixel),
        cmocka_unit_test(attention_matches_softmax_definition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
