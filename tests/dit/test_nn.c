/* nn kernels against plain double-precision definitions: the blocked
 * attention over more query rows than one block, with strided q/k/v; the
 * rotary embedding as a rotation of complex pairs; the split RMS norm
 * equal to the whole one; layer norm, products with transposes and empty
 * products. All of it at every vector width this CPU has (RFARM_NN_LANES
 * 4, 8, 16), and the element-wise ops equal bit for bit across widths. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn.h"

static uint64_t rng_state = 88172645463325252ull;

static float frand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *rand_buf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

/* kn_attention on q [nq, ldq], k [nk, ldk], v [nk, ldv] against the
 * definition in double, heads of hd channels; o has ldo columns. */
static void attention_vs_definition(int NQ, int NK, int HEADS, int HD, int LDQ, int LDK, int LDV,
                                    int LDO) {
    float *q = rand_buf((size_t)NQ * LDQ), *k = rand_buf((size_t)NK * LDK);
    float *v = rand_buf((size_t)NK * LDV), *o = calloc((size_t)NQ * LDO, sizeof(float));
    for (size_t i = 0; i < (size_t)NQ * LDQ; i++)
        q[i] *= 3.0f; /* peaky softmax rows */
    float *work = malloc(kn_attention_workspace(NQ, NK) * sizeof(float));
    double *s = malloc((size_t)NK * sizeof(double));
    kn_attention(q, LDQ, k, LDK, v, LDV, o, LDO, NQ, NK, HEADS, HD, work);
    double worst = 0.0;
    for (int h = 0; h < HEADS; h++)
        for (int i = 0; i < NQ; i++) {
            double mx = -1e300, sum = 0.0;
            for (int j = 0; j < NK; j++) {
                double d = 0.0;
                for (int c = 0; c < HD; c++)
                    d += (double)q[i * LDQ + h * HD + c] * k[j * LDK + h * HD + c];
                s[j] = d / sqrt((double)HD);
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j < NK; j++)
                sum += s[j] = exp(s[j] - mx);
            for (int c = 0; c < HD; c++) {
                double r = 0.0;
                for (int j = 0; j < NK; j++)
                    r += s[j] / sum * v[j * LDV + h * HD + c];
                double e = fabs(r - o[i * LDO + h * HD + c]);
                worst = e > worst ? e : worst;
            }
        }
    assert_true(worst < 1e-5);
    /* columns past heads*hd in o are not touched */
    for (int i = 0; i < NQ; i++)
        for (int c = HEADS * HD; c < LDO; c++)
            assert_true(o[i * LDO + c] == 0.0f);
    free(q), free(k), free(v), free(o), free(work), free(s);
}

static void test_attention_matches_definition(void **state) {
    (void)state;
    /* 600 query rows: more than two blocks (of 256 rows at 77 keys), the
     * last one partial; strided q, k, v and o */
    attention_vs_definition(600, 77, 3, 8, 40, 50, 30, 28);
    /* 5000 keys: blocks of 64 rows, the fewest the block size goes to */
    attention_vs_definition(150, 5000, 1, 4, 4, 4, 4, 4);
}

static void test_rope_rotates_pairs(void **state) {
    (void)state;
    enum { F = 3, H = 4, W = 5, HD = 20, HEADS = 2, N = F * H * W };
    float *cs = malloc((size_t)N * HD / 2 * sizeof(float)), *sn = malloc((size_t)N * HD / 2 * sizeof(float));
    kn_rope3d_tables(F, H, W, HD, 10000.0, cs, sn);
    float *x = rand_buf((size_t)N * HEADS * HD), *x0 = malloc((size_t)N * HEADS * HD * sizeof(float));
    memcpy(x0, x, (size_t)N * HEADS * HD * sizeof(float));
    kn_rope_apply(x, HEADS * HD, N, HEADS, HD, cs, sn);
    /* hd 20: width and height parts 2*(20/6) = 6 channels, time part 8 */
    const int dt = 8, dh = 6;
    for (int f = 0; f < F; f++)
        for (int hh = 0; hh < H; hh++)
            for (int w = 0; w < W; w++) {
                int t = (f * H + hh) * W + w;
                for (int h = 0; h < HEADS; h++)
                    for (int j = 0; j < HD / 2; j++) {
                        int pos, jj, dp;
                        if (j < dt / 2)
                            pos = f, jj = j, dp = dt;
                        else if (j < dt / 2 + dh / 2)
                            pos = hh, jj = j - dt / 2, dp = dh;
                        else
                            pos = w, jj = j - dt / 2 - dh / 2, dp = dh;
                        double ang = pos * pow(10000.0, -2.0 * jj / dp);
                        const float *a = x0 + (size_t)t * HEADS * HD + h * HD + 2 * j;
                        const float *b = x + (size_t)t * HEADS * HD + h * HD + 2 * j;
                        double re = a[0] * cos(ang) - a[1] * sin(ang);
                        double im = a[0] * sin(ang) + a[1] * cos(ang);
                        assert_true(fabs(re - b[0]) < 1e-5 && fabs(im - b[1]) < 1e-5);
                    }
            }
    free(cs), free(sn), free(x), free(x0);
}

static void test_split_rms_norm_equals_whole(void **state) {
    (void)state;
    enum { N = 5, D = 24, LD = 30, CUT = 10 };
    float *x = rand_buf((size_t)N * LD), *y = malloc((size_t)N * LD * sizeof(float));
    float *w = rand_buf(D), sums[N], part[N];
    memcpy(y, x, (size_t)N * LD * sizeof(float));
    kn_rms_norm(x, LD, N, D, w, 1e-6f, sums);
    /* two "ranks": columns [0, CUT) and [CUT, D), sums added in between */
    kn_sumsq_rows(y, LD, N, CUT, sums);
    kn_sumsq_rows(y + CUT, LD, N, D - CUT, part);
    for (int i = 0; i < N; i++)
        sums[i] += part[i];
    kn_rms_scale(y, LD, N, CUT, sums, D, w, 1e-6f);
    kn_rms_scale(y + CUT, LD, N, D - CUT, sums, D, w + CUT, 1e-6f);
    for (int i = 0; i < N; i++) {
        double ss = 0.0;
        for (int j = 0; j < D; j++)
            ss += (double)y[i * LD + j] / w[j] * y[i * LD + j] / w[j];
        assert_true(fabs(ss / D - 1.0) < 1e-4); /* unit RMS before the weights */
        for (int j = 0; j < D; j++)
            assert_true(fabsf(x[i * LD + j] - y[i * LD + j]) < 1e-6f);
    }
    free(x), free(y), free(w);
}

static void test_layer_norm_and_elementwise(void **state) {
    (void)state;
    enum { N = 4, D = 33 };
    float *x = rand_buf((size_t)N * D), *y = malloc((size_t)N * D * sizeof(float));
    float *w = rand_buf(D), *b = rand_buf(D);
    for (int i = 0; i < N * D; i++)
        x[i] = 1000.0f + x[i]; /* far from zero: the variance must survive */
    kn_layer_norm(x, y, N, D, w, b, 1e-6f);
    for (int i = 0; i < N; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < D; j++)
            m += x[i * D + j];
        m /= D;
        for (int j = 0; j < D; j++)
            v += (x[i * D + j] - m) * (x[i * D + j] - m);
        v /= D;
        for (int j = 0; j < D; j++) {
            double want = (x[i * D + j] - m) / sqrt(v + 1e-6) * w[j] + b[j];
            assert_true(fabs(want - y[i * D + j]) < 1e-3);
        }
    }
    float g[3] = {-3.0f, 0.0f, 2.0f};
    kn_gelu_tanh(g, 3);
    assert_true(fabsf(g[0] - -0.003637392f) < 1e-6f && g[1] == 0.0f && fabsf(g[2] - 1.954597694f) < 1e-6f);
    float s[2] = {-1.0f, 2.0f};
    kn_silu(s, 2);
    assert_true(fabsf(s[0] - -0.26894142f) < 1e-6f && fabsf(s[1] - 1.76159416f) < 1e-6f);
    float r[2] = {1.0f, 1.0f}, yy[2] = {2.0f, 3.0f}, bb[2] = {1.0f, -1.0f}, gg[2] = {0.5f, 2.0f};
    kn_residual_add(r, 1, 2, yy, 2, bb, gg);
    assert_true(r[0] == 2.5f && r[1] == 5.0f);
    float mm[2] = {2.0f, 4.0f}, sc[2] = {1.0f, -0.5f}, sh[2] = {0.5f, 1.0f};
    kn_modulate(mm, 1, 2, sc, sh);
    assert_true(mm[0] == 4.5f && mm[1] == 3.0f);
    free(x), free(y), free(w), free(b);
}

/* The activations use their own exponential; over the whole float range
 * they stay within a few ulp of the definitions, and saturate cleanly. */
static void test_activations_accurate_everywhere(void **state) {
    (void)state;
    enum { N = 20001 };
    float *g = malloc(N * sizeof(float)), *s = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        g[i] = s[i] = -100.0f + 0.01f * (float)i;
    kn_gelu_tanh(g, N);
    kn_silu(s, N);
    /* Relative error, except that an absolute 1e-12 is enough far out on
     * the negative side, where the double reference itself is rounding
     * noise (1 + tanh(u) for u < -19) and float PyTorch returns zero. */
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double x = -100.0f + 0.01f * (float)i;
        double wg = 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
        double ws = x / (1.0 + exp(-x));
        double eg = fabs(g[i] - wg) / (2e-6 * fabs(wg) + 1e-12);
        double es = fabs(s[i] - ws) / (2e-6 * fabs(ws) + 1e-12);
        worst = eg > worst ? eg : worst;
        worst = es > worst ? es : worst;
        assert_true(isfinite(g[i]) && isfinite(s[i]));
    }
    assert_true(worst < 1.0);
    /* softmax with a huge spread: the far-out scores weigh nothing */
    float q[2] = {1.0f, 0.0f}, k[6] = {1000.0f, 0.0f, 0.0f, 0.0f, -1000.0f, 0.0f};
    float v[6] = {1.0f, 0.0f, 0.0f, 1.0f, 5.0f, 5.0f}, o[2], work[16];
    kn_attention(q, 2, k, 2, v, 2, o, 2, 1, 3, 1, 2, work);
    assert_true(fabsf(o[0] - 1.0f) < 1e-6f && fabsf(o[1]) < 1e-6f);
    free(g), free(s);
}

static void test_sgemm_transposes_and_empty(void **state) {
    (void)state;
    /* A [2,3], B [3,2]: C = A B, and the same through stored transposes */
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1};
    float At[6] = {1, 4, 2, 5, 3, 6}, Bt[6] = {1, 0, 1, 0, 1, 1};
    float C[4], D[4];
    kn_sgemm(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
    kn_sgemm(1, 1, 2, 2, 3, 1.0f, At, 2, Bt, 3, 0.0f, D, 2);
    float want[4] = {4, 5, 10, 11};
    assert_memory_equal(C, want, sizeof want);
    assert_memory_equal(D, want, sizeof want);
    /* K = 0: the product is zero, so C = beta * C */
    float E[4] = {1, 2, 3, 4};
    kn_sgemm(0, 1, 2, 2, 0, 1.0f, A, 0, B, 0, 0.0f, E, 2);
    for (int i = 0; i < 4; i++)
        assert_true(E[i] == 0.0f);
    float y[3] = {7, 7, 7};
    kn_linear(A, 3, 1, 3, B, NULL, 0, y, 0); /* no outputs: nothing written */
    assert_true(y[0] == 7.0f);
}

/* Large-tensor memory: 64-byte aligned, 2 MiB aligned from 2 MiB on
 * (where huge pages can back it), all of it writable. */
static void test_alloc_alignment(void **state) {
    (void)state;
    size_t sizes[3] = {1, 1000, (size_t)3 << 19}; /* the last: 6 MiB */
    for (int i = 0; i < 3; i++) {
        float *p = kn_tensor_alloc(sizes[i]);
        assert_non_null(p);
        size_t align = sizes[i] * sizeof(float) >= ((size_t)2 << 20) ? (size_t)2 << 20 : 64;
        assert_int_equal((uintptr_t)p % align, 0);
        memset(p, 0x5a, sizes[i] * sizeof(float));
        kn_tensor_free(p);
    }
    kn_tensor_free(NULL);
    assert_null(kn_tensor_alloc(SIZE_MAX / 2));
}

/* Every element-wise op at 8 and 16 lanes gives the 4-lane result bit for
 * bit, on rows whose length (37) leaves a tail at every width; the
 * softmax, whose row sums add lanes in another order, within 1e-6. */
static void run_elementwise(const char *lanes, float *out, size_t stride) {
    enum { N = 5, D = 37, LD = 41, NK = 37, HD = 6 };
    setenv("RFARM_NN_LANES", lanes, 1);
    uint64_t keep = rng_state;
    rng_state = 12345;
    float *x = rand_buf((size_t)N * LD), *y = rand_buf((size_t)N * LD), *w = rand_buf(D);
    float *b = rand_buf(D), *q = rand_buf((size_t)N * HD), *k = rand_buf((size_t)NK * HD);
    float *v = rand_buf((size_t)NK * HD), work[N * NK + N], sums[N];
    float *o = out;
    kn_layer_norm(x, o, N, D, w, b, 1e-6f), o += stride;
    kn_layer_norm(x, o, N, D, NULL, NULL, 1e-6f), o += stride;
    memcpy(o, x, (size_t)N * LD * sizeof(float));
    kn_gelu_tanh(o, (size_t)N * LD - 3), o += stride;
    memcpy(o, x, (size_t)N * LD * sizeof(float));
    kn_silu(o, (size_t)N * LD - 1), o += stride;
    memcpy(o, x, (size_t)N * LD * sizeof(float));
    kn_sumsq_rows(o, LD, N, D, sums);
    kn_rms_scale(o, LD, N, D, sums, D + 2, w, 1e-6f);
    memcpy(o + (size_t)N * LD, sums, sizeof sums), o += stride;
    memcpy(o, x, (size_t)N * D * sizeof(float));
    kn_modulate(o, N, D, w, b), o += stride;
    memcpy(o, x, (size_t)N * D * sizeof(float));
    kn_residual_add(o, N, D, y, LD, b, w);
    kn_residual_add(o, N, D, y, LD, NULL, w);
    kn_residual_add(o, N, D, y, LD, b, NULL), o += stride;
    memcpy(o, x, (size_t)N * LD * sizeof(float));
    kn_add_bias(o, LD, N, D, b), o += stride;
    kn_attention(q, HD, k, HD, v, HD, o, HD, N, NK, 1, HD, work);
    rng_state = keep;
    free(x), free(y), free(w), free(b), free(q), free(k), free(v);
}

static void test_every_width_same_results(void **state) {
    (void)state;
    enum { OPS = 9, STRIDE = 5 * 41 + 8 };
    const char *prev = getenv("RFARM_NN_LANES");
    char keep[8] = "";
    if (prev)
        snprintf(keep, sizeof keep, "%s", prev);
    float *ref = calloc(OPS * STRIDE, sizeof(float)), *got = calloc(OPS * STRIDE, sizeof(float));
    run_elementwise("4", ref, STRIDE);
    const char *widths[2] = {"8", "16"};
    for (int i = 0; i < 2; i++) {
        run_elementwise(widths[i], got, STRIDE);
        assert_memory_equal(got, ref, (OPS - 1) * STRIDE * sizeof(float));
        for (int j = (OPS - 1) * STRIDE; j < OPS * STRIDE; j++)
            assert_true(fabsf(got[j] - ref[j]) < 1e-6f);
    }
    if (prev)
        setenv("RFARM_NN_LANES", keep, 1);
    else
        unsetenv("RFARM_NN_LANES");
    free(ref), free(got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_matches_definition),
        cmocka_unit_test(test_rope_rotates_pairs),
        cmocka_unit_test(test_split_rms_norm_equals_whole),
        cmocka_unit_test(test_layer_norm_and_elementwise),
        cmocka_unit_test(test_activations_accurate_everywhere),
        cmocka_unit_test(test_sgemm_transposes_and_empty),
        cmocka_unit_test(test_every_width_same_results),
        cmocka_unit_test(test_alloc_alignment),
    };
    /* the whole group at each width the kernels are built for; a width
     * the CPU lacks runs the narrower one again */
    static const char *const lanes[] = {"4", "8", "16"};
    int failed = 0;
    for (size_t i = 0; i < sizeof lanes / sizeof lanes[0]; i++) {
        setenv("RFARM_NN_LANES", lanes[i], 1);
        printf("RFARM_NN_LANES=%s\n", lanes[i]);
        failed += cmocka_run_group_tests(tests, NULL, NULL);
    }
    return failed;
}
