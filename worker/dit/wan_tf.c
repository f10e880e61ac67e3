/* wan_tf — the Wan transformer's forward pass. See wan_tf.h.
 *
 * Every rank runs the same sequence of operations on the same replicated
 * activations (the residual stream x [N, dim] is whole on every rank) and
 * differs only in which heads and feed-forward units it computes. Each
 * sub-layer ends in one all-reduce of an [N, dim] partial product, after
 * which every rank adds the same bias and residual, so the ranks' residual
 * streams stay identical without any broadcast. The q/k RMS norms add one
 * small all-reduce of per-token sums of squares before attention.
 *
 * The collectives are called unconditionally, in the same order on every
 * rank, even by a rank that holds no heads (more ranks than heads): its
 * partial products are zero and the group stays in step. Whether a forward
 * computes the text side or takes it from the cache changes which
 * collectives run, so the ranks settle that together first (one small
 * all-reduce of flags that every forward makes anyway).
 *
 * Modulated layer norms (x * (1 + scale) + shift after a plain norm) run as
 * one affine layer norm with weight 1 + scale and bias shift: one pass over
 * the activations instead of two.
 */
#include "wan_tf_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

/* Rotary frequencies: the reference's fixed theta. */
#define WAN_ROPE_THETA 10000.0

void wan_tf_acts_free(wan_tf_acts *a) {
    float *p[] = {a->x, a->h, a->y, a->qkv, a->att, a->q2, a->ff, a->patch, a->ctx1, a->ctx,
                  a->kv2, a->sums, a->work, a->rope_cos, a->rope_sin};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        kn_tensor_free(p[i]);
    memset(a, 0, sizeof *a);
}

/* Buffers for N tokens and L text tokens; kept when they are big enough. */
static int acts_ensure(wan_tf *m, int N, int L) {
    wan_tf_acts *a = &m->a;
    if (a->x && N <= a->n_cap && L <= a->l_cap)
        return 0;
    if (a->x) {
        N = N > a->n_cap ? N : a->n_cap;
        L = L > a->l_cap ? L : a->l_cap;
    }
    wan_tf_acts_free(a);
    const wan_tf_config *c = &m->cfg;
    size_t n = (size_t)N, l = (size_t)L, dim = (size_t)m->dim, dl = (size_t)m->dl;
    size_t pp = (size_t)c->patch[0] * c->patch[1] * c->patch[2];
    size_t chan = (size_t)(c->in_channels > c->out_channels ? c->in_channels : c->out_channels);
    size_t nl = n > l ? n : l;
    size_t ws_self = kn_attention_workspace(N, N), ws_cross = kn_attention_workspace(N, L);
    a->x = kn_tensor_alloc(n * dim);
    a->h = kn_tensor_alloc(n * dim);
    a->y = kn_tensor_alloc(n * dim);
    a->qkv = kn_tensor_alloc(n * 3 * dl);
    a->att = kn_tensor_alloc(n * dl);
    a->q2 = kn_tensor_alloc(n * dl);
    a->ff = kn_tensor_alloc(n * (size_t)m->fl);
    a->patch = kn_tensor_alloc(n * chan * pp);
    a->ctx1 = kn_tensor_alloc(l * (size_t)m->tl);
    a->ctx = kn_tensor_alloc(l * dim);
    a->kv2 = kn_tensor_alloc(l * 2 * dl);
    a->sums = kn_tensor_alloc(2 * nl);
    a->work_cap = ws_self > ws_cross ? ws_self : ws_cross;
    a->work = kn_tensor_alloc(a->work_cap);
    a->rope_cos = kn_tensor_alloc(n * (size_t)c->head_dim / 2);
    a->rope_sin = kn_tensor_alloc(n * (size_t)c->head_dim / 2);
    if (!a->x || !a->h || !a->y || !a->qkv || !a->att || !a->q2 || !a->ff || !a->patch ||
        !a->ctx1 || !a->ctx || !a->kv2 || !a->sums || !a->work || !a->rope_cos || !a->rope_sin) {
        wan_tf_acts_free(a);
        return -1;
    }
    a->n_cap = N;
    a->l_cap = L;
    return 0;
}

/* layer: the block, or -1 before the blocks. */
static int reduce(wan_tf *m, float *buf, size_t count, const char *what, int layer, char *err,
                  size_t errlen) {
    if (m->nranks == 1)
        return 0;
    if (coll_allreduce_sum(m->c, buf, buf, count, COLL_F32)) {
        if (layer >= 0)
            snprintf(err, errlen, "wan_tf: all-reduce of %s failed in block %d on rank %d", what,
                     layer, m->rank);
        else
            snprintf(err, errlen, "wan_tf: all-reduce of %s failed on rank %d", what, m->rank);
        return -1;
    }
    return 0;
}

/* ---------- the text side and its cache ---------- */

void wan_tf_text_free(wan_tf *m) {
    for (int i = 0; i < WAN_TF_TEXT_SLOTS; i++) {
        free(m->text[i].key);
        kn_tensor_free(m->text[i].kv);
    }
    memset(m->text, 0, sizeof m->text);
}

void wan_tf_set_text_cache(wan_tf *m, int on) {
    m->text_cache_on = on != 0;
    if (!on)
        wan_tf_text_free(m);
}

uint64_t wan_tf_text_cache_bytes(const wan_tf *m) {
    uint64_t n = 0;
    for (int i = 0; m && i < WAN_TF_TEXT_SLOTS; i++)
        n += (uint64_t)(m->text[i].key_cap + m->text[i].kv_cap) * sizeof(float);
    return n;
}

uint64_t wan_tf_text_cache_hits(const wan_tf *m) {
    return m ? m->text_hits : 0;
}

/* The slot holding ctx's text side, or -1. The key is the text itself,
 * compared exactly: a caller that refills the same buffer with another
 * prompt must not get the old prompt's keys (different prompts differ
 * from their first row on, so a miss costs little). */
static int text_find(const wan_tf *m, const float *ctx, int L) {
    if (!m->text_cache_on)
        return -1;
    size_t bytes = (size_t)L * m->cfg.text_dim * sizeof(float);
    for (int i = 0; i < WAN_TF_TEXT_SLOTS; i++) {
        const wan_tf_text *t = &m->text[i];
        if (t->valid && t->L == L && memcmp(t->key, ctx, bytes) == 0)
            return i;
    }
    return -1;
}

/* A slot for ctx's text side, marked invalid until the forward that fills
 * it is done: the one already holding it (another rank lacked it), else an
 * empty one, else the least recently used. -1 when its buffers cannot be
 * had; the forward then goes on without keeping the text side. */
static int text_claim(wan_tf *m, const float *ctx, int L, int have) {
    int s = have;
    for (int i = 0; s < 0 && i < WAN_TF_TEXT_SLOTS; i++)
        if (!m->text[i].valid)
            s = i;
    if (s < 0) {
        s = 0;
        for (int i = 1; i < WAN_TF_TEXT_SLOTS; i++)
            if (m->text[i].used < m->text[s].used)
                s = i;
    }
    wan_tf_text *t = &m->text[s];
    t->valid = 0;
    size_t nkey = (size_t)L * m->cfg.text_dim;
    size_t nkv = (size_t)m->cfg.num_layers * L * 2 * m->dl;
    if (t->key_cap < nkey) {
        free(t->key);
        t->key = malloc((nkey ? nkey : 1) * sizeof(float));
        t->key_cap = t->key ? nkey : 0;
    }
    if (t->kv_cap < nkv) {
        kn_tensor_free(t->kv);
        t->kv = kn_tensor_alloc(nkv);
        t->kv_cap = t->kv ? nkv : 0;
    }
    if (!t->key || !t->kv) {
        free(t->key);
        kn_tensor_free(t->kv);
        memset(t, 0, sizeof *t);
        return -1;
    }
    memcpy(t->key, ctx, nkey * sizeof(float));
    t->L = L;
    return s;
}

/* The text MLP into a->ctx [L, dim], split over the ranks by its hidden
 * units: each rank applies GELU to its units and multiplies them by its
 * columns of the second layer; the parts are summed. */
static int embed_text(wan_tf *m, const float *ctx, int L, char *err, size_t errlen) {
    wan_tf_acts *a = &m->a;
    const int dim = m->dim, tl = m->tl, td = m->cfg.text_dim;
    kn_linear(ctx, td, L, td, m->tx1_w, m->tx1_b, tl, a->ctx1, tl);
    kn_gelu_tanh(a->ctx1, (size_t)L * tl);
    kn_linear(a->ctx1, tl, L, tl, m->tx2_w, NULL, dim, a->ctx, dim);
    if (reduce(m, a->ctx, (size_t)L * dim, "the text embedding", -1, err, errlen))
        return -1;
    kn_add_bias(a->ctx, dim, L, dim, m->tx2_b);
    return 0;
}

/* Block l's cross-attention k (RMS-normed across all heads) and v of this
 * rank's heads, [L, 2*dl], from the embedded text. */
static int text_kv(wan_tf *m, const wan_tf_block *b, int l, int L, float *kv, char *err,
                   size_t errlen) {
    wan_tf_acts *a = &m->a;
    const int dim = m->dim, dl = m->dl;
    kn_linear(a->ctx, dim, L, dim, b->kv2_w, b->kv2_b, 2 * dl, kv, 2 * dl);
    kn_sumsq_rows(kv, 2 * dl, L, dl, a->sums);
    if (reduce(m, a->sums, (size_t)L, "cross-attention k sums of squares", l, err, errlen))
        return -1;
    kn_rms_scale(kv, 2 * dl, L, dl, a->sums, dim, b->nk2, m->cfg.eps);
    return 0;
}

/* The sinusoidal timestep features, [cos | sin], computed step by step in
 * float as the reference does: the timestep multiplies frequencies as
 * large as 1, so rounding the product differently would move the angle by
 * up to 1e-4 rad at t = 1000. */
static void time_features(float t, int freq_dim, float *out) {
    int half = freq_dim / 2;
    const float neg_log_period = (float)-log(10000.0);
    for (int i = 0; i < half; i++) {
        float e = neg_log_period * (float)i;
        e = e / (float)half;
        float arg = t * expf(e);
        out[i] = cosf(arg);
        out[half + i] = sinf(arg);
    }
    if (freq_dim % 2)
        out[freq_dim - 1] = 0.0f;
}

/* temb [dim] and the six modulation vectors' time part tproj [6*dim]. */
static void embed_time(wan_tf *m, float t) {
    int dim = m->dim, fd = m->cfg.freq_dim;
    time_features(t, fd, m->tfreq);
    kn_linear(m->tfreq, fd, 1, fd, m->te1_w, m->te1_b, dim, m->tmp, dim);
    kn_silu(m->tmp, (size_t)dim);
    kn_linear(m->tmp, dim, 1, dim, m->te2_w, m->te2_b, dim, m->temb, dim);
    memcpy(m->tmp, m->temb, (size_t)dim * sizeof(float));
    kn_silu(m->tmp, (size_t)dim);
    kn_linear(m->tmp, dim, 1, dim, m->tp_w, m->tp_b, 6 * dim, m->tproj, 6 * dim);
}

/* Conv3d with stride = kernel = patch, as a gather of patches and one
 * product: patch row t = (f, h, w) holds x[c, f*pt+a, h*ph+b, w*pw+d] at
 * ((c*pt + a)*ph + b)*pw + d, the order of the conv weight's last four
 * dimensions. */
static void patchify(const wan_tf *m, const float *x, int F, int H, int W, float *P) {
    const int pt = m->cfg.patch[0], ph = m->cfg.patch[1], pw = m->cfg.patch[2];
    const int C = m->cfg.in_channels, Fp = F / pt, Hp = H / ph, Wp = W / pw;
    const size_t K = (size_t)C * pt * ph * pw;
    for (int f = 0; f < Fp; f++)
        for (int h = 0; h < Hp; h++)
            for (int w = 0; w < Wp; w++) {
                float *row = P + (((size_t)f * Hp + h) * Wp + w) * K;
                size_t k = 0;
                for (int c = 0; c < C; c++)
                    for (int a = 0; a < pt; a++)
                        for (int b = 0; b < ph; b++) {
                            const float *src =
                                x + (((size_t)c * F + f * pt + a) * H + h * ph + b) * W + w * pw;
                            for (int d = 0; d < pw; d++)
                                row[k++] = src[d];
                        }
            }
}

/* The head's token rows back to a video: row t = (f, h, w) holds
 * out[c, f*pt+a, h*ph+b, w*pw+d] at ((a*ph + b)*pw + d)*C_out + c. */
static void unpatchify(const wan_tf *m, const float *P, int F, int H, int W, float *out) {
    const int pt = m->cfg.patch[0], ph = m->cfg.patch[1], pw = m->cfg.patch[2];
    const int C = m->cfg.out_channels, Fp = F / pt, Hp = H / ph, Wp = W / pw;
    const size_t K = (size_t)C * pt * ph * pw;
    for (int f = 0; f < Fp; f++)
        for (int h = 0; h < Hp; h++)
            for (int w = 0; w < Wp; w++) {
                const float *row = P + (((size_t)f * Hp + h) * Wp + w) * K;
                for (int a = 0; a < pt; a++)
                    for (int b = 0; b < ph; b++)
                        for (int d = 0; d < pw; d++) {
                            const float *v = row + (((size_t)a * ph + b) * pw + d) * C;
                            size_t o = ((size_t)(f * pt + a) * H + h * ph + b) * W + w * pw + d;
                            for (int c = 0; c < C; c++)
                                out[(size_t)c * F * H * W + o] = v[c];
                        }
            }
}

/* a->h = layer_norm(a->x) * (1 + scale) + shift, in one pass. */
static void modulated_norm(wan_tf *m, int N, const float *scale, const float *shift) {
    for (int j = 0; j < m->dim; j++)
        m->scale1[j] = 1.0f + scale[j];
    kn_layer_norm(m->a.x, m->a.h, N, m->dim, m->scale1, shift, m->cfg.eps);
}

/* Self-attention sub-layer: x += (attn(norm1(x) modulated) + bias) * gate. */
static int self_attention(wan_tf *m, const wan_tf_block *b, int l, int N, char *err,
                          size_t errlen) {
    wan_tf_acts *a = &m->a;
    const int dim = m->dim, dl = m->dl, hd = m->cfg.head_dim, hl = dl / hd;
    const float *mod = m->mod;
    modulated_norm(m, N, mod + dim, mod);
    kn_linear(a->h, dim, N, dim, b->qkv_w, b->qkv_b, 3 * dl, a->qkv, 3 * dl);
    float *q = a->qkv, *k = a->qkv + dl, *v = a->qkv + 2 * dl;
    kn_sumsq_rows(q, 3 * dl, N, dl, a->sums);
    kn_sumsq_rows(k, 3 * dl, N, dl, a->sums + N);
    if (reduce(m, a->sums, 2 * (size_t)N, "self-attention q/k sums of squares", l, err, errlen))
        return -1;
    kn_rms_scale(q, 3 * dl, N, dl, a->sums, dim, b->nq1, m->cfg.eps);
    kn_rms_scale(k, 3 * dl, N, dl, a->sums + N, dim, b->nk1, m->cfg.eps);
    kn_rope_apply(q, 3 * dl, N, hl, hd, a->rope_cos, a->rope_sin);
    kn_rope_apply(k, 3 * dl, N, hl, hd, a->rope_cos, a->rope_sin);
    kn_attention(q, 3 * dl, k, 3 * dl, v, 3 * dl, a->att, dl, N, N, hl, hd, a->work);
    kn_linear(a->att, dl, N, dl, b->o1_w, NULL, dim, a->y, dim);
    if (reduce(m, a->y, (size_t)N * dim, "self-attention output", l, err, errlen))
        return -1;
    kn_residual_add(a->x, N, dim, a->y, dim, b->o1_b, mod + 2 * dim);
    return 0;
}

/* Cross-attention sub-layer: x += attn(norm2(x), text) + bias, with the
 * text's k and v of this block in kv [L, 2*dl] (text_kv). */
static int cross_attention(wan_tf *m, const wan_tf_block *b, int l, int N, int L,
                           const float *kv, char *err, size_t errlen) {
    wan_tf_acts *a = &m->a;
    const int dim = m->dim, dl = m->dl, hd = m->cfg.head_dim, hl = dl / hd;
    const float *in = a->x;
    if (m->cfg.cross_attn_norm) {
        kn_layer_norm(a->x, a->h, N, dim, b->n2_w, b->n2_b, m->cfg.eps);
        in = a->h;
    }
    kn_linear(in, dim, N, dim, b->q2_w, b->q2_b, dl, a->q2, dl);
    kn_sumsq_rows(a->q2, dl, N, dl, a->sums);
    if (reduce(m, a->sums, (size_t)N, "cross-attention q sums of squares", l, err, errlen))
        return -1;
    kn_rms_scale(a->q2, dl, N, dl, a->sums, dim, b->nq2, m->cfg.eps);
    kn_attention(a->q2, dl, kv, 2 * dl, kv + dl, 2 * dl, a->att, dl, N, L, hl, hd, a->work);
    kn_linear(a->att, dl, N, dl, b->o2_w, NULL, dim, a->y, dim);
    if (reduce(m, a->y, (size_t)N * dim, "cross-attention output", l, err, errlen))
        return -1;
    kn_residual_add(a->x, N, dim, a->y, dim, b->o2_b, NULL);
    return 0;
}

/* Feed-forward sub-layer: x += (ffn(norm3(x) modulated) + bias) * gate. */
static int feed_forward(wan_tf *m, const wan_tf_block *b, int l, int N, char *err,
                        size_t errlen) {
    wan_tf_acts *a = &m->a;
    const int dim = m->dim, fl = m->fl;
    const float *mod = m->mod;
    modulated_norm(m, N, mod + 4 * dim, mod + 3 * dim);
    kn_linear(a->h, dim, N, dim, b->ff1_w, b->ff1_b, fl, a->ff, fl);
    kn_gelu_tanh(a->ff, (size_t)N * fl);
    kn_linear(a->ff, fl, N, fl, b->ff2_w, NULL, dim, a->y, dim);
    if (reduce(m, a->y, (size_t)N * dim, "feed-forward output", l, err, errlen))
        return -1;
    kn_residual_add(a->x, N, dim, a->y, dim, b->ff2_b, mod + 5 * dim);
    return 0;
}

static int check_shape(const wan_tf *m, int F, int H, int W, int L, char *err, size_t errlen) {
    const wan_tf_config *c = &m->cfg;
    const int dims[3] = {F, H, W};
    static const char *const names[3] = {"frames", "height", "width"};
    for (int i = 0; i < 3; i++) {
        if (dims[i] <= 0 || dims[i] % c->patch[i]) {
            snprintf(err, errlen, "wan_tf: latent %s %d is not a positive multiple of the patch size %d",
                     names[i], dims[i], c->patch[i]);
            return -1;
        }
        if (dims[i] / c->patch[i] > c->rope_max_seq_len) {
            snprintf(err, errlen,
                     "wan_tf: latent %s %d gives %d positions, more than rope_max_seq_len %d",
                     names[i], dims[i], dims[i] / c->patch[i], c->rope_max_seq_len);
            return -1;
        }
    }
    if (L <= 0) {
        snprintf(err, errlen, "wan_tf: the text embedding has %d tokens; it needs at least one", L);
        return -1;
    }
    int64_t n = (int64_t)(F / c->patch[0]) * (H / c->patch[1]) * (W / c->patch[2]);
    if (n > (1 << 24) || L > (1 << 20)) {
        snprintf(err, errlen, "wan_tf: %lld video tokens and %d text tokens are more than supported",
                 (long long)n, L);
        return -1;
    }
    return 0;
}

int wan_tf_forward(wan_tf *m, const float *x, int F, int H, int W, float timestep,
                   const float *ctx, int L, float *out, char *err, size_t errlen) {
    const wan_tf_config *c = &m->cfg;
    if (check_shape(m, F, H, W, L, err, errlen))
        return -1;
    const int Fp = F / c->patch[0], Hp = H / c->patch[1], Wp = W / c->patch[2];
    const int N = Fp * Hp * Wp, dim = m->dim;
    const int pp = c->patch[0] * c->patch[1] * c->patch[2];

    /* A rank that cannot allocate must not leave the others waiting in a
     * collective, and the ranks must agree on computing the text side or
     * not: flags [allocation failed, text side missing], summed. */
    int cached = text_find(m, ctx, L);
    float flags[2] = {acts_ensure(m, N, L) ? 1.0f : 0.0f, cached < 0 ? 1.0f : 0.0f};
    if (reduce(m, flags, 2, "the start flags", -1, err, errlen))
        return -1;
    if (flags[0] != 0.0f) {
        snprintf(err, errlen,
                 "wan_tf: out of memory for the activations of %d tokens (on %s rank)", N,
                 m->a.x ? "another" : "this");
        return -1;
    }
    int fill = -1; /* the cache slot this forward fills */
    if (flags[1] != 0.0f) {
        fill = m->text_cache_on ? text_claim(m, ctx, L, cached) : -1;
        cached = -1;
    }
    m->forwards++;
    wan_tf_acts *a = &m->a;
    if (a->rope_f != Fp || a->rope_h != Hp || a->rope_w != Wp) {
        kn_rope3d_tables(Fp, Hp, Wp, c->head_dim, WAN_ROPE_THETA, a->rope_cos, a->rope_sin);
        a->rope_f = Fp, a->rope_h = Hp, a->rope_w = Wp;
    }

    patchify(m, x, F, H, W, a->patch);
    kn_linear(a->patch, c->in_channels * pp, N, c->in_channels * pp, m->patch_w, m->patch_b, dim,
              a->x, dim);
    embed_time(m, timestep);
    if (cached < 0 && embed_text(m, ctx, L, err, errlen))
        return -1;

    for (int l = 0; l < c->num_layers; l++) {
        const wan_tf_block *b = &m->blocks[l];
        size_t kv_off = (size_t)l * L * 2 * m->dl;
        float *kv;
        if (cached >= 0) {
            kv = m->text[cached].kv + kv_off;
        } else {
            kv = fill >= 0 ? m->text[fill].kv + kv_off : a->kv2;
            if (text_kv(m, b, l, L, kv, err, errlen))
                return -1;
        }
        /* shift, scale, gate of self-attention; shift, scale, gate of the ffn */
        for (int i = 0; i < 6 * dim; i++)
            m->mod[i] = b->sst[i] + m->tproj[i];
        if (self_attention(m, b, l, N, err, errlen) ||
            cross_attention(m, b, l, N, L, kv, err, errlen) ||
            feed_forward(m, b, l, N, err, errlen))
            return -1;
    }
    if (fill >= 0)
        m->text[fill].valid = 1, m->text[fill].used = m->forwards;
    if (cached >= 0)
        m->text[cached].used = m->forwards, m->text_hits++;

    /* head: modulation from temb itself (shift, scale) */
    for (int i = 0; i < 2 * dim; i++)
        m->mod[i] = m->out_sst[i] + m->temb[i % dim];
    modulated_norm(m, N, m->mod + dim, m->mod);
    kn_linear(a->h, dim, N, dim, m->out_w, m->out_b, c->out_channels * pp, a->patch,
              c->out_channels * pp);
    unpatchify(m, a->patch, F, H, W, out);
    return 0;
}
