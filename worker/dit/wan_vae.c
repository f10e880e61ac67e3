/* wan_vae — Wan2.1's causal 3D VAE decoder (see wan_vae.h).
 *
 * The graph, for widths d_i = decoder_base_dim * dim_mult[reversed]:
 *
 *   de-normalise -> post_quant_conv (1x1x1)
 *   conv_in (3x3x3 causal)
 *   mid block: resnet, single-head spatial attention per frame, resnet
 *   up blocks: num_res_blocks+1 resnets, then (all but the last block) an
 *              upsampler: nearest 2x + 3x3 conv halving the width, preceded
 *              for temporal levels by a (3,1,1) causal conv that doubles
 *              the channels, read as two frames per input frame
 *   RMS norm, SiLU, conv_out (3x3x3 causal) -> clamp to [-1, 1]
 *
 * Streaming. The reference decodes one latent frame at a time and every
 * causal convolution caches the last two frames of its input; that is
 * exactly a causal convolution over the whole stream with two zero frames
 * in front, which is what a conv_cache here holds: the last kt-1 input
 * frames seen, NULL (zeros) while fewer have passed. One exception makes
 * the frame count 4T-3 instead of 4T: a temporal upsampler passes the
 * first chunk through without its time convolution (one frame stays one
 * frame), and its time convolution's stream starts at the second chunk
 * with zeros in front, not with the first chunk's frame.
 *
 * Weights are described once, as a table of (name, shape, destination)
 * built from the config; loading, error messages and the list of expected
 * tensors all walk that same table, so they cannot disagree.
 */
#include "wan_vae.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"

/* Scratch for patch matrices and attention scores: large enough that
 * each sgemm runs near peak, small enough to be irrelevant next to the
 * feature maps of a real resolution. */
#define VAE_SCRATCH_BUDGET ((size_t)8 << 20) /* floats */

typedef struct {
    int cin, cout, kt, kh, kw;
    float *w, *b;
    int cache; /* slot in the decode state's caches, -1 when kt == 1 */
} vconv;

typedef struct {
    int cin, cout;
    float *gamma1, *gamma2;
    vconv conv1, conv2;
    int has_shortcut;
    vconv shortcut;
} vres;

typedef struct {
    int c;
    float *gamma;
    vconv qkv, proj;
} vattn;

enum { UP_NONE = 0, UP_2D, UP_3D };

typedef struct {
    int nres;
    vres *res;
    int mode;
    vconv time_conv; /* UP_3D: c -> 2c, kernel (3,1,1) */
    vconv resample;  /* UP_2D / UP_3D: 3x3, c -> c/2 */
} vup;

typedef struct {
    wan_vae_tensor_spec spec;
    float **slot;
} vparam;

struct wan_vae {
    wan_vae_config cfg;
    vconv post_quant, conv_in, conv_out;
    vres mid_res[2];
    vattn mid_attn;
    int nup;
    vup *up;
    float *norm_out;
    int ncaches;
    vparam *params;
    size_t nparams, capparams;
};

/* ---- the weight table ---- */

static int param_add(wan_vae *v, float **slot, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int param_add(wan_vae *v, float **slot, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (v->nparams == v->capparams) {
        size_t cap = v->capparams ? 2 * v->capparams : 64;
        vparam *p = realloc(v->params, cap * sizeof *p);
        if (!p)
            return -1;
        v->params = p;
        v->capparams = cap;
    }
    vparam *p = &v->params[v->nparams++];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->spec.name, sizeof p->spec.name, fmt, ap);
    va_end(ap);
    p->spec.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        p->spec.shape[i] = shape[i];
    p->slot = slot;
    return 0;
}

/* A convolution's weight and bias; ndim 5 for Conv3d, 4 for Conv2d. */
static int conv_def(wan_vae *v, vconv *cv, int ndim, int cin, int cout, int kt, int kh, int kw,
                    const char *prefix)
{
    cv->cin = cin, cv->cout = cout, cv->kt = kt, cv->kh = kh, cv->kw = kw;
    cv->cache = kt > 1 ? v->ncaches++ : -1;
    int64_t w5[5] = {cout, cin, kt, kh, kw}, w4[4] = {cout, cin, kh, kw}, b[1] = {cout};
    if (param_add(v, &cv->w, ndim, ndim == 5 ? w5 : w4, "%s.weight", prefix) ||
        param_add(v, &cv->b, 1, b, "%s.bias", prefix))
        return -1;
    return 0;
}

/* RMS-norm gain: [c,1,1,1] over video tensors, [c,1,1] over images. */
static int gamma_def(wan_vae *v, float **slot, int c, int images, const char *prefix)
{
    int64_t s[4] = {c, 1, 1, 1};
    return param_add(v, slot, images ? 3 : 4, s, "%s.gamma", prefix);
}

static int res_def(wan_vae *v, vres *r, int cin, int cout, const char *prefix)
{
    char p[96];
    r->cin = cin, r->cout = cout;
    r->has_shortcut = cin != cout;
    snprintf(p, sizeof p, "%s.norm1", prefix);
    if (gamma_def(v, &r->gamma1, cin, 0, p))
        return -1;
    snprintf(p, sizeof p, "%s.conv1", prefix);
    if (conv_def(v, &r->conv1, 5, cin, cout, 3, 3, 3, p))
        return -1;
    snprintf(p, sizeof p, "%s.norm2", prefix);
    if (gamma_def(v, &r->gamma2, cout, 0, p))
        return -1;
    snprintf(p, sizeof p, "%s.conv2", prefix);
    if (conv_def(v, &r->conv2, 5, cout, cout, 3, 3, 3, p))
        return -1;
    if (r->has_shortcut) {
        snprintf(p, sizeof p, "%s.conv_shortcut", prefix);
        if (conv_def(v, &r->shortcut, 5, cin, cout, 1, 1, 1, p))
            return -1;
    }
    return 0;
}

/* Lay out the decoder for v->cfg and fill the weight table (no weights are
 * read or allocated here). */
static int vae_build(wan_vae *v)
{
    const wan_vae_config *c = &v->cfg;
    int n = c->n_levels, d = c->decoder_base_dim;
    int dims[WAN_VAE_MAX_LEVELS + 1];
    dims[0] = d * c->dim_mult[n - 1];
    for (int i = 0; i < n; i++)
        dims[i + 1] = d * c->dim_mult[n - 1 - i];

    if (conv_def(v, &v->post_quant, 5, c->z_dim, c->z_dim, 1, 1, 1, "post_quant_conv") ||
        conv_def(v, &v->conv_in, 5, c->z_dim, dims[0], 3, 3, 3, "decoder.conv_in"))
        return -1;
    if (res_def(v, &v->mid_res[0], dims[0], dims[0], "decoder.mid_block.resnets.0"))
        return -1;
    v->mid_attn.c = dims[0];
    if (gamma_def(v, &v->mid_attn.gamma, dims[0], 1, "decoder.mid_block.attentions.0.norm") ||
        conv_def(v, &v->mid_attn.qkv, 4, dims[0], 3 * dims[0], 1, 1, 1,
                 "decoder.mid_block.attentions.0.to_qkv") ||
        conv_def(v, &v->mid_attn.proj, 4, dims[0], dims[0], 1, 1, 1,
                 "decoder.mid_block.attentions.0.proj"))
        return -1;
    if (res_def(v, &v->mid_res[1], dims[0], dims[0], "decoder.mid_block.resnets.1"))
        return -1;

    v->nup = n;
    v->up = calloc((size_t)n, sizeof *v->up);
    if (!v->up)
        return -1;
    for (int i = 0; i < n; i++) {
        vup *u = &v->up[i];
        /* Every upsampler but the last halves the width, so the blocks
         * after the first start at half of the previous block's width. */
        int in = i > 0 ? dims[i] / 2 : dims[i], out = dims[i + 1];
        u->nres = c->num_res_blocks + 1;
        u->res = calloc((size_t)u->nres, sizeof *u->res);
        if (!u->res)
            return -1;
        char p[96];
        for (int j = 0; j < u->nres; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            if (res_def(v, &u->res[j], j == 0 ? in : out, out, p))
                return -1;
        }
        if (i == n - 1)
            continue;
        /* The decoder runs the encoder's temporal flags in reverse. */
        u->mode = c->temperal_downsample[n - 2 - i] ? UP_3D : UP_2D;
        if (u->mode == UP_3D) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.time_conv", i);
            if (conv_def(v, &u->time_conv, 5, out, 2 * out, 3, 1, 1, p))
                return -1;
        }
        snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.resample.1", i);
        if (conv_def(v, &u->resample, 4, out, out / 2, 1, 3, 3, p))
            return -1;
    }
    int last = dims[n];
    if (gamma_def(v, &v->norm_out, last, 0, "decoder.norm_out") ||
        conv_def(v, &v->conv_out, 5, last, c->out_channels, 3, 3, 3, "decoder.conv_out"))
        return -1;
    return 0;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

void wan_vae_free(wan_vae *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->nparams; i++)
        free(*v->params[i].slot);
    for (int i = 0; i < v->nup; i++)
        free(v->up[i].res);
    free(v->up);
    free(v->params);
    free(v);
}

static int vae_alloc(const wan_vae_config *cfg, wan_vae **out)
{
    wan_vae *v = calloc(1, sizeof *v);
    if (!v)
        return -1;
    v->cfg = *cfg;
    if (vae_build(v)) {
        wan_vae_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int wan_vae_expected_tensors(const wan_vae_config *cfg, wan_vae_tensor_spec *out, size_t cap)
{
    char err[256];
    wan_vae *v;
    if (wan_vae_config_check(cfg, err, sizeof err) || vae_alloc(cfg, &v))
        return -1;
    for (size_t i = 0; i < v->nparams && i < cap; i++)
        out[i] = v->params[i].spec;
    int n = (int)v->nparams;
    wan_vae_free(v);
    return n;
}

int wan_vae_new(const wan_vae_config *cfg, st_set *weights, wan_vae **out, char *err, size_t errlen)
{
    if (wan_vae_config_check(cfg, err, errlen))
        return -1;
    wan_vae *v;
    if (vae_alloc(cfg, &v)) {
        snprintf(err, errlen, "wan_vae: out of memory laying out the decoder");
        return -1;
    }
    for (size_t i = 0; i < v->nparams; i++) {
        const wan_vae_tensor_spec *sp = &v->params[i].spec;
        const st_tensor *t = st_find(weights, sp->name);
        char want[96], got[96];
        shape_str(want, sizeof want, sp->ndim, sp->shape);
        if (!t) {
            snprintf(err, errlen,
                     "wan_vae: decoder tensor '%s' %s is missing from the weights (this config "
                     "needs it)",
                     sp->name, want);
            goto fail;
        }
        int same = t->ndim == sp->ndim;
        for (int k = 0; same && k < sp->ndim; k++)
            same = t->shape[k] == sp->shape[k];
        if (!same) {
            shape_str(got, sizeof got, t->ndim, t->shape);
            snprintf(err, errlen,
                     "wan_vae: decoder tensor '%s' in %s has shape %s, the config implies %s",
                     sp->name, t->file, got, want);
            goto fail;
        }
        size_t nel = 1;
        for (int k = 0; k < sp->ndim; k++)
            nel *= (size_t)sp->shape[k];
        float *dst = malloc(nel * sizeof *dst);
        if (!dst) {
            snprintf(err, errlen, "wan_vae: out of memory for tensor '%s' (%zu floats)", sp->name,
                     nel);
            goto fail;
        }
        *v->params[i].slot = dst;
        if (st_load(weights, sp->name, sp->ndim, sp->shape, dst, err, errlen))
            goto fail;
    }
    *out = v;
    return 0;
fail:
    wan_vae_free(v);
    return -1;
}

const wan_vae_config *wan_vae_get_config(const wan_vae *v)
{
    return &v->cfg;
}

int wan_vae_out_frames(int T)
{
    return T < 1 ? 0 : 4 * T - 3;
}

/* ---- decoding ---- */

/* The last frames (at most kt-1) a causal convolution has seen. */
typedef struct {
    float *buf;
    int n;
    size_t frame; /* floats per frame */
} vcache;

typedef struct {
    vcache *caches;
    int ncaches;
    float *scratch;
    size_t scratch_n;
    int chunk; /* latent frame being decoded */
    char *err;
    size_t errlen;
} vstate;

static float *vs_alloc(vstate *s, size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p)
        snprintf(s->err, s->errlen, "wan_vae: out of memory decoding (%zu floats)", n);
    return p;
}

static int scratch_reserve(vstate *s, size_t want, size_t min)
{
    if (want > VAE_SCRATCH_BUDGET)
        want = VAE_SCRATCH_BUDGET;
    if (want < min)
        want = min;
    if (want <= s->scratch_n)
        return 0;
    float *p = realloc(s->scratch, want * sizeof *p);
    if (!p) {
        snprintf(s->err, s->errlen, "wan_vae: out of memory for scratch (%zu floats)", want);
        return -1;
    }
    s->scratch = p;
    s->scratch_n = want;
    return 0;
}

/* Keep the last `keep` frames of (cache ++ x). Sources only ever move to
 * lower slots, so copying in slot order never overwrites an unread one. */
static int cache_push(vstate *s, vcache *c, const float *x, int t, size_t frame, int keep)
{
    if (!c->buf) {
        c->buf = vs_alloc(s, (size_t)keep * frame);
        if (!c->buf)
            return -1;
        c->frame = frame;
    }
    int total = c->n + t, m = total < keep ? total : keep, first = total - m;
    for (int j = 0; j < m; j++) {
        int src = first + j;
        const float *from =
            src < c->n ? c->buf + (size_t)src * frame : x + (size_t)(src - c->n) * frame;
        float *to = c->buf + (size_t)j * frame;
        if (from != to)
            memmove(to, from, frame * sizeof *to);
    }
    c->n = m;
    return 0;
}

/* Run cv over t frames [t, cin, h, w] into out [t, cout, h, w]; causal
 * convolutions read their cache first and update it after. */
static int conv_run(vstate *s, const vconv *cv, const float *x, int t, int h, int w, float *out)
{
    size_t frame = (size_t)cv->cin * (size_t)h * (size_t)w;
    int past = cv->kt - 1, n_in = past + t;
    const float **in = malloc((size_t)n_in * sizeof *in);
    if (!in) {
        snprintf(s->err, s->errlen, "wan_vae: out of memory");
        return -1;
    }
    vcache *c = cv->cache >= 0 ? &s->caches[cv->cache] : NULL;
    int have = c ? c->n : 0;
    for (int i = 0; i < past; i++) {
        int j = i - (past - have); /* cache slot feeding position i, if any */
        in[i] = j >= 0 ? c->buf + (size_t)j * c->frame : NULL;
    }
    for (int i = 0; i < t; i++)
        in[past + i] = x + (size_t)i * frame;
    int rc = scratch_reserve(s, kn_conv_scratch_want(cv->cin, cv->kt, cv->kh, cv->kw, h, w),
                             kn_conv_scratch_min(cv->cin, cv->kt, cv->kh, cv->kw));
    if (!rc && kn_conv_3d(in, n_in, cv->cin, h, w, cv->w, cv->b, cv->cout, cv->kt, cv->kh, cv->kw,
                          out, s->scratch, s->scratch_n)) {
        snprintf(s->err, s->errlen, "wan_vae: convolution %dx%dx%d %d->%d refused its arguments",
                 cv->kt, cv->kh, cv->kw, cv->cin, cv->cout);
        rc = -1;
    }
    free(in);
    if (!rc && c)
        rc = cache_push(s, c, x, t, frame, past);
    return rc;
}

/* RMS norm + SiLU into a new buffer. */
static float *norm_silu(vstate *s, const float *x, int t, int c, size_t hw, const float *gamma)
{
    size_t n = (size_t)t * (size_t)c * hw;
    float *y = vs_alloc(s, n);
    if (!y)
        return NULL;
    kn_conv_rmsnorm(x, t, c, hw, gamma, y);
    kn_conv_silu(y, n);
    return y;
}

/* A new [t, cout, h, w] buffer with the residual block applied to x. */
static float *res_run(vstate *s, const vres *r, const float *x, int t, int h, int w)
{
    size_t hw = (size_t)h * (size_t)w, nout = (size_t)t * (size_t)r->cout * hw;
    float *out = NULL, *sc = NULL, *b = NULL;
    float *a = norm_silu(s, x, t, r->cin, hw, r->gamma1);
    if (!a)
        return NULL;
    b = vs_alloc(s, nout);
    if (!b || conv_run(s, &r->conv1, a, t, h, w, b))
        goto done;
    kn_conv_rmsnorm(b, t, r->cout, hw, r->gamma2, b);
    kn_conv_silu(b, nout);
    out = vs_alloc(s, nout);
    if (!out || conv_run(s, &r->conv2, b, t, h, w, out))
        goto fail;
    if (r->has_shortcut) {
        sc = vs_alloc(s, nout);
        if (!sc || conv_run(s, &r->shortcut, x, t, h, w, sc))
            goto fail;
        kn_conv_add(out, sc, nout);
    } else {
        kn_conv_add(out, x, nout);
    }
    goto done;
fail:
    free(out);
    out = NULL;
done:
    free(a);
    free(b);
    free(sc);
    return out;
}

/* Mid-block attention, frame by frame, in place on x [t, c, h, w]: every
 * frame attends over its own pixels only. */
static int attn_run(vstate *s, const vattn *at, float *x, int t, int h, int w)
{
    int c = at->c, n = h * w;
    size_t hw = (size_t)n, fr = (size_t)c * hw;
    float *nx = vs_alloc(s, fr), *qkv = vs_alloc(s, 3 * fr), *o = vs_alloc(s, fr),
          *p = vs_alloc(s, fr);
    int rc = -1;
    if (!nx || !qkv || !o || !p)
        goto done;
    if (scratch_reserve(s, kn_conv_attn_scratch_want(n), hw))
        goto done;
    for (int f = 0; f < t; f++) {
        float *xf = x + (size_t)f * fr;
        kn_conv_rmsnorm(xf, 1, c, hw, at->gamma, nx);
        if (conv_run(s, &at->qkv, nx, 1, h, w, qkv))
            goto done;
        if (kn_conv_attn(qkv, qkv + fr, qkv + 2 * fr, c, n, o, s->scratch, s->scratch_n)) {
            snprintf(s->err, s->errlen, "wan_vae: attention over %d pixels refused its arguments",
                     n);
            goto done;
        }
        if (conv_run(s, &at->proj, o, 1, h, w, p))
            goto done;
        kn_conv_add(xf, p, fr);
    }
    rc = 0;
done:
    free(nx);
    free(qkv);
    free(o);
    free(p);
    return rc;
}

/* Upsampler: x [*t, c, *h, *w] (consumed) -> returned [*t', c/2, 2h, 2w]. */
static float *up_run(vstate *s, const vup *u, float *x, int *t, int *h, int *w)
{
    int c = u->resample.cin;
    size_t hw = (size_t)*h * (size_t)*w;
    if (u->mode == UP_3D && s->chunk > 0) {
        /* [t, 2c, h, w] is [2t, c, h, w] with frame 2i+j = channel half j
         * of input frame i: the interleave the reference builds by
         * reshape and stack is already the memory order. */
        float *y = vs_alloc(s, (size_t)*t * 2 * (size_t)c * hw);
        if (!y || conv_run(s, &u->time_conv, x, *t, *h, *w, y)) {
            free(y);
            free(x);
            return NULL;
        }
        free(x);
        x = y;
        *t *= 2;
    }
    /* One frame at a time: the upsampled frame at full width is the
     * largest tensor of the decoder (192 channels at 480x832 is 300 MB),
     * and the conv right after it shrinks it by half. */
    int h2 = 2 * *h, w2 = 2 * *w;
    size_t hw2 = (size_t)h2 * (size_t)w2, co = (size_t)u->resample.cout;
    float *big = vs_alloc(s, (size_t)c * hw2);
    float *out = big ? vs_alloc(s, (size_t)*t * co * hw2) : NULL;
    for (int f = 0; out && f < *t; f++) {
        kn_conv_upsample2x(x + (size_t)f * (size_t)c * hw, 1, c, *h, *w, big);
        if (conv_run(s, &u->resample, big, 1, h2, w2, out + (size_t)f * co * hw2)) {
            free(out);
            out = NULL;
        }
    }
    free(big);
    free(x);
    *h = h2, *w = w2;
    return out;
}

/* Replace *x by f(*x); frees the old buffer either way. */
static int step_res(vstate *s, const vres *r, float **x, int t, int h, int w)
{
    float *y = res_run(s, r, *x, t, h, w);
    free(*x);
    *x = y;
    return y ? 0 : -1;
}

/* One latent frame z [z_dim, h, w] (post_quant_conv applied) through the
 * decoder. Returns [*t, 3, H, W] (H = h*2^(levels-1)) and sets *t, *H, *W. */
static float *decode_chunk(wan_vae *v, vstate *s, const float *z, int h, int w, int *t_out,
                           int *h_out, int *w_out)
{
    int t = 1;
    float *x = vs_alloc(s, (size_t)v->conv_in.cout * (size_t)h * (size_t)w);
    if (!x || conv_run(s, &v->conv_in, z, 1, h, w, x))
        goto fail;
    if (step_res(s, &v->mid_res[0], &x, t, h, w) || attn_run(s, &v->mid_attn, x, t, h, w) ||
        step_res(s, &v->mid_res[1], &x, t, h, w))
        goto fail;
    for (int i = 0; i < v->nup; i++) {
        const vup *u = &v->up[i];
        for (int j = 0; j < u->nres; j++)
            if (step_res(s, &u->res[j], &x, t, h, w))
                goto fail;
        if (u->mode != UP_NONE) {
            x = up_run(s, u, x, &t, &h, &w);
            if (!x)
                goto fail;
        }
    }
    size_t hw = (size_t)h * (size_t)w;
    float *a = norm_silu(s, x, t, v->conv_out.cin, hw, v->norm_out);
    free(x);
    x = NULL;
    if (!a)
        goto fail;
    x = vs_alloc(s, (size_t)t * (size_t)v->conv_out.cout * hw);
    if (!x || conv_run(s, &v->conv_out, a, t, h, w, x)) {
        free(a);
        goto fail;
    }
    free(a);
    *t_out = t, *h_out = h, *w_out = w;
    return x;
fail:
    free(x);
    return NULL;
}

int wan_vae_decode(wan_vae *v, const float *latents, int T, int h, int w, float *rgb, char *err,
                   size_t errlen)
{
    const wan_vae_config *c = &v->cfg;
    int sf = c->scale_factor_spatial;
    if (T < 1 || h < 1 || w < 1 ||
        (size_t)h * (size_t)w * (size_t)sf * (size_t)sf > ((size_t)1 << 31)) {
        snprintf(err, errlen, "wan_vae_decode: latent size T=%d h=%d w=%d unsupported", T, h, w);
        return -1;
    }
    vstate s = {.err = err, .errlen = errlen, .ncaches = v->ncaches};
    s.caches = calloc((size_t)v->ncaches, sizeof *s.caches);
    size_t hw = (size_t)h * (size_t)w, zf = (size_t)c->z_dim * hw;
    float *zin = malloc(zf * sizeof *zin), *zq = malloc(zf * sizeof *zq);
    int rc = -1;
    if (!s.caches || !zin || !zq) {
        snprintf(err, errlen, "wan_vae_decode: out of memory");
        goto done;
    }
    int n_out = wan_vae_out_frames(T);
    size_t big_hw = hw * (size_t)sf * (size_t)sf;
    for (int i = 0; i < T; i++) {
        s.chunk = i;
        /* De-normalise as WanPipeline does: divide by the float32 reciprocal
         * of std rather than multiply by std, so the rounding matches. */
        for (int ch = 0; ch < c->z_dim; ch++) {
            float inv = 1.0f / c->latents_std[ch], mean = c->latents_mean[ch];
            const float *src = latents + ((size_t)ch * (size_t)T + (size_t)i) * hw;
            float *dst = zin + (size_t)ch * hw;
            for (size_t p = 0; p < hw; p++)
                dst[p] = src[p] / inv + mean;
        }
        if (conv_run(&s, &v->post_quant, zin, 1, h, w, zq))
            goto done;
        int t, H, W;
        float *out = decode_chunk(v, &s, zq, h, w, &t, &H, &W);
        if (!out)
            goto done;
        int f0 = i == 0 ? 0 : 1 + 4 * (i - 1);
        if ((size_t)H * (size_t)W != big_hw || f0 + t > n_out || t != (i == 0 ? 1 : 4)) {
            snprintf(err, errlen, "wan_vae_decode: chunk %d came out as %d frames of %dx%d", i, t,
                     H, W);
            free(out);
            goto done;
        }
        kn_conv_clamp(out, (size_t)t * 3 * big_hw, -1.0f, 1.0f);
        for (int f = 0; f < t; f++)
            for (int ch = 0; ch < 3; ch++)
                memcpy(rgb + ((size_t)ch * (size_t)n_out + (size_t)(f0 + f)) * big_hw,
                       out + ((size_t)f * 3 + (size_t)ch) * big_hw, big_hw * sizeof *rgb);
        free(out);
    }
    rc = 0;
done:
    if (s.caches)
        for (int i = 0; i < s.ncaches; i++)
            free(s.caches[i].buf);
    free(s.caches);
    free(s.scratch);
    free(zin);
    free(zq);
    return rc;
}
