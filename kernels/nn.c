/* nn — C reference of the neural-network layers. See nn.h.
 *
 * The products go to cblas_sgemm, which is where nearly all the time of a
 * transformer goes; the rest are single passes over memory written so the
 * compiler can vectorise them. Attention is computed one head and one block
 * of query rows at a time: two sgemms (scores, then scores times values)
 * around a row softmax, so its memory is a block of rows times the key
 * count, not the full score tensor.
 */
#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Query rows per attention block: enough for sgemm to run at full speed,
 * few enough that rows x keys stays in the low megabytes at real lengths. */
#define KN_ATTN_ROWS 128

/* Four floats at a time (SSE2, the x86-64 baseline; NEON on ARM), through
 * GCC/Clang vector extensions: the
 * element-wise ops with an exponential (softmax, GELU, SiLU) are a tenth of
 * a forward pass when they call libm's expf per element, and plain loops
 * around an inlined exponential do not vectorise reliably (a clamp turns
 * into a branch the compiler threads into scalar code). */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_set(float a) {
    return (v4f){a, a, a, a};
}

static inline v4f v4_load(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(float *p, v4f v) {
    memcpy(p, &v, sizeof v);
}

/* mask ? a : b, lane by lane (mask lanes are all ones or all zeros) */
static inline v4f v4_select(v4i mask, v4f a, v4f b) {
    return (v4f)(((v4i)a & mask) | ((v4i)b & ~mask));
}

/* exp(x) to within 2 ulp. exp(x) = 2^n exp(r), n = round(x / ln 2),
 * |r| <= ln2/2; exp(r) by Cephes' degree-6 polynomial; 2^n by building the
 * exponent bits. Inputs are clamped to [-87, 88] so that 2^n stays a
 * normal float: below, the result is about 1.6e-38 instead of a denormal
 * or zero (denormals are slow, and no sum of exponentials here can tell
 * the difference). */
static inline v4f v4_exp(v4f x) {
    const v4f lo = v4_set(-87.0f), hi = v4_set(88.0f);
    x = v4_select(x < lo, lo, x);
    x = v4_select(x > hi, hi, x);
    /* round to nearest through the float mantissa (SSE2 has no rint) */
    const v4f magic = v4_set(12582912.0f);
    v4f n = (x * v4_set(1.44269504088896341f) + magic) - magic;
    v4f r = x - n * v4_set(0.693359375f) + n * v4_set(2.12194440e-4f);
    v4f p = v4_set(1.9875691500e-4f);
    p = p * r + v4_set(1.3981999507e-3f);
    p = p * r + v4_set(8.3334519073e-3f);
    p = p * r + v4_set(4.1665795894e-2f);
    p = p * r + v4_set(1.6666665459e-1f);
    p = p * r + v4_set(5.0000001201e-1f);
    v4f y = p * r * r + r + v4_set(1.0f);
    v4i bits = (__builtin_convertvector(n, v4i) + 127) << 23;
    return y * (v4f)bits;
}

/* 0.5 x (1 + tanh(u)) is x * sigmoid(2u): one exponential instead of
 * tanh's several operations, the same value to a few ulp. */
static inline v4f v4_gelu_tanh(v4f x) {
    const v4f k2 = v4_set(2.0f * 0.7978845608028654f); /* 2 sqrt(2/pi) */
    v4f u = k2 * (x + v4_set(0.044715f) * x * x * x);
    return x / (v4_set(1.0f) + v4_exp(-u));
}

static inline v4f v4_silu(v4f x) {
    return x / (v4_set(1.0f) + v4_exp(-x));
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
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void kn_linear(const float *x, int ldx, int n, int in, const float *W, const float *b, int out,
               float *y, int ldy) {
    kn_sgemm(0, 1, n, out, in, 1.0f, x, ldx, W, in, 0.0f, y, ldy);
    if (b)
        kn_add_bias(y, ldy, n, out, b);
}

void kn_add_bias(float *y, int ldy, int n, int d, const float *b) {
    for (int i = 0; i < n; i++) {
        float *r = y + (size_t)i * ldy;
        for (int j = 0; j < d; j++)
            r[j] += b[j];
    }
}

void kn_layer_norm(const float *x, float *y, int n, int d, const float *w, const float *b,
                   float eps) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        double s = 0.0;
        for (int j = 0; j < d; j++)
            s += xr[j];
        double mean = s / d;
        /* Two passes: the variance of values far from zero loses nothing. */
        double v = 0.0;
        for (int j = 0; j < d; j++) {
            double c = xr[j] - mean;
            v += c * c;
        }
        float inv = (float)(1.0 / sqrt(v / d + (double)eps));
        float m = (float)mean;
        for (int j = 0; j < d; j++)
            yr[j] = (xr[j] - m) * inv;
        if (w)
            for (int j = 0; j < d; j++)
                yr[j] *= w[j];
        if (b)
            for (int j = 0; j < d; j++)
                yr[j] += b[j];
    }
}

void kn_sumsq_rows(const float *x, int ldx, int n, int d, float *sumsq) {
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * ldx;
        double s = 0.0;
        for (int j = 0; j < d; j++)
            s += (double)r[j] * r[j];
        sumsq[i] = (float)s;
    }
}

void kn_rms_scale(float *x, int ldx, int n, int d, const float *sumsq, int dfull,
                  const float *w, float eps) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * ldx;
        float inv = (float)(1.0 / sqrt((double)sumsq[i] / dfull + (double)eps));
        for (int j = 0; j < d; j++)
            r[j] = r[j] * inv * w[j];
    }
}

void kn_rms_norm(float *x, int ldx, int n, int d, const float *w, float eps, float *sumsq) {
    kn_sumsq_rows(x, ldx, n, d, sumsq);
    kn_rms_scale(x, ldx, n, d, sumsq, d, w, eps);
}

/* A tail shorter than 4 goes through a padded copy, so that every element
 * sees the same arithmetic. */
void kn_gelu_tanh(float *x, size_t count) {
    size_t i = 0;
    for (; i + 4 <= count; i += 4)
        v4_store(x + i, v4_gelu_tanh(v4_load(x + i)));
    if (i < count) {
        float t[4] = {0};
        memcpy(t, x + i, (count - i) * sizeof(float));
        v4_store(t, v4_gelu_tanh(v4_load(t)));
        memcpy(x + i, t, (count - i) * sizeof(float));
    }
}

void kn_silu(float *x, size_t count) {
    size_t i = 0;
    for (; i + 4 <= count; i += 4)
        v4_store(x + i, v4_silu(v4_load(x + i)));
    if (i < count) {
        float t[4] = {0};
        memcpy(t, x + i, (count - i) * sizeof(float));
        v4_store(t, v4_silu(v4_load(t)));
        memcpy(x + i, t, (count - i) * sizeof(float));
    }
}

void kn_modulate(float *x, int n, int d, const float *scale, const float *shift) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        for (int j = 0; j < d; j++)
            r[j] = r[j] * (1.0f + scale[j]) + shift[j];
    }
}

void kn_residual_add(float *x, int n, int d, const float *y, int ldy, const float *b,
                     const float *gate) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        const float *yr = y + (size_t)i * ldy;
        if (b && gate)
            for (int j = 0; j < d; j++)
                r[j] += (yr[j] + b[j]) * gate[j];
        else if (b)
            for (int j = 0; j < d; j++)
                r[j] += yr[j] + b[j];
        else if (gate)
            for (int j = 0; j < d; j++)
                r[j] += yr[j] * gate[j];
        else
            for (int j = 0; j < d; j++)
                r[j] += yr[j];
    }
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

/* s[j] = exp(s[j] - max s) in place; returns the sum. A short tail is
 * padded with -inf for the maximum and with zeros after the exponential. */
static float softmax_row_unnormalised(float *s, int n) {
    v4f mx4 = v4_set(-INFINITY);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        v4f v = v4_load(s + j);
        mx4 = v4_select(v > mx4, v, mx4);
    }
    float mx = -INFINITY;
    for (int k = 0; k < 4; k++)
        mx = mx4[k] > mx ? mx4[k] : mx;
    for (int k = j; k < n; k++)
        mx = s[k] > mx ? s[k] : mx;
    v4f m = v4_set(mx), sum4 = v4_set(0.0f);
    for (j = 0; j + 4 <= n; j += 4) {
        v4f e = v4_exp(v4_load(s + j) - m);
        sum4 += e;
        v4_store(s + j, e);
    }
    float sum = 0.0f;
    if (j < n) {
        float t[4];
        for (int k = 0; k < 4; k++)
            t[k] = j + k < n ? s[j + k] : mx;
        v4f e = v4_exp(v4_load(t) - m);
        v4_store(t, e);
        for (int k = 0; k < n - j; k++) {
            s[j + k] = t[k];
            sum += t[k];
        }
    }
    for (int k = 0; k < 4; k++)
        sum += sum4[k];
    return sum;
}

size_t kn_attention_workspace(int nq, int nk) {
    size_t rows = (size_t)(nq < KN_ATTN_ROWS ? nq : KN_ATTN_ROWS);
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
    int rows = nq < KN_ATTN_ROWS ? nq : KN_ATTN_ROWS;
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
                inv_sum[i] = 1.0f / softmax_row_unnormalised(scores + (size_t)i * nk, nk);
            /* Normalise after the product: hd multiplies per row, not nk. */
            float *ob = oh + (size_t)i0 * ldo;
            kn_sgemm(0, 0, m, hd, nk, 1.0f, scores, nk, vh, ldv, 0.0f, ob, ldo);
            for (int i = 0; i < m; i++) {
                float *r = ob + (size_t)i * ldo;
                for (int j = 0; j < hd; j++)
                    r[j] *= inv_sum[i];
            }
        }
    }
}
