/* dit_pipe: one segment's denoising loop.
 *
 * Against diffusers: when tests/dit/fixtures/pipe_a.* exists (WanPipeline
 * with transformer tf_a, UniPC and classifier-free guidance, made by
 * tests/dit/golden), the loop started from diffusers' initial latents ends
 * on diffusers' final latents within 1e-4 relative L2.
 *
 * On a tiny random-weight transformer written here: the loop is the
 * transformer / guidance / sampler sequence and nothing else (equal bit for
 * bit to the same sequence written out by hand, one pass when guidance is
 * not above 1); ranks of a tensor-parallel group end on identical latents,
 * close to a single rank's; a caller can stop it between steps; missing
 * inputs are refused with a message.
 *
 * argv[1]: the fixture directory (default tests/dit/fixtures).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <unistd.h>

#include "coll.h"
#include "dit_noise.h"
#include "dit_pipe.h"
#include "dit_test.h"
#include "fm_sched.h"
#include "st.h"
#include "wan_tf.h"

static const char *fixture_dir = "tests/dit/fixtures";

/* ---- a tiny random transformer ---- */

enum { C = 4, F = 3, H = 4, W = 4, TEXT = 8, L = 5, STEPS = 4 };
#define NLAT ((size_t)C * F * H * W)

static wan_tf_config tiny_config(void) {
    wan_tf_config c;
    memset(&c, 0, sizeof c);
    c.patch[0] = 1;
    c.patch[1] = 2;
    c.patch[2] = 2;
    c.num_heads = 2;
    c.head_dim = 8;
    c.in_channels = C;
    c.out_channels = C;
    c.text_dim = TEXT;
    c.freq_dim = 8;
    c.ffn_dim = 24;
    c.num_layers = 2;
    c.eps = 1e-6f;
    c.cross_attn_norm = 1;
    c.rope_max_seq_len = 1024;
    return c;
}

/* Deterministic values in [-0.25, 0.25) (weights, embeddings). */
static float small_value(uint64_t seed, size_t i) {
    return 0.25f * dit_noise_at(seed, 0, 0, (uint32_t)(i >> 32), (uint32_t)i) / 4.0f;
}

/* Write every tensor tiny_config needs as F32 safetensors at `path`. */
static void write_tiny_weights(const char *path) {
    wan_tf_config cfg = tiny_config();
    wan_tf_tensor *ts = NULL;
    size_t nt = 0;
    char err[256];
    if (wan_tf_expected_tensors(&cfg, &ts, &nt, err, sizeof err) != 0) fail_msg("%s", err);
    json_t *hdr = json_object();
    size_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t cnt = 1;
        json_t *shape = json_array();
        for (int d = 0; d < ts[i].ndim; d++) {
            cnt *= (size_t)ts[i].shape[d];
            json_array_append_new(shape, json_integer(ts[i].shape[d]));
        }
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string("F32"));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + cnt * 4)));
        json_object_set_new(hdr, ts[i].name, e);
        off += cnt * 4;
    }
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    size_t hl = strlen(text), padded = (hl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl64 = padded;
    assert_int_equal(fwrite(&hl64, 8, 1, f), 1);
    assert_int_equal(fwrite(text, 1, hl, f), hl);
    for (size_t i = hl; i < padded; i++) fputc(' ', f);
    size_t k = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t cnt = 1;
        for (int d = 0; d < ts[i].ndim; d++) cnt *= (size_t)ts[i].shape[d];
        /* norms' weights near 1, everything else small */
        int is_norm = strstr(ts[i].name, "norm") != NULL;
        for (size_t j = 0; j < cnt; j++, k++) {
            float v = small_value(99, k) + (is_norm && strstr(ts[i].name, "weight") ? 1.0f : 0.0f);
            assert_int_equal(fwrite(&v, 4, 1, f), 1);
        }
    }
    fclose(f);
    free(text);
    free(ts);
}

typedef struct {
    char path[64];
    float ctx[L * TEXT], neg[L * TEXT];
} tiny;

static int setup_tiny(void **state) {
    tiny *t = calloc(1, sizeof *t);
    snprintf(t->path, sizeof t->path, "/tmp/test_dit_pipe_%ld.safetensors", (long)getpid());
    write_tiny_weights(t->path);
    for (int i = 0; i < L * TEXT; i++) {
        t->ctx[i] = 4.0f * small_value(1, (size_t)i);
        t->neg[i] = 4.0f * small_value(2, (size_t)i);
    }
    *state = t;
    return 0;
}

static int teardown_tiny(void **state) {
    tiny *t = *state;
    unlink(t->path);
    free(t);
    return 0;
}

static wan_tf *open_model(const char *path, coll *c) {
    st_set *set = NULL;
    wan_tf *m = NULL;
    char err[512];
    if (st_open(path, &set, err, sizeof err) != 0) fail_msg("%s", err);
    wan_tf_config cfg = tiny_config();
    if (wan_tf_new(&cfg, set, c, &m, err, sizeof err) != 0) fail_msg("%s", err);
    st_free(set);
    return m;
}

static fm_sched *unipc(int steps) {
    fm_sched_config c;
    fm_sched_config_default(FM_UNIPC, &c);
    fm_sched *s = NULL;
    char err[256];
    assert_int_equal(fm_sched_new(&c, steps, &s, err, sizeof err), 0);
    return s;
}

static dit_pipe_args tiny_args(const tiny *t, float guidance) {
    dit_pipe_args a;
    memset(&a, 0, sizeof a);
    a.channels = C;
    a.frames = F;
    a.height = H;
    a.width = W;
    a.ctx = t->ctx;
    a.ctx_len = L;
    a.ctx_uncond = t->neg;
    a.ctx_uncond_len = L;
    a.guidance = guidance;
    return a;
}

/* The loop written out by hand. */
static void hand_loop(wan_tf *m, const tiny *t, float guidance, float *x) {
    fm_sched *s = unipc(STEPS);
    float cond[NLAT], unc[NLAT];
    char err[512];
    for (int i = 0; i < STEPS; i++) {
        float ts = fm_sched_timestep(s, i);
        assert_int_equal(wan_tf_forward(m, x, F, H, W, ts, t->ctx, L, cond, err, sizeof err), 0);
        if (guidance > 1.0f) {
            assert_int_equal(wan_tf_forward(m, x, F, H, W, ts, t->neg, L, unc, err, sizeof err), 0);
            for (size_t e = 0; e < NLAT; e++) cond[e] = unc[e] + guidance * (cond[e] - unc[e]);
        }
        assert_int_equal(fm_sched_step(s, i, cond, x, NLAT, err, sizeof err), 0);
    }
    fm_sched_free(s);
}

static void test_loop_is_the_sequence(void **state) {
    tiny *t = *state;
    wan_tf *m = open_model(t->path, NULL);
    const float gs[] = {5.0f, 1.0f, 0.5f};
    float lat[NLAT], ref[NLAT], cond_only[NLAT];
    char err[512];
    for (size_t k = 0; k < sizeof gs / sizeof gs[0]; k++) {
        dit_pipe_args a = tiny_args(t, gs[k]);
        fm_sched *s = unipc(STEPS);
        if (dit_pipe_generate(m, s, &a, 1234, 2, lat, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(dit_noise_fill(1234, 2, F, C, H, W, ref, err, sizeof err), 0);
        hand_loop(m, t, gs[k], ref);
        assert_memory_equal(lat, ref, sizeof lat);
        double moved = 0;
        for (size_t e = 0; e < NLAT; e++) moved = fmax(moved, fabs((double)lat[e]));
        assert_true(isfinite(moved) && moved > 0);
        if (k == 1) memcpy(cond_only, lat, sizeof lat);
        if (k == 2) /* at or below 1 guidance is off: the conditional pass alone */
            assert_memory_equal(lat, cond_only, sizeof lat);
        fm_sched_free(s);
    }
    wan_tf_free(m);
}

typedef struct {
    const tiny *t;
    float out[4][NLAT];
} tp_run;

static int tp_rank(coll *c, void *arg) {
    tp_run *r = arg;
    wan_tf *m = open_model(r->t->path, c);
    fm_sched *s = unipc(STEPS);
    dit_pipe_args a = tiny_args(r->t, 5.0f);
    char err[512];
    int rc = dit_pipe_generate(m, s, &a, 77, 0, r->out[coll_rank(c)], err, sizeof err);
    if (rc != 0) print_error("rank %d: %s\n", coll_rank(c), err);
    fm_sched_free(s);
    wan_tf_free(m);
    return rc;
}

/* Two heads split over two ranks: both ranks end on the same bits, within
 * float rounding of the single-rank run. */
static void test_tensor_parallel_ranks_agree(void **state) {
    tiny *t = *state;
    tp_run *one = calloc(1, sizeof *one), *two = calloc(1, sizeof *two);
    one->t = two->t = t;
    char err[256];
    assert_int_equal(coll_run(1, tp_rank, one, err, sizeof err), 0);
    assert_int_equal(coll_run(2, tp_rank, two, err, sizeof err), 0);
    assert_memory_equal(two->out[0], two->out[1], sizeof two->out[0]);
    double r = dit_rel_l2(two->out[0], one->out[0], NLAT);
    print_message("  R=2 vs R=1 rel_l2=%.3g\n", r);
    assert_true(r < 1e-5);
    free(one);
    free(two);
}

static int stop_at_1(void *user, int step, int steps, const float *latents) {
    assert_non_null(latents);
    int *seen = user;
    assert_int_equal(steps, STEPS);
    *seen = step;
    return step == 1 ? 7 : 0;
}

static void test_caller_stops_loop(void **state) {
    tiny *t = *state;
    wan_tf *m = open_model(t->path, NULL);
    fm_sched *s = unipc(STEPS);
    dit_pipe_args a = tiny_args(t, 5.0f);
    int seen = -1;
    a.on_step = stop_at_1;
    a.user = &seen;
    float lat[NLAT];
    char err[512] = "";
    assert_int_equal(dit_pipe_generate(m, s, &a, 1, 0, lat, err, sizeof err), 7);
    assert_int_equal(seen, 1);
    assert_non_null(strstr(err, "stopped after step 1"));
    fm_sched_free(s);
    wan_tf_free(m);
}

static void test_bad_arguments(void **state) {
    tiny *t = *state;
    wan_tf *m = open_model(t->path, NULL);
    fm_sched *s = unipc(STEPS);
    float lat[NLAT];
    char err[512] = "";
    dit_pipe_args a = tiny_args(t, 5.0f);
    a.ctx_uncond = NULL;
    assert_int_not_equal(dit_pipe_generate(m, s, &a, 1, 0, lat, err, sizeof err), 0);
    assert_non_null(strstr(err, "negative-prompt"));
    a = tiny_args(t, 5.0f);
    a.frames = 0;
    assert_int_not_equal(dit_pipe_denoise(m, s, &a, lat, err, sizeof err), 0);
    assert_non_null(strstr(err, "not positive"));
    a = tiny_args(t, 5.0f);
    a.height = 3; /* not a multiple of the patch: the transformer says so */
    assert_int_not_equal(dit_pipe_denoise(m, s, &a, lat, err, sizeof err), 0);
    assert_non_null(strstr(err, "conditional pass"));
    fm_sched_free(s);
    wan_tf_free(m);
}

/* ---- diffusers' WanPipeline ---- */

static float *load_any(st_set *set, const char *name, int ndim_want, int64_t *shape_out) {
    const st_tensor *t = st_find(set, name);
    if (!t) fail_msg("fixture tensor %s is missing", name);
    if (ndim_want && t->ndim != ndim_want) fail_msg("fixture tensor %s has %d dims, want %d", name, t->ndim, ndim_want);
    size_t cnt = 1;
    for (int d = 0; d < t->ndim; d++) {
        cnt *= (size_t)t->shape[d];
        if (shape_out) shape_out[d] = t->shape[d];
    }
    float *buf = malloc((cnt ? cnt : 1) * sizeof(float));
    assert_non_null(buf);
    char err[512];
    if (st_load(set, name, t->ndim, t->shape, buf, err, sizeof err) != 0) fail_msg("%s", err);
    return buf;
}

typedef struct {
    st_set *io;
    size_t n;
    double worst;
} pipe_watch;

/* Each step's latents against the pipeline's latents_<i>, for the record:
 * where a mismatch starts tells transformer from sampler. */
static int watch_step(void *user, int step, int steps, const float *latents) {
    pipe_watch *w = user;
    char name[32];
    snprintf(name, sizeof name, "latents_%d", step);
    float *ref = load_any(w->io, name, 5, NULL);
    double r = dit_rel_l2(latents, ref, w->n);
    print_message("  pipe_a step %d/%d rel_l2=%.3g\n", step, steps, r);
    w->worst = fmax(w->worst, r);
    free(ref);
    return 0;
}

static void test_pipe_a_matches_diffusers(void **state) {
    (void)state;
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/pipe_a.config.json", fixture_dir);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) fail_msg("%s: %s (tests/dit/golden/make_golden.py writes it)", path, je.text);
    const char *tf_name = json_string_value(json_object_get(cfg, "transformer"));
    double guidance = json_number_value(json_object_get(cfg, "guidance_scale"));
    json_t *sc = json_object_get(cfg, "scheduler_config");
    json_t *jn = json_object_get(cfg, "num_inference_steps");
    if (!tf_name || !json_is_object(sc) || !json_is_integer(jn) || !(guidance > 0))
        fail_msg("%s: transformer, scheduler_config, num_inference_steps or guidance_scale missing", path);
    int steps = (int)json_integer_value(jn);
    json_object_del(sc, "num_inference_steps");
    char *sc_text = json_dumps(sc, 0);
    fm_sched_config scfg;
    if (fm_sched_config_parse(sc_text, &scfg, err, sizeof err) != 0) fail_msg("%s: %s", path, err);
    free(sc_text);
    fm_sched *s = NULL;
    if (fm_sched_new(&scfg, steps, &s, err, sizeof err) != 0) fail_msg("%s", err);

    wan_tf_config tcfg;
    snprintf(path, sizeof path, "%s/%s.config.json", fixture_dir, tf_name);
    if (wan_tf_config_load(path, &tcfg, err, sizeof err) != 0) fail_msg("%s", err);
    snprintf(path, sizeof path, "%s/%s.safetensors", fixture_dir, tf_name);
    st_set *w = NULL;
    wan_tf *m = NULL;
    if (st_open(path, &w, err, sizeof err) != 0) fail_msg("%s", err);
    if (wan_tf_new(&tcfg, w, NULL, &m, err, sizeof err) != 0) fail_msg("%s", err);
    st_free(w);
    json_decref(cfg);

    snprintf(path, sizeof path, "%s/pipe_a.io.safetensors", fixture_dir);
    st_set *io = NULL;
    if (st_open(path, &io, err, sizeof err) != 0) fail_msg("%s", err);
    int64_t lshape[5], pshape[3], nshape[3];
    float *lat = load_any(io, "latents_init", 5, lshape);
    float *pe = load_any(io, "prompt_embeds", 3, pshape);
    float *npe = load_any(io, "negative_prompt_embeds", 3, nshape);
    float *want = load_any(io, "latents_final", 5, NULL);
    float *ts = load_any(io, "timesteps", 1, NULL);
    for (int i = 0; i < steps; i++) assert_true(ts[i] == fm_sched_timestep(s, i));

    dit_pipe_args a;
    memset(&a, 0, sizeof a);
    a.channels = (int)lshape[1];
    a.frames = (int)lshape[2];
    a.height = (int)lshape[3];
    a.width = (int)lshape[4];
    a.ctx = pe;
    a.ctx_len = (int)pshape[1];
    a.ctx_uncond = npe;
    a.ctx_uncond_len = (int)nshape[1];
    a.guidance = (float)guidance;
    pipe_watch pw = {io, (size_t)a.channels * a.frames * a.height * a.width, 0};
    a.on_step = watch_step;
    a.user = &pw;
    if (dit_pipe_denoise(m, s, &a, lat, err, sizeof err) != 0) fail_msg("%s", err);
    double r = dit_rel_l2(lat, want, pw.n);
    print_message("  pipe_a: %d steps guidance %g latents [%d,%d,%d,%d] dit_rel_l2(latents_final)=%.3g\n", steps,
                  guidance, a.channels, a.frames, a.height, a.width, r);
    if (!(r < 1e-4)) fail_msg("pipe_a: final latents rel L2 %g >= 1e-4", r);

    free(lat);
    free(pe);
    free(npe);
    free(want);
    free(ts);
    st_free(io);
    wan_tf_free(m);
    fm_sched_free(s);
}

int main(int argc, char **argv) {
    if (argc > 1) fixture_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_a_matches_diffusers),
        cmocka_unit_test_setup_teardown(test_loop_is_the_sequence, setup_tiny, teardown_tiny),
        cmocka_unit_test_setup_teardown(test_tensor_parallel_ranks_agree, setup_tiny, teardown_tiny),
        cmocka_unit_test_setup_teardown(test_caller_stops_loop, setup_tiny, teardown_tiny),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup_tiny, teardown_tiny),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
