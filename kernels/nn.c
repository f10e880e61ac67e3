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
#include <string.h>

/* Query rows per attention block: enough for sgemm to run at full speed,
 * few enough that rows x keys stays in the low megabytes at real lengths. */
#define KN_ATTN_ROWS 128

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

void kn_gelu_tanh(float *x, size_t count) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (size_t i = 0; i < count; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void kn_silu(float *x, size_t count) {
    for (size_t i = 0; i < count; i++)
        x[i] = x[i] / (1.0f + expf(-x[i]));
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
            for (int i = 0; i < m; i++) {
                float *s = scores + (size_t)i * nk;
                float mx = s[0];
                for (int j = 1; j < nk; j++)
                    mx = s[j] > mx ? s[j] : mx;
                float sum = 0.0f;
                for (int j = 0; j < nk; j++) {
                    s[j] = expf(s[j] - mx);
                    sum += s[j];
                }
                inv_sum[i] = 1.0f / sum;
            }
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
