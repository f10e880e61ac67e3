/* wan_tf_load — Wan transformer config, tensor list and shard loading.
 *
 * One table (wt_list) says which tensors a config implies, with their
 * diffusers state-dict names and shapes; the loader and
 * wan_tf_expected_tensors both walk it, so the names the loader asks for
 * and the names a test checks against a published checkpoint cannot drift
 * apart. The loader decides per tensor what this rank reads: all of it, a
 * range of rows (q/k/v, the feed-forward's and the text MLP's first layer:
 * this rank's heads or hidden units) or a range of columns (the
 * projections back to the model width), and reads only that range from
 * the file.
 */
#include "wan_tf_internal.h"

#include "nn.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- config ---------- */

static int cfg_int(json_t *root, const char *path, const char *key, int dflt, int *out,
                   char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1 << 24)) {
        snprintf(err, errlen, "%s: '%s' must be a positive integer", path, key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* A key whose only supported value is null (or absent). */
static int cfg_null_only(json_t *root, const char *path, const char *key, const char *why,
                         char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (v && !json_is_null(v)) {
        snprintf(err, errlen, "%s: '%s' is set, but %s is not supported (only null)", path, key,
                 why);
        return -1;
    }
    return 0;
}

static int cfg_check(const wan_tf_config *c, const char *what, char *err, size_t errlen) {
    for (int i = 0; i < 3; i++)
        if (c->patch[i] <= 0) {
            snprintf(err, errlen, "%s: patch_size entries must be positive", what);
            return -1;
        }
    if (c->num_heads <= 0 || c->head_dim <= 0 || c->in_channels <= 0 || c->out_channels <= 0 ||
        c->text_dim <= 0 || c->freq_dim <= 0 || c->ffn_dim <= 0 || c->num_layers <= 0 ||
        c->rope_max_seq_len <= 0) {
        snprintf(err, errlen, "%s: sizes must be positive", what);
        return -1;
    }
    if (c->head_dim % 2) {
        snprintf(err, errlen,
                 "%s: attention_head_dim %d is odd; the rotary embedding turns channel pairs",
                 what, c->head_dim);
        return -1;
    }
    if ((int64_t)c->num_heads * c->head_dim > (1 << 20)) {
        snprintf(err, errlen, "%s: num_attention_heads * attention_head_dim is too large", what);
        return -1;
    }
    if (!(c->eps > 0.0f)) {
        snprintf(err, errlen, "%s: 'eps' must be positive", what);
        return -1;
    }
    return 0;
}

int wan_tf_config_load(const char *path, wan_tf_config *out, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "%s: not valid JSON: %s (line %d)", path, je.text, je.line);
        return -1;
    }
    int rc = -1;
    wan_tf_config c;
    memset(&c, 0, sizeof c);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: not a JSON object", path);
        goto done;
    }
    json_t *cls = json_object_get(root, "_class_name");
    if (cls && (!json_is_string(cls) || strcmp(json_string_value(cls), "WanTransformer3DModel"))) {
        snprintf(err, errlen, "%s: '_class_name' is %s, not WanTransformer3DModel", path,
                 json_is_string(cls) ? json_string_value(cls) : "not a string");
        goto done;
    }
    /* Absent keys take diffusers' defaults, as from_config would. */
    json_t *ps = json_object_get(root, "patch_size");
    c.patch[0] = 1, c.patch[1] = 2, c.patch[2] = 2;
    if (ps) {
        if (!json_is_array(ps) || json_array_size(ps) != 3) {
            snprintf(err, errlen, "%s: 'patch_size' must be a list of 3 positive integers", path);
            goto done;
        }
        for (int i = 0; i < 3; i++) {
            json_t *e = json_array_get(ps, (size_t)i);
            if (!json_is_integer(e) || json_integer_value(e) <= 0 || json_integer_value(e) > 64) {
                snprintf(err, errlen, "%s: 'patch_size' must be a list of 3 positive integers",
                         path);
                goto done;
            }
            c.patch[i] = (int)json_integer_value(e);
        }
    }
    if (cfg_int(root, path, "num_attention_heads", 40, &c.num_heads, err, errlen) ||
        cfg_int(root, path, "attention_head_dim", 128, &c.head_dim, err, errlen) ||
        cfg_int(root, path, "in_channels", 16, &c.in_channels, err, errlen) ||
        cfg_int(root, path, "text_dim", 4096, &c.text_dim, err, errlen) ||
        cfg_int(root, path, "freq_dim", 256, &c.freq_dim, err, errlen) ||
        cfg_int(root, path, "ffn_dim", 13824, &c.ffn_dim, err, errlen) ||
        cfg_int(root, path, "num_layers", 40, &c.num_layers, err, errlen) ||
        cfg_int(root, path, "rope_max_seq_len", 1024, &c.rope_max_seq_len, err, errlen))
        goto done;
    json_t *oc = json_object_get(root, "out_channels");
    if (oc && json_is_null(oc))
        c.out_channels = c.in_channels; /* the reference's `out_channels or in_channels` */
    else if (cfg_int(root, path, "out_channels", 16, &c.out_channels, err, errlen))
        goto done;
    json_t *eps = json_object_get(root, "eps");
    c.eps = 1e-6f;
    if (eps) {
        if (!json_is_number(eps)) {
            snprintf(err, errlen, "%s: 'eps' must be a number", path);
            goto done;
        }
        c.eps = (float)json_number_value(eps);
    }
    json_t *can = json_object_get(root, "cross_attn_norm");
    c.cross_attn_norm = 1;
    if (can) {
        if (!json_is_boolean(can)) {
            snprintf(err, errlen, "%s: 'cross_attn_norm' must be true or false", path);
            goto done;
        }
        c.cross_attn_norm = json_is_true(can);
    }
    json_t *qk = json_object_get(root, "qk_norm");
    if (qk && !(json_is_string(qk) && !strcmp(json_string_value(qk), "rms_norm_across_heads"))) {
        snprintf(err, errlen,
                 "%s: 'qk_norm' is %s; only \"rms_norm_across_heads\" is supported", path,
                 json_is_string(qk) ? json_string_value(qk) : "not that string");
        goto done;
    }
    if (cfg_null_only(root, path, "image_dim", "image conditioning (image-to-video)", err,
                      errlen) ||
        cfg_null_only(root, path, "added_kv_proj_dim", "image key/value projection (image-to-video)",
                      err, errlen))
        goto done;
    if (cfg_check(&c, path, err, errlen))
        goto done;
    *out = c;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ---------- the tensor table ---------- */

typedef enum {
    WP_PATCH_W, WP_PATCH_B, WP_TE1_W, WP_TE1_B, WP_TE2_W, WP_TE2_B, WP_TP_W, WP_TP_B,
    WP_TX1_W, WP_TX1_B, WP_TX2_W, WP_TX2_B, WP_OUT_W, WP_OUT_B, WP_OUT_SST,
    WP_SST,
    WP_Q1_W, WP_Q1_B, WP_K1_W, WP_K1_B, WP_V1_W, WP_V1_B, WP_O1_W, WP_O1_B, WP_NQ1, WP_NK1,
    WP_Q2_W, WP_Q2_B, WP_K2_W, WP_K2_B, WP_V2_W, WP_V2_B, WP_O2_W, WP_O2_B, WP_NQ2, WP_NK2,
    WP_N2_W, WP_N2_B, WP_FF1_W, WP_FF1_B, WP_FF2_W, WP_FF2_B
} wt_param;

typedef struct {
    wan_tf_tensor t;
    wt_param p;
    int layer; /* -1 outside the blocks */
} wt_entry;

typedef struct {
    wt_entry *e;
    size_t n, cap;
} wt_table;

static int wt_add(wt_table *tb, wt_param p, int layer, const char *name, int ndim, int64_t d0,
                  int64_t d1, int64_t d2, int64_t d3, int64_t d4) {
    if (tb->n == tb->cap) {
        size_t cap = tb->cap ? tb->cap * 2 : 64;
        wt_entry *e = realloc(tb->e, cap * sizeof *e);
        if (!e)
            return -1;
        tb->e = e, tb->cap = cap;
    }
    wt_entry *e = &tb->e[tb->n++];
    memset(e, 0, sizeof *e);
    if (layer >= 0)
        snprintf(e->t.name, sizeof e->t.name, "blocks.%d.%s", layer, name);
    else
        snprintf(e->t.name, sizeof e->t.name, "%s", name);
    int64_t d[5] = {d0, d1, d2, d3, d4};
    e->t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->t.shape[i] = d[i];
    e->p = p;
    e->layer = layer;
    return 0;
}

/* In the order of diffusers' state_dict: a module's own parameters before
 * its children's, children in the order the constructor made them. */
static int wt_list(const wan_tf_config *c, wt_table *tb) {
    int64_t dim = (int64_t)c->num_heads * c->head_dim, ffn = c->ffn_dim;
    int64_t pp = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    int rc = 0;
    rc |= wt_add(tb, WP_OUT_SST, -1, "scale_shift_table", 3, 1, 2, dim, 0, 0);
    rc |= wt_add(tb, WP_PATCH_W, -1, "patch_embedding.weight", 5, dim, c->in_channels,
                 c->patch[0], c->patch[1], c->patch[2]);
    rc |= wt_add(tb, WP_PATCH_B, -1, "patch_embedding.bias", 1, dim, 0, 0, 0, 0);
    rc |= wt_add(tb, WP_TE1_W, -1, "condition_embedder.time_embedder.linear_1.weight", 2, dim,
                 c->freq_dim, 0, 0, 0);
    rc |= wt_add(tb, WP_TE1_B, -1, "condition_embedder.time_embedder.linear_1.bias", 1, dim, 0,
                 0, 0, 0);
    rc |= wt_add(tb, WP_TE2_W, -1, "condition_embedder.time_embedder.linear_2.weight", 2, dim,
                 dim, 0, 0, 0);
    rc |= wt_add(tb, WP_TE2_B, -1, "condition_embedder.time_embedder.linear_2.bias", 1, dim, 0,
                 0, 0, 0);
    rc |= wt_add(tb, WP_TP_W, -1, "condition_embedder.time_proj.weight", 2, 6 * dim, dim, 0, 0,
                 0);
    rc |= wt_add(tb, WP_TP_B, -1, "condition_embedder.time_proj.bias", 1, 6 * dim, 0, 0, 0, 0);
    rc |= wt_add(tb, WP_TX1_W, -1, "condition_embedder.text_embedder.linear_1.weight", 2, dim,
                 c->text_dim, 0, 0, 0);
    rc |= wt_add(tb, WP_TX1_B, -1, "condition_embedder.text_embedder.linear_1.bias", 1, dim, 0,
                 0, 0, 0);
    rc |= wt_add(tb, WP_TX2_W, -1, "condition_embedder.text_embedder.linear_2.weight", 2, dim,
                 dim, 0, 0, 0);
    rc |= wt_add(tb, WP_TX2_B, -1, "condition_embedder.text_embedder.linear_2.bias", 1, dim, 0,
                 0, 0, 0);
    static const char *const attn_names[2] = {"attn1", "attn2"};
    for (int l = 0; l < c->num_layers; l++) {
        rc |= wt_add(tb, WP_SST, l, "scale_shift_table", 3, 1, 6, dim, 0, 0);
        for (int a = 0; a < 2; a++) {
            /* per attention: q, k, v, out weight and bias, then the norms */
            static const char *const proj[4] = {"to_q", "to_k", "to_v", "to_out.0"};
            wt_param base = a ? WP_Q2_W : WP_Q1_W;
            char nm[WAN_TF_NAME_MAX];
            for (int i = 0; i < 4; i++) {
                snprintf(nm, sizeof nm, "%s.%s.weight", attn_names[a], proj[i]);
                rc |= wt_add(tb, (wt_param)(base + 2 * i), l, nm, 2, dim, dim, 0, 0, 0);
                snprintf(nm, sizeof nm, "%s.%s.bias", attn_names[a], proj[i]);
                rc |= wt_add(tb, (wt_param)(base + 2 * i + 1), l, nm, 1, dim, 0, 0, 0, 0);
            }
            snprintf(nm, sizeof nm, "%s.norm_q.weight", attn_names[a]);
            rc |= wt_add(tb, (wt_param)(base + 8), l, nm, 1, dim, 0, 0, 0, 0);
            snprintf(nm, sizeof nm, "%s.norm_k.weight", attn_names[a]);
            rc |= wt_add(tb, (wt_param)(base + 9), l, nm, 1, dim, 0, 0, 0, 0);
        }
        if (c->cross_attn_norm) {
            rc |= wt_add(tb, WP_N2_W, l, "norm2.weight", 1, dim, 0, 0, 0, 0);
            rc |= wt_add(tb, WP_N2_B, l, "norm2.bias", 1, dim, 0, 0, 0, 0);
        }
        rc |= wt_add(tb, WP_FF1_W, l, "ffn.net.0.proj.weight", 2, ffn, dim, 0, 0, 0);
        rc |= wt_add(tb, WP_FF1_B, l, "ffn.net.0.proj.bias", 1, ffn, 0, 0, 0, 0);
        rc |= wt_add(tb, WP_FF2_W, l, "ffn.net.2.weight", 2, dim, ffn, 0, 0, 0);
        rc |= wt_add(tb, WP_FF2_B, l, "ffn.net.2.bias", 1, dim, 0, 0, 0, 0);
    }
    rc |= wt_add(tb, WP_OUT_W, -1, "proj_out.weight", 2, c->out_channels * pp, dim, 0, 0, 0);
    rc |= wt_add(tb, WP_OUT_B, -1, "proj_out.bias", 1, c->out_channels * pp, 0, 0, 0, 0);
    return rc ? -1 : 0;
}

int wan_tf_expected_tensors(const wan_tf_config *cfg, wan_tf_tensor **out, size_t *count,
                            char *err, size_t errlen) {
    if (cfg_check(cfg, "wan_tf config", err, errlen))
        return -1;
    wt_table tb = {0};
    if (wt_list(cfg, &tb)) {
        free(tb.e);
        snprintf(err, errlen, "wan_tf: out of memory listing tensors");
        return -1;
    }
    wan_tf_tensor *t = malloc((tb.n ? tb.n : 1) * sizeof *t);
    if (!t) {
        free(tb.e);
        snprintf(err, errlen, "wan_tf: out of memory listing tensors");
        return -1;
    }
    for (size_t i = 0; i < tb.n; i++)
        t[i] = tb.e[i].t;
    *out = t;
    *count = tb.n;
    free(tb.e);
    return 0;
}

/* ---------- loading a shard ---------- */

void wan_tf_share(int total, int rank, int nranks, int *start, int *len) {
    int64_t a = (int64_t)rank * total / nranks, b = (int64_t)(rank + 1) * total / nranks;
    *start = (int)a;
    *len = (int)(b - a);
}

/* A rank's weights are slices of one allocation (kn_tensor_alloc: huge pages,
 * which make sgemm's packing of the weights a few percent faster; one
 * allocation wastes no rounding per tensor). alloc_weights lists where
 * each tensor goes and how large it is, then carves them out. A tensor a
 * rank holds none of (no heads) still gets a valid pointer. */
typedef struct {
    float **dst;
    size_t count;
} wslot;

typedef struct {
    wslot *s;
    size_t n, cap;
    int oom;
} wplan;

static void walloc(wplan *p, float **dst, size_t count) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        wslot *s = realloc(p->s, cap * sizeof *s);
        if (!s) {
            p->oom = 1;
            return;
        }
        p->s = s, p->cap = cap;
    }
    p->s[p->n++] = (wslot){dst, count};
}

/* floats a slice takes in the arena: whole 64-byte lines, so that every
 * tensor starts on one */
static size_t wround(size_t count) {
    return (count + 15) / 16 * 16;
}

static void shape_str(const int64_t *s, int ndim, char *buf, size_t len) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* What this rank reads of a tensor and where it goes: split_dim -1 for
 * all of it, else [start, start+len) along split_dim. */
typedef struct {
    float *dst;
    int split_dim;
    int64_t start, len;
} wt_target;

static wt_target wt_target_of(wan_tf *m, const wt_entry *e) {
    int64_t dim = m->dim, dl = m->dl;
    int64_t hs = (int64_t)m->h0 * m->cfg.head_dim;
    wt_target t = {NULL, -1, 0, 0};
    wan_tf_block *b = e->layer >= 0 ? &m->blocks[e->layer] : NULL;
    /* heads of this rank: rows of q/k/v, entries of the q/k norm weights */
    wt_target rows = {NULL, 0, hs, dl}, cols = {NULL, 1, hs, dl};
    switch (e->p) {
    case WP_PATCH_W: t.dst = m->patch_w; break;
    case WP_PATCH_B: t.dst = m->patch_b; break;
    case WP_TE1_W: t.dst = m->te1_w; break;
    case WP_TE1_B: t.dst = m->te1_b; break;
    case WP_TE2_W: t.dst = m->te2_w; break;
    case WP_TE2_B: t.dst = m->te2_b; break;
    case WP_TP_W: t.dst = m->tp_w; break;
    case WP_TP_B: t.dst = m->tp_b; break;
    case WP_TX1_W: t = (wt_target){m->tx1_w, 0, m->t0, m->tl}; break;
    case WP_TX1_B: t = (wt_target){m->tx1_b, 0, m->t0, m->tl}; break;
    case WP_TX2_W: t = (wt_target){m->tx2_w, 1, m->t0, m->tl}; break;
    case WP_TX2_B: t.dst = m->tx2_b; break;
    case WP_OUT_W: t.dst = m->out_w; break;
    case WP_OUT_B: t.dst = m->out_b; break;
    case WP_OUT_SST: t.dst = m->out_sst; break;
    case WP_SST: t.dst = b->sst; break;
    case WP_Q1_W: t = rows, t.dst = b->qkv_w; break;
    case WP_K1_W: t = rows, t.dst = b->qkv_w + dl * dim; break;
    case WP_V1_W: t = rows, t.dst = b->qkv_w + 2 * dl * dim; break;
    case WP_Q1_B: t = rows, t.dst = b->qkv_b; break;
    case WP_K1_B: t = rows, t.dst = b->qkv_b + dl; break;
    case WP_V1_B: t = rows, t.dst = b->qkv_b + 2 * dl; break;
    case WP_NQ1: t = rows, t.dst = b->nq1; break;
    case WP_NK1: t = rows, t.dst = b->nk1; break;
    case WP_O1_W: t = cols, t.dst = b->o1_w; break;
    case WP_O1_B: t.dst = b->o1_b; break;
    case WP_Q2_W: t = rows, t.dst = b->q2_w; break;
    case WP_Q2_B: t = rows, t.dst = b->q2_b; break;
    case WP_K2_W: t = rows, t.dst = b->kv2_w; break;
    case WP_V2_W: t = rows, t.dst = b->kv2_w + dl * dim; break;
    case WP_K2_B: t = rows, t.dst = b->kv2_b; break;
    case WP_V2_B: t = rows, t.dst = b->kv2_b + dl; break;
    case WP_NQ2: t = rows, t.dst = b->nq2; break;
    case WP_NK2: t = rows, t.dst = b->nk2; break;
    case WP_O2_W: t = cols, t.dst = b->o2_w; break;
    case WP_O2_B: t.dst = b->o2_b; break;
    case WP_N2_W: t.dst = b->n2_w; break;
    case WP_N2_B: t.dst = b->n2_b; break;
    case WP_FF1_W: t = (wt_target){b->ff1_w, 0, m->f0, m->fl}; break;
    case WP_FF1_B: t = (wt_target){b->ff1_b, 0, m->f0, m->fl}; break;
    case WP_FF2_W: t = (wt_target){b->ff2_w, 1, m->f0, m->fl}; break;
    case WP_FF2_B: t.dst = b->ff2_b; break;
    }
    return t;
}

static int wt_load(wan_tf *m, st_set *set, const wt_entry *e, char *err, size_t errlen) {
    const wan_tf_tensor *want = &e->t;
    char ws[96], hs[96];
    shape_str(want->shape, want->ndim, ws, sizeof ws);
    const st_tensor *have = st_find(set, want->name);
    if (!have) {
        snprintf(err, errlen, "wan_tf: tensor '%s' %s is missing from the weights", want->name,
                 ws);
        return -1;
    }
    int same = have->ndim == want->ndim;
    for (int i = 0; same && i < want->ndim; i++)
        same = have->shape[i] == want->shape[i];
    if (!same) {
        shape_str(have->shape, have->ndim, hs, sizeof hs);
        snprintf(err, errlen,
                 "wan_tf: tensor '%s' in %s has shape %s, but the config "
                 "(num_attention_heads=%d attention_head_dim=%d ffn_dim=%d) implies %s",
                 want->name, have->file ? have->file : "the weights", hs, m->cfg.num_heads,
                 m->cfg.head_dim, m->cfg.ffn_dim, ws);
        return -1;
    }
    wt_target t = wt_target_of(m, e);
    char serr[512];
    int rc;
    if (t.split_dim < 0)
        rc = st_load(set, want->name, want->ndim, want->shape, t.dst, serr, sizeof serr);
    else if (t.len == 0)
        return 0; /* this rank holds none of it */
    else
        rc = st_load_slice(set, want->name, want->ndim, want->shape, t.split_dim, t.start, t.len,
                           t.dst, serr, sizeof serr);
    if (rc) {
        snprintf(err, errlen, "wan_tf: loading '%s': %s", want->name, serr);
        return -1;
    }
    return 0;
}

static int alloc_weights(wan_tf *m) {
    const wan_tf_config *c = &m->cfg;
    wplan p = {0};
    size_t dim = (size_t)m->dim, dl = (size_t)m->dl, fl = (size_t)m->fl, tl = (size_t)m->tl;
    size_t pp = (size_t)c->patch[0] * c->patch[1] * c->patch[2];
    walloc(&p, &m->patch_w, dim * c->in_channels * pp);
    walloc(&p, &m->patch_b, dim);
    walloc(&p, &m->te1_w, dim * c->freq_dim);
    walloc(&p, &m->te1_b, dim);
    walloc(&p, &m->te2_w, dim * dim);
    walloc(&p, &m->te2_b, dim);
    walloc(&p, &m->tp_w, 6 * dim * dim);
    walloc(&p, &m->tp_b, 6 * dim);
    walloc(&p, &m->tx1_w, tl * c->text_dim);
    walloc(&p, &m->tx1_b, tl);
    walloc(&p, &m->tx2_w, dim * tl);
    walloc(&p, &m->tx2_b, dim);
    walloc(&p, &m->out_w, c->out_channels * pp * dim);
    walloc(&p, &m->out_b, c->out_channels * pp);
    walloc(&p, &m->out_sst, 2 * dim);
    m->blocks = calloc((size_t)c->num_layers, sizeof *m->blocks);
    if (!m->blocks) {
        free(p.s);
        return -1;
    }
    for (int l = 0; l < c->num_layers; l++) {
        wan_tf_block *b = &m->blocks[l];
        walloc(&p, &b->sst, 6 * dim);
        walloc(&p, &b->qkv_w, 3 * dl * dim);
        walloc(&p, &b->qkv_b, 3 * dl);
        walloc(&p, &b->nq1, dl);
        walloc(&p, &b->nk1, dl);
        walloc(&p, &b->o1_w, dim * dl);
        walloc(&p, &b->o1_b, dim);
        walloc(&p, &b->q2_w, dl * dim);
        walloc(&p, &b->q2_b, dl);
        walloc(&p, &b->kv2_w, 2 * dl * dim);
        walloc(&p, &b->kv2_b, 2 * dl);
        walloc(&p, &b->nq2, dl);
        walloc(&p, &b->nk2, dl);
        walloc(&p, &b->o2_w, dim * dl);
        walloc(&p, &b->o2_b, dim);
        if (c->cross_attn_norm) {
            walloc(&p, &b->n2_w, dim);
            walloc(&p, &b->n2_b, dim);
        }
        walloc(&p, &b->ff1_w, fl * dim);
        walloc(&p, &b->ff1_b, fl);
        walloc(&p, &b->ff2_w, dim * fl);
        walloc(&p, &b->ff2_b, dim);
    }
    size_t total = 0;
    for (size_t i = 0; i < p.n; i++)
        total += wround(p.s[i].count);
    m->arena = p.oom ? NULL : kn_tensor_alloc(total);
    if (!m->arena) {
        for (size_t i = 0; i < p.n; i++)
            m->bytes += (uint64_t)p.s[i].count * sizeof(float); /* for the message */
        free(p.s);
        return -1;
    }
    size_t off = 0;
    for (size_t i = 0; i < p.n; i++) {
        *p.s[i].dst = m->arena + off;
        off += wround(p.s[i].count);
        m->bytes += (uint64_t)p.s[i].count * sizeof(float);
    }
    free(p.s);
    m->tfreq = calloc((size_t)c->freq_dim, sizeof(float));
    m->temb = calloc(dim, sizeof(float));
    m->tmp = calloc(dim, sizeof(float));
    m->tproj = calloc(6 * dim, sizeof(float));
    m->mod = calloc(6 * dim, sizeof(float));
    m->scale1 = calloc(dim, sizeof(float));
    if (!m->tfreq || !m->temb || !m->tmp || !m->tproj || !m->mod || !m->scale1)
        return -1;
    return 0;
}

int wan_tf_new(const wan_tf_config *cfg, st_set *weights, coll *c, wan_tf **out, char *err,
               size_t errlen) {
    *out = NULL;
    if (cfg_check(cfg, "wan_tf config", err, errlen))
        return -1;
    if (!weights) {
        snprintf(err, errlen, "wan_tf: no weights given");
        return -1;
    }
    wan_tf *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "wan_tf: out of memory");
        return -1;
    }
    m->cfg = *cfg;
    m->c = c;
    m->rank = c ? coll_rank(c) : 0;
    m->nranks = c ? coll_size(c) : 1;
    m->dim = cfg->num_heads * cfg->head_dim;
    int hl;
    wan_tf_share(cfg->num_heads, m->rank, m->nranks, &m->h0, &hl);
    m->dl = hl * cfg->head_dim;
    wan_tf_share(cfg->ffn_dim, m->rank, m->nranks, &m->f0, &m->fl);
    wan_tf_share(m->dim, m->rank, m->nranks, &m->t0, &m->tl);
    m->text_cache_on = 1;
    if (alloc_weights(m)) {
        snprintf(err, errlen, "wan_tf: out of memory for the weights of rank %d (%llu bytes)",
                 m->rank, (unsigned long long)m->bytes);
        wan_tf_free(m);
        return -1;
    }
    wt_table tb = {0};
    if (wt_list(cfg, &tb)) {
        free(tb.e);
        snprintf(err, errlen, "wan_tf: out of memory listing tensors");
        wan_tf_free(m);
        return -1;
    }
    for (size_t i = 0; i < tb.n; i++)
        if (wt_load(m, weights, &tb.e[i], err, errlen)) {
            free(tb.e);
            wan_tf_free(m);
            return -1;
        }
    free(tb.e);
    *out = m;
    return 0;
}

uint64_t wan_tf_weight_bytes(const wan_tf *m) {
    return m ? m->bytes : 0;
}

void wan_tf_free(wan_tf *m) {
    if (!m)
        return;
    kn_tensor_free(m->arena);
    free(m->blocks);
    float *p[] = {m->tfreq, m->temb, m->tmp, m->tproj, m->mod, m->scale1};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
    wan_tf_acts_free(&m->a);
    wan_tf_text_free(m);
    free(m);
}
