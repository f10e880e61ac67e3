/* nn — C reference of the neural-network layers. See nn.h.
 *
 * The products go to cblas_sgemm, which is where nearly all the time of a
 * transformer goes; the rest are single passes over memory, in nn_vec.h,
 * built at the widest vector width the compiler can target and picked at
 * run time by what the CPU has (x86-64: AVX-512, AVX2, else SSE2; other
 * machines: 4 lanes). Attention is computed one head and one block of
 * query rows at a time: two sgemms (scores, then scores times values)
 * around a row softmax, so its memory is a block of rows times the key
 * count, not the full score tensor.
 */
#include "nn.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "blas.h"

/* Query rows per attention block: as many as keep the block's scores
 * (rows x keys) within about 1 MiB, so they stay in L2 between the two
 * products and the softmax, but at least 64, below which sgemm slows
 * down, and at most 256, past which it gains nothing (at 768 keys, 128
 * rows ran the products at 128 GFLOP/s on one core, 256 rows at 137). At
 * 32k keys (a 480p clip of 81 frames) that is 64 rows, 8 MiB of scores. */
#define KN_ATTN_SCORES (256 * 1024)
#define KN_ATTN_MIN_ROWS 64
#define KN_ATTN_MAX_ROWS 256

static int attn_rows(int nq, int nk) {
    int rows = nk > 0 ? KN_ATTN_SCORES / nk : KN_ATTN_MAX_ROWS;
    rows = rows < KN_ATTN_MIN_ROWS ? KN_ATTN_MIN_ROWS : rows;
    rows = rows > KN_ATTN_MAX_ROWS ? KN_ATTN_MAX_ROWS : rows;
    return nq < rows ? nq : rows;
}

#define KN_HUGE_PAGE ((size_t)2 << 20)

float *kn_tensor_alloc(size_t count) {
    if (count > SIZE_MAX / sizeof(float) - KN_HUGE_PAGE)
        return NULL;
    size_t bytes = (count ? count : 1) * sizeof(float);
    if (bytes < KN_HUGE_PAGE)
        return aligned_alloc(64, (bytes + 63) / 64 * 64);
    bytes = (bytes + KN_HUGE_PAGE - 1) / KN_HUGE_PAGE * KN_HUGE_PAGE;
    float *p = aligned_alloc(KN_HUGE_PAGE, bytes);
#ifdef MADV_HUGEPAGE
    /* advice: refused, it changes nothing but the speed */
    if (p)
        (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void kn_tensor_free(float *p) {
    free(p);
}

void kn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        /* BLAS rejects K = 0 with some leading dimensions; the result is
         * defined all the same. */
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            for (int j = 0; j < N; j++)
                c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        }
        return;
    }
    blas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
               trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* The bias is written first and the product added to it (beta = 1):
 * sgemm with beta = 0 would clear y in a pass of its own, and adding the
 * bias afterwards is another read and write of all of y. */
void kn_linear(const float *x, int ldx, int n, int in, const float *W, const float *b, int out,
               float *y, int ldy) {
    if (!b) {
        kn_sgemm(0, 1, n, out, in, 1.0f, x, ldx, W, in, 0.0f, y, ldy);
        return;
    }
    for (int i = 0; i < n && out > 0; i++)
        memcpy(y + (size_t)i * ldy, b, (size_t)out * sizeof(float));
    kn_sgemm(0, 1, n, out, in, 1.0f, x, ldx, W, in, 1.0f, y, ldy);
}

/* ---------- element-wise kernels at each vector width ---------- */

#define NV(name) name##_4
#define NV_W 4
#define NV_TARGET
#include "nn_vec.h"
#undef NV
#undef NV_W
#undef NV_TARGET

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KN_X86_WIDE 1

#define NV(name) name##_8
#define NV_W 8
#define NV_TARGET __attribute__((target("avx2")))
#include "nn_vec.h"
#undef NV
#undef NV_W
#undef NV_TARGET

#define NV(name) name##_16
#define NV_W 16
#define NV_TARGET __attribute__((target("avx512f")))
#include "nn_vec.h"
#undef NV
#undef NV_W
#undef NV_TARGET
#endif

/* Lanes of the widest kernels this CPU runs (__builtin_cpu_supports also
 * checks that the OS saves the wide registers), at most RFARM_NN_LANES
 * when that is set: tests run every width the CPU has that way, and a
 * benchmark can compare them. */
static int kn_lanes(void) {
    const char *cap = getenv("RFARM_NN_LANES");
    int max = cap ? atoi(cap) : 16;
#ifdef KN_X86_WIDE
    if (max >= 16 && __builtin_cpu_supports("avx512f"))
        return 16;
    if (max >= 8 && __builtin_cpu_supports("avx2"))
        return 8;
#endif
    (void)max;
    return 4;
}

#ifdef KN_X86_WIDE
#define KN_WIDE(lanes, fn, args) \
    ((lanes) == 16 ? fn##_16 args : (lanes) == 8 ? fn##_8 args : fn##_4 args)
#else
#define KN_WIDE(lanes, fn, args) fn##_4 args
#endif
#define KN_CALL(fn, args) KN_WIDE(kn_lanes(), fn, args)

void kn_add_bias(float *y, int ldy, int n, int d, const float *b) {
    KN_CALL(add_bias, (y, ldy, n, d, b));
}

void kn_layer_norm(const float *x, float *y, int n, int d, const float *w, const float *b,
                   float eps) {
    KN_CALL(layer_norm, (x, y, n, d, w, b, eps));
}

void kn_sumsq_rows(const float *x, int ldx, int n, int d, float *sumsq) {
    KN_CALL(sumsq_rows, (x, ldx, n, d, sumsq));
}

void kn_rms_scale(float *x, int ldx, int n, int d, const float *sumsq, int dfull,
                  const float *w, float eps) {
    KN_CALL(rms_scale, (x, ldx, n, d, sumsq, dfull, w, eps));
}

void kn_gelu_tanh(float *x, size_t count) {
    KN_CALL(gelu_tanh, (x, count));
}

void kn_silu(float *x, size_t count) {
    KN_CALL(silu, (x, count));
}

void kn_modulate(float *x, int n, int d, const float *scale, const float *shift) {
    KN_CALL(modulate, (x, n, d, scale, shift));
}

void kn_residual_add(float *x, int n, int d, const float *y, int ldy, const float *b,
                     const float *gate) {
    KN_CALL(residual_add, (x, n, d, y, ldy, b, gate));
}

void kn_rms_norm(float *x, int ldx, int n, int d, const float *w, float eps, float *sumsq) {
    kn_sumsq_rows(x, ldx, n, d, sumsq);
    kn_rms_scale(x, ldx, n, d, sumsq, d, w, eps);
}

void kn_rope_apply(float *x, int ldx, int n, int heads, int hd, const float *cos_t,
                   const float *sin_t) {
    int half = hd / 2;
    for (int i = 0; i < n; i++) {
        const float *c = cos_t + (size_t)i * half;
        const float *s = sin_t + (size_t)i * half;
        for (int h = 0; h < heads; h++) {
            float *p = x + (size_t)i * ldx + (size_t)h * hd;
            for (int j = 0; j < half; j++) {
                float a = p[2 * j], b = p[2 * j + 1];
                p[2 * j] = a * c[j] - b * s[j];
                p[2 * j + 1] = a * s[j] + b * c[j];
            }
        }
    }
}

/* Pairs [j0, j0 + dp/2) of every row turn with position `pos` of the
 * part of dp channels. */
static void rope_part(float *cos_r, float *sin_r, int j0, int dp, long pos, double theta) {
    for (int j = 0; j < dp / 2; j++) {
        double freq = 1.0 / pow(theta, (double)(2 * j) / dp);
        double a = (double)pos * freq;
        cos_r[j0 + j] = (float)cos(a);
        sin_r[j0 + j] = (float)sin(a);
    }
}

void kn_rope3d_tables(int F, int H, int W, int hd, double theta, float *cos_t, float *sin_t) {
    int dh = 2 * (hd / 6), dw = dh, dt = hd - dh - dw;
    int half = hd / 2;
    for (int f = 0; f < F; f++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                size_t row = ((size_t)f * H + h) * W + w;
                float *c = cos_t + row * half, *s = sin_t + row * half;
                rope_part(c, s, 0, dt, f, theta);
                rope_part(c, s, dt / 2, dh, h, theta);
                rope_part(c, s, dt / 2 + dh / 2, dw, w, theta);
            }
}

size_t kn_attention_workspace(int nq, int nk) {
    size_t rows = (size_t)attn_rows(nq, nk);
    /* scores, then one inverse row sum per row */
    return rows * (size_t)nk + rows;
}

void kn_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                  float *o, int ldo, int nq, int nk, int heads, int hd, float *work) {
    if (nq <= 0 || heads <= 0 || hd <= 0)
        return;
    if (nk <= 0) {
        /* softmax over nothing: define the output as zero rather than NaN */
        for (int i = 0; i < nq; i++)
            memset(o + (size_t)i * ldo, 0, (size_t)heads * hd * sizeof(float));
        return;
    }
    const int lanes = kn_lanes();
    int rows = attn_rows(nq, nk);
    float *scores = work;
    float *inv_sum = work + (size_t)rows * nk;
    float scale = (float)(1.0 / sqrt((double)hd));
    for (int h = 0; h < heads; h++) {
        const float *qh = q + (size_t)h * hd, *kh = k + (size_t)h * hd, *vh = v + (size_t)h * hd;
        float *oh = o + (size_t)h * hd;
        for (int i0 = 0; i0 < nq; i0 += rows) {
            int m = nq - i0 < rows ? nq - i0 : rows;
            kn_sgemm(0, 1, m, nk, hd, scale, qh + (size_t)i0 * ldq, ldq, kh, ldk, 0.0f, scores,
                     nk);
            for (int i = 0; i < m; i++)
                inv_sum[i] = 1.0f / KN_WIDE(lanes, softmax_row, (scores + (size_t)i * nk, nk));
            /* Normalise after the product: hd multiplies per row, not nk. */
            float *ob = oh + (size_t)i0 * ldo;
            kn_sgemm(0, 0, m, hd, nk, 1.0f, scores, nk, vh, ldv, 0.0f, ob, ldo);
            KN_WIDE(lanes, scale_rows, (ob, ldo, m, hd, inv_sum));
        }
    }
}
