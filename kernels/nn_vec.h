/* nn_vec — nn.c's element-wise kernels at one vector width.
 *
 * Not a header for other modules: nn.c includes it once per width it
 * builds (4 lanes everywhere; 8 with AVX2 and 16 with AVX-512 on x86-64,
 * picked at run time), after defining
 *   NV_W       lanes: 4, 8 or 16
 *   NV(name)   name with this width's suffix
 *   NV_TARGET  the function attribute that enables the instructions, or
 *              nothing
 *
 * The loops are written with GCC/Clang vector extensions rather than left
 * to the auto-vectoriser: at -O2 GCC vectorises only loops it can prove
 * need no run-time alias checks or remainder, which left every plain loop
 * here scalar, and an exponential's clamps turn into branches that keep
 * even -O3 scalar. The arithmetic is the same at every width, lane by lane
 * (no fused multiply-adds: ISO C mode does not contract), so results do not
 * depend on the width, except for the order in which a softmax row's
 * exponentials are summed.
 */

typedef float NV(vf) __attribute__((vector_size(4 * NV_W)));
typedef int32_t NV(vi) __attribute__((vector_size(4 * NV_W)));
typedef float NV(vh) __attribute__((vector_size(2 * NV_W)));  /* half as many floats */
typedef double NV(vd) __attribute__((vector_size(4 * NV_W))); /* as doubles */

#define NV_INLINE NV_TARGET static inline __attribute__((always_inline))

NV_INLINE NV(vf) NV(set)(float a) {
    NV(vf) v = {0};
    return v + a;
}

NV_INLINE NV(vf) NV(load)(const float *p) {
    NV(vf) v;
    memcpy(&v, p, sizeof v);
    return v;
}

NV_INLINE void NV(store)(float *p, NV(vf) v) {
    memcpy(p, &v, sizeof v);
}

/* mask ? a : b, lane by lane (mask lanes are all ones or all zeros) */
NV_INLINE NV(vf) NV(select)(NV(vi) mask, NV(vf) a, NV(vf) b) {
    return (NV(vf))(((NV(vi))a & mask) | ((NV(vi))b & ~mask));
}

/* exp(x) to within 2 ulp. exp(x) = 2^n exp(r), n = round(x / ln 2),
 * |r| <= ln2/2; exp(r) by Cephes' degree-6 polynomial; 2^n by building the
 * exponent bits. Inputs are clamped to [-87, 88] so that 2^n stays a
 * normal float: below, the result is about 1.6e-38 instead of a denormal
 * or zero (denormals are slow, and no sum of exponentials here can tell
 * the difference). */
NV_INLINE NV(vf) NV(exp)(NV(vf) x) {
    const NV(vf) lo = NV(set)(-87.0f), hi = NV(set)(88.0f);
    x = NV(select)(x < lo, lo, x);
    x = NV(select)(x > hi, hi, x);
    /* round to nearest through the float mantissa (SSE2 has no rint) */
    const NV(vf) magic = NV(set)(12582912.0f);
    NV(vf) n = (x * NV(set)(1.44269504088896341f) + magic) - magic;
    NV(vf) r = x - n * NV(set)(0.693359375f) + n * NV(set)(2.12194440e-4f);
    NV(vf) p = NV(set)(1.9875691500e-4f);
    p = p * r + NV(set)(1.3981999507e-3f);
    p = p * r + NV(set)(8.3334519073e-3f);
    p = p * r + NV(set)(4.1665795894e-2f);
    p = p * r + NV(set)(1.6666665459e-1f);
    p = p * r + NV(set)(5.0000001201e-1f);
    NV(vf) y = p * r * r + r + NV(set)(1.0f);
    NV(vi) bits = (__builtin_convertvector(n, NV(vi)) + 127) << 23;
    return y * (NV(vf))bits;
}

/* NV_W / 2 floats from p, as doubles */
NV_INLINE NV(vd) NV(widen)(const float *p) {
    NV(vh) h;
    memcpy(&h, p, sizeof h);
    return __builtin_convertvector(h, NV(vd));
}

/* Row reductions in double, 2 * NV_W partial sums: one running double sum
 * is a chain of dependent additions (4 cycles each), which made the norms
 * a tenth of the element-wise time; partial sums overlap them. The
 * accumulators are named variables, not an array, so that they stay in
 * registers. */
NV_TARGET static double NV(row_sum)(const float *x, int d) {
    const int h = NV_W / 2;
    NV(vd) a0 = {0.0}, a1 = a0, a2 = a0, a3 = a0;
    int j = 0;
    for (; j + 2 * NV_W <= d; j += 2 * NV_W) {
        a0 += NV(widen)(x + j);
        a1 += NV(widen)(x + j + h);
        a2 += NV(widen)(x + j + 2 * h);
        a3 += NV(widen)(x + j + 3 * h);
    }
    NV(vd) t = (a0 + a1) + (a2 + a3);
    double s = 0.0;
    for (int k = 0; k < h; k++)
        s += t[k];
    for (; j < d; j++)
        s += x[j];
    return s;
}

/* sum of (x[j] - c)^2 */
NV_TARGET static double NV(row_sumsq)(const float *x, int d, double c) {
    const int h = NV_W / 2;
    const NV(vd) cv = (NV(vd)){0.0} + c;
    NV(vd) a0 = {0.0}, a1 = a0, a2 = a0, a3 = a0;
    int j = 0;
    for (; j + 2 * NV_W <= d; j += 2 * NV_W) {
        NV(vd) v0 = NV(widen)(x + j) - cv, v1 = NV(widen)(x + j + h) - cv;
        NV(vd) v2 = NV(widen)(x + j + 2 * h) - cv, v3 = NV(widen)(x + j + 3 * h) - cv;
        a0 += v0 * v0;
        a1 += v1 * v1;
        a2 += v2 * v2;
        a3 += v3 * v3;
    }
    NV(vd) t = (a0 + a1) + (a2 + a3);
    double s = 0.0;
    for (int k = 0; k < h; k++)
        s += t[k];
    for (; j < d; j++) {
        double v = (double)x[j] - c;
        s += v * v;
    }
    return s;
}

NV_TARGET static void NV(sumsq_rows)(const float *x, int ldx, int n, int d, float *sumsq) {
    for (int i = 0; i < n; i++)
        sumsq[i] = (float)NV(row_sumsq)(x + (size_t)i * ldx, d, 0.0);
}

/* 0.5 x (1 + tanh(u)) is x * sigmoid(2u): one exponential instead of
 * tanh's several operations, the same value to a few ulp. */
NV_INLINE NV(vf) NV(gelu1)(NV(vf) x) {
    const NV(vf) k2 = NV(set)(2.0f * 0.7978845608028654f); /* 2 sqrt(2/pi) */
    NV(vf) u = k2 * (x + NV(set)(0.044715f) * x * x * x);
    return x / (NV(set)(1.0f) + NV(exp)(-u));
}

NV_INLINE NV(vf) NV(silu1)(NV(vf) x) {
    return x / (NV(set)(1.0f) + NV(exp)(-x));
}

/* A tail shorter than a vector goes through a padded copy, so that every
 * element sees the same arithmetic. */
NV_TARGET static void NV(gelu_tanh)(float *x, size_t count) {
    size_t i = 0;
    for (; i + NV_W <= count; i += NV_W)
        NV(store)(x + i, NV(gelu1)(NV(load)(x + i)));
    if (i < count) {
        float t[NV_W] = {0};
        memcpy(t, x + i, (count - i) * sizeof(float));
        NV(store)(t, NV(gelu1)(NV(load)(t)));
        memcpy(x + i, t, (count - i) * sizeof(float));
    }
}

NV_TARGET static void NV(silu)(float *x, size_t count) {
    size_t i = 0;
    for (; i + NV_W <= count; i += NV_W)
        NV(store)(x + i, NV(silu1)(NV(load)(x + i)));
    if (i < count) {
        float t[NV_W] = {0};
        memcpy(t, x + i, (count - i) * sizeof(float));
        NV(store)(t, NV(silu1)(NV(load)(t)));
        memcpy(x + i, t, (count - i) * sizeof(float));
    }
}

/* s[j] = exp(s[j] - max s) in place; returns the sum. A short tail is
 * padded with the maximum (its exponentials, ones, are not kept). */
NV_TARGET static float NV(softmax_row)(float *s, int n) {
    NV(vf) mxv = NV(set)(-INFINITY);
    int j = 0;
    for (; j + NV_W <= n; j += NV_W) {
        NV(vf) v = NV(load)(s + j);
        mxv = NV(select)(v > mxv, v, mxv);
    }
    float mx = -INFINITY;
    for (int k = 0; k < NV_W; k++)
        mx = mxv[k] > mx ? mxv[k] : mx;
    for (int k = j; k < n; k++)
        mx = s[k] > mx ? s[k] : mx;
    NV(vf) m = NV(set)(mx), sumv = NV(set)(0.0f);
    for (j = 0; j + NV_W <= n; j += NV_W) {
        NV(vf) e = NV(exp)(NV(load)(s + j) - m);
        sumv += e;
        NV(store)(s + j, e);
    }
    float sum = 0.0f;
    if (j < n) {
        float t[NV_W];
        for (int k = 0; k < NV_W; k++)
            t[k] = j + k < n ? s[j + k] : mx;
        NV(store)(t, NV(exp)(NV(load)(t) - m));
        for (int k = 0; k < n - j; k++) {
            s[j + k] = t[k];
            sum += t[k];
        }
    }
    for (int k = 0; k < NV_W; k++)
        sum += sumv[k];
    return sum;
}

/* Row i of a [m, d] block (leading dimension ld) times f[i]. */
NV_TARGET static void NV(scale_rows)(float *x, int ld, int m, int d, const float *f) {
    for (int i = 0; i < m; i++) {
        float *r = x + (size_t)i * ld;
        NV(vf) fv = NV(set)(f[i]);
        int j = 0;
        for (; j + NV_W <= d; j += NV_W)
            NV(store)(r + j, NV(load)(r + j) * fv);
        for (; j < d; j++)
            r[j] *= f[i];
    }
}

/* Normalisation and the affine part in one pass; the operations and their
 * order, ((x - mean) * inv) * w + b, are those of separate passes. */
NV_TARGET static void NV(layer_norm)(const float *x, float *y, int n, int d, const float *w,
                                     const float *b, float eps) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        double mean = NV(row_sum)(xr, d) / d;
        /* Two passes: the variance of values far from zero loses nothing. */
        double var = NV(row_sumsq)(xr, d, mean);
        float inv = (float)(1.0 / sqrt(var / d + (double)eps));
        float m = (float)mean;
        const NV(vf) mv = NV(set)(m), iv = NV(set)(inv);
        int j = 0;
        for (; j + NV_W <= d; j += NV_W) {
            NV(vf) v = (NV(load)(xr + j) - mv) * iv;
            if (w)
                v *= NV(load)(w + j);
            if (b)
                v += NV(load)(b + j);
            NV(store)(yr + j, v);
        }
        for (; j < d; j++) {
            float v = (xr[j] - m) * inv;
            if (w)
                v *= w[j];
            if (b)
                v += b[j];
            yr[j] = v;
        }
    }
}

NV_TARGET static void NV(rms_scale)(float *x, int ldx, int n, int d, const float *sumsq,
                                    int dfull, const float *w, float eps) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * ldx;
        float inv = (float)(1.0 / sqrt((double)sumsq[i] / dfull + (double)eps));
        const NV(vf) iv = NV(set)(inv);
        int j = 0;
        for (; j + NV_W <= d; j += NV_W)
            NV(store)(r + j, NV(load)(r + j) * iv * NV(load)(w + j));
        for (; j < d; j++)
            r[j] = r[j] * inv * w[j];
    }
}

NV_TARGET static void NV(modulate)(float *x, int n, int d, const float *scale,
                                   const float *shift) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        int j = 0;
        for (; j + NV_W <= d; j += NV_W)
            NV(store)(r + j, NV(load)(r + j) * (NV(set)(1.0f) + NV(load)(scale + j)) +
                                 NV(load)(shift + j));
        for (; j < d; j++)
            r[j] = r[j] * (1.0f + scale[j]) + shift[j];
    }
}

/* x += (y + b) * gate, either of b and gate may be NULL */
NV_TARGET static void NV(residual_add)(float *x, int n, int d, const float *y, int ldy,
                                       const float *b, const float *gate) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        const float *yr = y + (size_t)i * ldy;
        int j = 0;
        for (; j + NV_W <= d; j += NV_W) {
            NV(vf) v = NV(load)(yr + j);
            if (b)
                v += NV(load)(b + j);
            if (gate)
                v *= NV(load)(gate + j);
            NV(store)(r + j, NV(load)(r + j) + v);
        }
        for (; j < d; j++) {
            float v = yr[j];
            if (b)
                v += b[j];
            if (gate)
                v *= gate[j];
            r[j] += v;
        }
    }
}

NV_TARGET static void NV(add_bias)(float *y, int ldy, int n, int d, const float *b) {
    for (int i = 0; i < n; i++) {
        float *r = y + (size_t)i * ldy;
        int j = 0;
        for (; j + NV_W <= d; j += NV_W)
            NV(store)(r + j, NV(load)(r + j) + NV(load)(b + j));
        for (; j < d; j++)
            r[j] += b[j];
    }
}

#undef NV_INLINE
