/* The Wan transformer against diffusers and against itself split over
 * ranks.
 *
 * - tf_a, tf_b (golden fixtures from diffusers' WanTransformer3DModel):
 *   the output is within 1e-4 relative L2 of the reference;
 * - the same models and two made-up ones (more ranks than heads, no
 *   cross-attention norm) on R = 1..4 thread ranks: every R agrees with
 *   R = 1 to 1e-5, all ranks of a run hold the same output, and each rank
 *   holds and reads from the file exactly its share of the weights, the
 *   share computed here from the config alone;
 * - the text cache: with it, outputs equal those without it bit for bit,
 *   over prompts that alternate, evict each other and change in place,
 *   and when one rank lacks a text the others have;
 * - config files with unsupported values and weights files with a wrong or
 *   missing tensor fail with a message naming the key or tensor;
 * - the tensors the loader expects for the published Wan2.1-T2V-1.3B config
 *   are exactly the published checkpoint's (fixture list of names, shapes).
 *
 * argv[1]: the fixture directory (default tests/dit/fixtures).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "coll.h"
#include "dit_test.h"
#include "st.h"
#include "wan_tf.h"

#define MAX_RANKS 4

static const char *fixdir = "tests/dit/fixtures";
static char tmpdir[256];

/* ---------- helpers ---------- */

static uint64_t rng_state;

static float frand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static size_t numel(const int64_t *shape, int ndim) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return n;
}

/* A float32 safetensors file with every tensor a config implies, random
 * values; `skip` names a tensor to leave out, `bad` one to store one row
 * too long. */
static void write_model(const char *path, const wan_tf_config *cfg, uint64_t seed,
                        const char *skip, const char *bad) {
    wan_tf_tensor *t;
    size_t n;
    char err[256];
    assert_int_equal(wan_tf_expected_tensors(cfg, &t, &n, err, sizeof err), 0);
    size_t hcap = 256 + n * 160, hlen = 0, off = 0;
    char *hdr = malloc(hcap);
    hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "{");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (skip && !strcmp(t[i].name, skip))
            continue;
        if (bad && !strcmp(t[i].name, bad))
            t[i].shape[0] += 1;
        size_t bytes = numel(t[i].shape, t[i].ndim) * 4;
        hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                                 first ? "" : ",", t[i].name);
        for (int d = 0; d < t[i].ndim; d++)
            hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "%s%lld", d ? "," : "",
                                     (long long)t[i].shape[d]);
        hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "],\"data_offsets\":[%zu,%zu]}", off,
                                 off + bytes);
        off += bytes;
        first = 0;
    }
    hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "}");
    while (hlen % 8)
        hdr[hlen++] = ' ';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = hlen;
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(hl >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(hdr, 1, hlen, f);
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        if (skip && !strcmp(t[i].name, skip))
            continue;
        size_t cnt = numel(t[i].shape, t[i].ndim);
        /* weights of order 1/sqrt(fan_in), so activations stay of order one */
        float gain = t[i].ndim >= 2 ? 1.0f / sqrtf((float)(cnt / (size_t)t[i].shape[0])) : 0.3f;
        if (t[i].ndim == 3)
            gain = 0.3f; /* modulation tables */
        int is_norm = strstr(t[i].name, "norm") != NULL && strstr(t[i].name, ".weight") != NULL;
        for (size_t j = 0; j < cnt; j++) {
            float v = is_norm ? 1.0f + 0.2f * frand() : gain * frand();
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
    free(hdr);
    free(t);
}

/* Whole tensor `name` of an open set, as floats (caller frees). */
static float *load_all(st_set *set, const char *name, const st_tensor **info) {
    const st_tensor *t = st_find(set, name);
    if (!t)
        fail_msg("fixture tensor %s missing", name);
    float *buf = malloc(numel(t->shape, t->ndim) * sizeof(float));
    char err[256];
    if (st_load(set, name, t->ndim, t->shape, buf, err, sizeof err))
        fail_msg("%s", err);
    if (info)
        *info = t;
    return buf;
}

/* ---------- one forward on R thread ranks ---------- */

typedef struct {
    wan_tf_config cfg;
    const char *weights;
    const float *x, *ctx;
    int F, H, W, L;
    float t;
    size_t out_count;
    float *outs[MAX_RANKS];
    uint64_t wbytes[MAX_RANKS], stbytes[MAX_RANKS];
    char err[MAX_RANKS][512];
} tp_run;

static int rank_main(coll *c, void *arg) {
    tp_run *run = arg;
    int r = coll_rank(c);
    st_set *set = NULL;
    wan_tf *m = NULL;
    if (st_open(run->weights, &set, run->err[r], sizeof run->err[r]))
        return -1;
    int rc = wan_tf_new(&run->cfg, set, c, &m, run->err[r], sizeof run->err[r]);
    run->stbytes[r] = st_bytes_loaded(set);
    st_free(set); /* the model owns copies */
    if (rc)
        return -1;
    run->wbytes[r] = wan_tf_weight_bytes(m);
    run->outs[r] = malloc(run->out_count * sizeof(float));
    rc = wan_tf_forward(m, run->x, run->F, run->H, run->W, run->t, run->ctx, run->L, run->outs[r],
                        run->err[r], sizeof run->err[r]);
    /* a second call with the same shape reuses the buffers and must agree */
    if (rc == 0) {
        float *again = malloc(run->out_count * sizeof(float));
        rc = wan_tf_forward(m, run->x, run->F, run->H, run->W, run->t, run->ctx, run->L, again,
                            run->err[r], sizeof run->err[r]);
        if (rc == 0 && memcmp(again, run->outs[r], run->out_count * sizeof(float))) {
            snprintf(run->err[r], sizeof run->err[r], "rank %d: second forward differs", r);
            rc = -1;
        }
        free(again);
    }
    wan_tf_free(m);
    return rc;
}

static void run_ranks(tp_run *run, int R) {
    memset(run->outs, 0, sizeof run->outs);
    memset(run->err, 0, sizeof run->err);
    char err[256] = "";
    int rc = coll_run(R, rank_main, run, err, sizeof err);
    if (rc) {
        for (int r = 0; r < R; r++)
            if (run->err[r][0])
                print_error("rank %d: %s\n", r, run->err[r]);
        fail_msg("coll_run with %d ranks failed: %s", R, err);
    }
}

static void free_outs(tp_run *run) {
    for (int r = 0; r < MAX_RANKS; r++) {
        free(run->outs[r]);
        run->outs[r] = NULL;
    }
}

/* Weights a rank must hold, in floats, from the config alone: the
 * replicated parts whole, its heads' rows of q/k/v and columns of the
 * output projections, its share of the feed-forward units and of the text
 * MLP's hidden units (rows of the first layer, columns of the second). */
static uint64_t expected_floats(const wan_tf_config *c, int r, int R) {
    uint64_t dim = (uint64_t)c->num_heads * c->head_dim;
    uint64_t pp = (uint64_t)c->patch[0] * c->patch[1] * c->patch[2];
    uint64_t heads = (uint64_t)((int64_t)(r + 1) * c->num_heads / R - (int64_t)r * c->num_heads / R);
    uint64_t dl = heads * (uint64_t)c->head_dim;
    uint64_t fl = (uint64_t)((int64_t)(r + 1) * c->ffn_dim / R - (int64_t)r * c->ffn_dim / R);
    uint64_t tl = (uint64_t)((int64_t)(r + 1) * (int64_t)dim / R - (int64_t)r * (int64_t)dim / R);
    uint64_t whole = dim * c->in_channels * pp + dim         /* patch embedding */
                     + dim * c->freq_dim + dim + dim * dim + dim /* time MLP */
                     + 6 * dim * dim + 6 * dim                 /* time_proj */
                     + tl * c->text_dim + tl + dim * tl + dim /* text MLP */
                     + c->out_channels * pp * dim + c->out_channels * pp /* proj_out */
                     + 2 * dim;                                /* head modulation */
    uint64_t per_layer = 6 * dim                          /* modulation table */
                         + (c->cross_attn_norm ? 2 * dim : 0) /* norm2 */
                         + 3 * dim                        /* to_out biases, ffn.net.2 bias */
                         + 2 * (3 * (dl * dim + dl) + 2 * dl + dim * dl) /* two attentions */
                         + fl * dim + fl + dim * fl;      /* feed-forward */
    return whole + (uint64_t)c->num_layers * per_layer;
}

/* R = 1..4 against R = 1: agreement, identical ranks, exact shares. */
static void check_tp(tp_run *run, const float *ref_r1) {
    for (int R = 2; R <= MAX_RANKS; R++) {
        run_ranks(run, R);
        uint64_t total = 0;
        for (int r = 0; r < R; r++) {
            uint64_t want = expected_floats(&run->cfg, r, R) * 4;
            assert_int_equal(run->wbytes[r], want);
            assert_int_equal(run->stbytes[r], want); /* float32 file: stored = held */
            assert_memory_equal(run->outs[r], run->outs[0], run->out_count * sizeof(float));
            total += run->wbytes[r];
        }
        double e = dit_rel_l2(run->outs[0], ref_r1, run->out_count);
        printf("  R=%d vs R=1: rel L2 %.3g; bytes per rank", R, e);
        for (int r = 0; r < R; r++)
            printf(" %llu", (unsigned long long)run->wbytes[r]);
        printf(" (sum %llu)\n", (unsigned long long)total);
        assert_true(e < 1e-5);
        free_outs(run);
    }
}

/* ---------- golden fixtures ---------- */

static void golden(const char *name) {
    char cpath[512], wpath[512], iopath[512], err[512];
    snprintf(cpath, sizeof cpath, "%s/%s.config.json", fixdir, name);
    snprintf(wpath, sizeof wpath, "%s/%s.safetensors", fixdir, name);
    snprintf(iopath, sizeof iopath, "%s/%s.io.safetensors", fixdir, name);
    if (access(cpath, R_OK) || access(wpath, R_OK) || access(iopath, R_OK))
        fail_msg("fixture %s missing in %s (tests/dit/golden/make_golden.py writes it)", name,
                 fixdir);
    tp_run run;
    memset(&run, 0, sizeof run);
    if (wan_tf_config_load(cpath, &run.cfg, err, sizeof err))
        fail_msg("%s", err);
    st_set *io;
    if (st_open(iopath, &io, err, sizeof err))
        fail_msg("%s", err);
    const st_tensor *hs, *enc, *ot;
    float *x = load_all(io, "hidden_states", &hs);
    float *ctx = load_all(io, "encoder_hidden_states", &enc);
    float *ts = load_all(io, "timestep", NULL);
    float *want = load_all(io, "output", &ot);
    assert_int_equal(hs->ndim, 5);
    assert_int_equal(ot->ndim, 5);
    run.weights = wpath;
    run.x = x;
    run.ctx = ctx;
    run.F = (int)hs->shape[2], run.H = (int)hs->shape[3], run.W = (int)hs->shape[4];
    run.L = (int)enc->shape[1];
    run.t = ts[0];
    run.out_count = numel(ot->shape, ot->ndim);
    assert_int_equal(ot->shape[1], run.cfg.out_channels);

    run_ranks(&run, 1);
    double e = dit_rel_l2(run.outs[0], want, run.out_count);
    printf("  %s: heads=%d head_dim=%d layers=%d video %dx%dx%d text %d: rel L2 vs diffusers %.3g\n",
           name, run.cfg.num_heads, run.cfg.head_dim, run.cfg.num_layers, run.F, run.H, run.W,
           run.L, e);
    assert_true(e < 1e-4);
    assert_int_equal(run.wbytes[0], expected_floats(&run.cfg, 0, 1) * 4);
    assert_int_equal(run.stbytes[0], run.wbytes[0]);
    float *ref = run.outs[0];
    run.outs[0] = NULL;
    check_tp(&run, ref);
    free(ref);
    free(x), free(ctx), free(ts), free(want);
    st_free(io);
}

static void test_tf_a_matches_diffusers(void **state) {
    (void)state;
    golden("tf_a");
}

static void test_tf_b_matches_diffusers(void **state) {
    (void)state;
    golden("tf_b");
}

/* ---------- made-up models: uneven and empty shards ---------- */

static void synthetic(const wan_tf_config *cfg, int F, int H, int W, int L, uint64_t seed) {
    char wpath[512];
    snprintf(wpath, sizeof wpath, "%s/synthetic.safetensors", tmpdir);
    write_model(wpath, cfg, seed, NULL, NULL);
    tp_run run;
    memset(&run, 0, sizeof run);
    run.cfg = *cfg;
    run.weights = wpath;
    size_t nx = (size_t)cfg->in_channels * F * H * W, nc = (size_t)L * cfg->text_dim;
    float *x = malloc(nx * sizeof(float)), *ctx = malloc(nc * sizeof(float));
    rng_state = seed + 1;
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    for (size_t i = 0; i < nc; i++)
        ctx[i] = frand();
    run.x = x, run.ctx = ctx, run.F = F, run.H = H, run.W = W, run.L = L, run.t = 999.0f;
    run.out_count = (size_t)cfg->out_channels * F * H * W;
    run_ranks(&run, 1);
    float *ref = run.outs[0];
    run.outs[0] = NULL;
    double rms = 0.0;
    for (size_t i = 0; i < run.out_count; i++)
        rms += (double)ref[i] * ref[i];
    rms = sqrt(rms / (double)run.out_count);
    assert_true(rms > 1e-3 && rms < 1e3 && isfinite(rms)); /* a signal, not zeros or overflow */
    check_tp(&run, ref);
    free(ref), free(x), free(ctx);
    unlink(wpath);
}

static wan_tf_config small_config(void) {
    wan_tf_config c = {
        .patch = {1, 2, 2}, .num_heads = 3, .head_dim = 8, .in_channels = 4, .out_channels = 6,
        .text_dim = 12, .freq_dim = 16, .ffn_dim = 10, .num_layers = 2, .eps = 1e-6f,
        .cross_attn_norm = 1, .rope_max_seq_len = 64,
    };
    return c;
}

static void test_more_ranks_than_heads(void **state) {
    (void)state;
    /* 3 heads on 4 ranks: one rank holds no head and still takes part */
    wan_tf_config c = small_config();
    synthetic(&c, 3, 4, 6, 5, 11);
}

static void test_no_cross_attn_norm_and_temporal_patch(void **state) {
    (void)state;
    wan_tf_config c = small_config();
    c.cross_attn_norm = 0;
    c.patch[0] = 2, c.patch[1] = 1, c.patch[2] = 2;
    c.num_heads = 5, c.ffn_dim = 7, c.num_layers = 1;
    synthetic(&c, 4, 3, 4, 3, 12);
}

/* ---------- the text cache ---------- */

/* Forwards with three prompts through a model with the text cache and one
 * without; one prompt's buffer is refilled in place with another text. */
enum { CACHE_CALLS = 9 };
static const int cache_prompt[CACHE_CALLS] = {0, 1, 0, 1, 2, 1, 0, 1, 0};
/* hits: calls 3, 4 and 6 and 9; call 5 evicts prompt 0 (least recent),
 * call 7 evicts prompt 2, call 8 finds prompt 1 changed in place */
static const int cache_hit[CACHE_CALLS] = {0, 0, 1, 1, 0, 1, 0, 0, 1};

typedef struct {
    wan_tf_config cfg;
    const char *weights;
    const float *x;
    float *ctx[3];
    int F, H, W, L;
    int forget_rank; /* this rank empties its cache before call 6, or -1 */
    size_t out_count;
    uint64_t hits[MAX_RANKS];
    char err[MAX_RANKS][512];
} cache_run;

static int cache_rank_main(coll *c, void *arg) {
    cache_run *run = arg;
    int r = coll_rank(c), rc = -1;
    char *err = run->err[r];
    size_t errlen = sizeof run->err[r];
    st_set *set = NULL;
    wan_tf *on = NULL, *off = NULL;
    float *a = malloc(run->out_count * sizeof(float)), *b = malloc(run->out_count * sizeof(float));
    if (!a || !b || st_open(run->weights, &set, err, errlen) ||
        wan_tf_new(&run->cfg, set, c, &on, err, errlen) ||
        wan_tf_new(&run->cfg, set, c, &off, err, errlen))
        goto done;
    wan_tf_set_text_cache(off, 0);
    for (int i = 0; i < CACHE_CALLS; i++) {
        if (i == 5 && r == run->forget_rank) { /* before call 6, a hit elsewhere */
            wan_tf_set_text_cache(on, 0);
            wan_tf_set_text_cache(on, 1);
        }
        if (i == 7) {
            /* before call 8 the caller reuses prompt 1's buffer for another
             * text: no rank still reads it (call 7 is prompt 0's), and the
             * barrier lets every rank see the change */
            if (r == 0)
                for (size_t j = 0; j < (size_t)run->L * run->cfg.text_dim; j += 3)
                    run->ctx[1][j] += 0.25f;
            coll_barrier(c);
        }
        const float *ctx = run->ctx[cache_prompt[i]];
        float t = 100.0f * (float)(i + 1);
        if (wan_tf_forward(on, run->x, run->F, run->H, run->W, t, ctx, run->L, a, err, errlen) ||
            wan_tf_forward(off, run->x, run->F, run->H, run->W, t, ctx, run->L, b, err, errlen))
            goto done;
        if (memcmp(a, b, run->out_count * sizeof(float))) {
            snprintf(err, errlen, "rank %d call %d: cached and uncached outputs differ", r, i + 1);
            goto done;
        }
    }
    if (wan_tf_text_cache_bytes(on) == 0 || wan_tf_text_cache_bytes(off) != 0) {
        snprintf(err, errlen, "rank %d: cache bytes %llu with the cache, %llu without", r,
                 (unsigned long long)wan_tf_text_cache_bytes(on),
                 (unsigned long long)wan_tf_text_cache_bytes(off));
        goto done;
    }
    run->hits[r] = wan_tf_text_cache_hits(on);
    rc = wan_tf_text_cache_hits(off) == 0 ? 0 : -1;
done:
    st_free(set);
    wan_tf_free(on);
    wan_tf_free(off);
    free(a), free(b);
    return rc;
}

static void test_text_cache_is_exact(void **state) {
    (void)state;
    wan_tf_config c = small_config();
    cache_run run;
    memset(&run, 0, sizeof run);
    char wpath[512], err[512];
    snprintf(wpath, sizeof wpath, "%s/cache.safetensors", tmpdir);
    write_model(wpath, &c, 21, NULL, NULL);
    run.cfg = c;
    run.weights = wpath;
    run.F = 2, run.H = 4, run.W = 4, run.L = 6;
    size_t nx = (size_t)c.in_channels * run.F * run.H * run.W, nc = (size_t)run.L * c.text_dim;
    float *x = malloc(nx * sizeof(float));
    rng_state = 22;
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    for (int p = 0; p < 3; p++) {
        run.ctx[p] = malloc(nc * sizeof(float));
        for (size_t i = 0; i < nc; i++)
            run.ctx[p][i] = frand();
    }
    float *ctx1 = malloc(nc * sizeof(float)); /* prompt 1 as it starts */
    memcpy(ctx1, run.ctx[1], nc * sizeof(float));
    run.x = x;
    run.out_count = (size_t)c.out_channels * run.F * run.H * run.W;
    int want = 0;
    for (int i = 0; i < CACHE_CALLS; i++)
        want += cache_hit[i];
    for (int R = 1; R <= 3; R++) {
        /* on 2 ranks, rank 1 forgets its texts: at call 6 every rank
         * recomputes (the ranks must agree), so one hit fewer */
        run.forget_rank = R == 2 ? 1 : -1;
        memcpy(run.ctx[1], ctx1, nc * sizeof(float));
        memset(run.err, 0, sizeof run.err);
        if (coll_run(R, cache_rank_main, &run, err, sizeof err)) {
            for (int r = 0; r < R; r++)
                if (run.err[r][0])
                    print_error("rank %d: %s\n", r, run.err[r]);
            fail_msg("text cache on %d ranks: %s", R, err);
        }
        printf("  text cache on %d ranks: %llu of %d forwards took the text from it\n", R,
               (unsigned long long)run.hits[0], CACHE_CALLS);
        for (int r = 0; r < R; r++)
            assert_int_equal(run.hits[r], R == 2 ? want - 1 : want);
    }
    free(x), free(ctx1);
    for (int p = 0; p < 3; p++)
        free(run.ctx[p]);
    unlink(wpath);
}

/* ---------- errors a person must understand ---------- */

static void expect_config_error(const char *json, const char *needle) {
    char path[512], err[512] = "";
    wan_tf_config c;
    snprintf(path, sizeof path, "%s/bad.config.json", tmpdir);
    write_text(path, json);
    assert_int_equal(wan_tf_config_load(path, &c, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
    unlink(path);
}

static void test_config_errors_name_the_key(void **state) {
    (void)state;
    expect_config_error("{\"qk_norm\": \"rms_norm\"}", "'qk_norm'");
    expect_config_error("{\"qk_norm\": null}", "'qk_norm'");
    expect_config_error("{\"image_dim\": 1280}", "'image_dim'");
    expect_config_error("{\"added_kv_proj_dim\": 5120}", "'added_kv_proj_dim'");
    expect_config_error("{\"_class_name\": \"AutoencoderKLWan\"}", "AutoencoderKLWan");
    expect_config_error("{\"patch_size\": [1, 2]}", "'patch_size'");
    expect_config_error("{\"num_layers\": -3}", "'num_layers'");
    expect_config_error("{\"attention_head_dim\": 15}", "attention_head_dim");
    expect_config_error("{\"eps\": \"small\"}", "'eps'");
    expect_config_error("[1, 2]", "not a JSON object");
    expect_config_error("{\"num_layers\": ", "not valid JSON");
}

static void expect_weights_error(const char *skip, const char *bad, const char *needle2) {
    wan_tf_config c = small_config();
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/broken.safetensors", tmpdir);
    write_model(path, &c, 5, skip, bad);
    st_set *set;
    assert_int_equal(st_open(path, &set, err, sizeof err), 0);
    wan_tf *m = NULL;
    assert_int_equal(wan_tf_new(&c, set, NULL, &m, err, sizeof err), -1);
    assert_null(m);
    const char *name = skip ? skip : bad;
    if (!strstr(err, name) || !strstr(err, needle2))
        fail_msg("error \"%s\" does not name %s and \"%s\"", err, name, needle2);
    st_free(set);
    unlink(path);
}

static void test_bad_weights_name_the_tensor(void **state) {
    (void)state;
    expect_weights_error(NULL, "blocks.1.attn2.to_k.weight", "[25, 24]");
    expect_weights_error(NULL, "blocks.0.ffn.net.0.proj.bias", "has shape [11]");
    expect_weights_error("blocks.1.norm2.bias", NULL, "missing");
    /* shapes that do not fit the config are refused before any file */
    wan_tf_config c = small_config();
    c.head_dim = 7;
    char err[256];
    wan_tf *m;
    assert_int_equal(wan_tf_new(&c, NULL, NULL, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "odd"));
}

static void test_forward_refuses_bad_shapes(void **state) {
    (void)state;
    wan_tf_config c = small_config();
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/shapes.safetensors", tmpdir);
    write_model(path, &c, 6, NULL, NULL);
    st_set *set;
    wan_tf *m;
    assert_int_equal(st_open(path, &set, err, sizeof err), 0);
    assert_int_equal(wan_tf_new(&c, set, NULL, &m, err, sizeof err), 0);
    st_free(set);
    float x[4 * 2 * 3 * 4] = {0}, ctx[12] = {0}, out[6 * 2 * 3 * 4];
    assert_int_equal(wan_tf_forward(m, x, 2, 3, 4, 10.0f, ctx, 1, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "height 3"));
    assert_int_equal(wan_tf_forward(m, x, 2, 2, 4, 10.0f, ctx, 0, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "text"));
    float big[4 * 1 * 2 * 130];
    memset(big, 0, sizeof big);
    float bigout[6 * 1 * 2 * 130];
    assert_int_equal(wan_tf_forward(m, big, 1, 2, 130, 10.0f, ctx, 1, bigout, err, sizeof err), -1);
    assert_non_null(strstr(err, "rope_max_seq_len"));
    wan_tf_free(m);
    unlink(path);
}

/* ---------- the published checkpoint's layout ---------- */

static void test_published_layout(void **state) {
    (void)state;
    char cpath[512], lpath[512], err[512];
    snprintf(cpath, sizeof cpath, "%s/wan21_t2v_1.3b/transformer.config.json", fixdir);
    snprintf(lpath, sizeof lpath, "%s/wan21_t2v_1.3b/transformer.tensors.txt", fixdir);
    if (access(cpath, R_OK) || access(lpath, R_OK))
        fail_msg("fixture %s/wan21_t2v_1.3b missing", fixdir);
    wan_tf_config c;
    if (wan_tf_config_load(cpath, &c, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(c.num_heads, 12);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.num_layers, 30);
    assert_int_equal(c.ffn_dim, 8960);
    assert_int_equal(c.text_dim, 4096);
    wan_tf_tensor *t;
    size_t n;
    assert_int_equal(wan_tf_expected_tensors(&c, &t, &n, err, sizeof err), 0);
    FILE *f = fopen(lpath, "r");
    assert_non_null(f);
    char line[512];
    size_t i = 0;
    uint64_t params = 0;
    while (fgets(line, sizeof line, f)) {
        char name[256], dtype[16];
        long long d[6];
        int k = sscanf(line, "%255s %15s %lld %lld %lld %lld %lld %lld", name, dtype, &d[0], &d[1],
                       &d[2], &d[3], &d[4], &d[5]);
        if (k < 2)
            continue;
        if (i >= n)
            fail_msg("the checkpoint has %s, which the loader does not expect", name);
        if (strcmp(name, t[i].name))
            fail_msg("tensor %zu: checkpoint %s, loader %s", i, name, t[i].name);
        if (k - 2 != t[i].ndim)
            fail_msg("%s: %d dimensions in the checkpoint, %d expected", name, k - 2, t[i].ndim);
        for (int j = 0; j < t[i].ndim; j++)
            if (d[j] != t[i].shape[j])
                fail_msg("%s: dimension %d is %lld in the checkpoint, %lld expected", name, j,
                         d[j], (long long)t[i].shape[j]);
        params += numel(t[i].shape, t[i].ndim);
        i++;
    }
    fclose(f);
    if (i != n)
        fail_msg("the loader expects %zu tensors, the checkpoint has %zu", n, i);
    printf("  Wan2.1-T2V-1.3B: %zu tensors, %llu parameters; one of 4 ranks holds %.1f%%\n", n,
           (unsigned long long)params, 100.0 * (double)expected_floats(&c, 0, 4) / (double)params);
    assert_int_equal(params, expected_floats(&c, 0, 1));
    free(t);
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_wan_tf.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    return rmdir(tmpdir);
}

int main(int argc, char **argv) {
    if (argc > 1)
        fixdir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors_name_the_key),
        cmocka_unit_test(test_bad_weights_name_the_tensor),
        cmocka_unit_test(test_forward_refuses_bad_shapes),
        cmocka_unit_test(test_more_ranks_than_heads),
        cmocka_unit_test(test_no_cross_attn_norm_and_temporal_patch),
        cmocka_unit_test(test_text_cache_is_exact),
        cmocka_unit_test(test_tf_a_matches_diffusers),
        cmocka_unit_test(test_tf_b_matches_diffusers),
        cmocka_unit_test(test_published_layout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
