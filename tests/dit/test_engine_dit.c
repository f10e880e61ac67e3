/* The dit engine behind worker/engine.h: its parameter check, its frame
 * step, the RGB -> I420 kernel it delivers with, and whole renders on a
 * model directory built from the golden fixtures (tf_a as the transformer,
 * vae_a as the VAE, pipe_a's scheduler and prompt embeddings).
 *
 * A render must give exactly the frames of the model's parts called
 * directly (transformer, sampler and noise through dit_pipe, then the VAE
 * decoder and the colour conversion), also for a segment that starts
 * later in the job (its noise is taken at latent frame first_frame / 4);
 * two ranks must give the same frames within rounding; a worker's cache
 * must reuse a loaded model and notice a changed one; a stop request ends
 * the render between steps; and every bad input (missing or broken
 * weights, sizes the model cannot take, embeddings that do not fit) fails
 * with a message that names the culprit.
 *
 * argv[1]: the fixture directory (default tests/dit/fixtures).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dit_pipe.h"
#include "engine.h"
#include "fm_sched.h"
#include "rf_util.h"
#include "st.h"
#include "wan_tf.h"
#include "wan_vae.h"
#include "yuv.h"

static const char *fixtures = "tests/dit/fixtures";

enum { W = 48, H = 32, STEPS = 3 };
#define FRAME_BYTES ((size_t)W * H * 3 / 2)

typedef struct {
    char tmp[128];
    char model[256];   /* good model directory */
    char embeds[256];  /* prompt + negative prompt */
    char embeds2[256]; /* the same values in another file */
    char cond_only[256];
    char wrong_dim[256];
    float cond[7 * 32], uncond[7 * 32];
} fx;

static fx F;

/* ---- files ---- */

static void fixture_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", fixtures, name);
}

/* A float32 safetensors file of `count` tensors. */
static void write_st(const char *path, int count, const char *const *names, const int *ndims,
                     const int64_t (*shapes)[3], const float *const *data) {
    json_t *hdr = json_object();
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        size_t n = 1;
        json_t *shape = json_array();
        for (int d = 0; d < ndims[i]; d++) {
            n *= (size_t)shapes[i][d];
            json_array_append_new(shape, json_integer(shapes[i][d]));
        }
        json_object_set_new(hdr, names[i],
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + 4 * n)));
        off += 4 * n;
    }
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    size_t hl = strlen(text), padded = (hl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl64 = padded;
    fwrite(&hl64, 8, 1, f);
    fwrite(text, 1, hl, f);
    for (size_t i = hl; i < padded; i++)
        fputc(' ', f);
    for (int i = 0; i < count; i++) {
        size_t n = 1;
        for (int d = 0; d < ndims[i]; d++)
            n *= (size_t)shapes[i][d];
        assert_int_equal(fwrite(data[i], 4, n, f), n);
    }
    fclose(f);
    free(text);
}

static void copy_file(const char *from, const char *to, long limit) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    int c;
    for (long i = 0; (limit < 0 || i < limit) && (c = fgetc(a)) != EOF; i++)
        fputc(c, b);
    fclose(a);
    fclose(b);
}

static void abs_fixture(char *out, size_t n, const char *name) {
    char rel[512], cwd[512];
    fixture_path(rel, sizeof rel, name);
    if (rel[0] == '/') {
        snprintf(out, n, "%s", rel);
    } else {
        assert_non_null(getcwd(cwd, sizeof cwd));
        snprintf(out, n, "%s/%s", cwd, rel);
    }
}

/* DIR/{transformer,vae,scheduler} from the given weight files. A NULL
 * transformer config leaves it out. */
static void make_model(const char *dir, const char *tf_config, const char *tf_weights,
                       const char *vae_weights) {
    char p[512], src[512];
    assert_int_equal(rf_mkdirs(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/transformer", dir);
    assert_int_equal(rf_mkdirs(p, 0755), 0);
    snprintf(p, sizeof p, "%s/vae", dir);
    assert_int_equal(rf_mkdirs(p, 0755), 0);
    snprintf(p, sizeof p, "%s/scheduler", dir);
    assert_int_equal(rf_mkdirs(p, 0755), 0);
    if (tf_config) {
        snprintf(p, sizeof p, "%s/transformer/config.json", dir);
        assert_int_equal(symlink(tf_config, p), 0);
    }
    snprintf(p, sizeof p, "%s/transformer/diffusion_pytorch_model.safetensors", dir);
    assert_int_equal(symlink(tf_weights, p), 0);
    snprintf(p, sizeof p, "%s/vae/config.json", dir);
    abs_fixture(src, sizeof src, "vae_a.config.json");
    assert_int_equal(symlink(src, p), 0);
    snprintf(p, sizeof p, "%s/vae/diffusion_pytorch_model.safetensors", dir);
    assert_int_equal(symlink(vae_weights, p), 0);
    /* The scheduler WanPipeline ran for pipe_a, as the checkpoint ships it
     * (without the step count the fixture adds). */
    fixture_path(src, sizeof src, "pipe_a.config.json");
    json_error_t je;
    json_t *root = json_load_file(src, 0, &je);
    assert_non_null(root);
    json_t *sc = json_deep_copy(json_object_get(root, "scheduler_config"));
    json_object_del(sc, "num_inference_steps");
    snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", dir);
    assert_int_equal(json_dump_file(sc, p, JSON_INDENT(2)), 0);
    json_decref(sc);
    json_decref(root);
}

static int setup(void **state) {
    (void)state;
    snprintf(F.tmp, sizeof F.tmp, "/tmp/test_engine_dit.XXXXXX");
    assert_non_null(mkdtemp(F.tmp));
    char tfc[512], tfw[512], vw[512], io[512];
    abs_fixture(tfc, sizeof tfc, "tf_a.config.json");
    abs_fixture(tfw, sizeof tfw, "tf_a.safetensors");
    abs_fixture(vw, sizeof vw, "vae_a.safetensors");
    snprintf(F.model, sizeof F.model, "%s/model", F.tmp);
    make_model(F.model, tfc, tfw, vw);

    abs_fixture(io, sizeof io, "pipe_a.io.safetensors");
    st_set *set;
    char err[512];
    if (st_open(io, &set, err, sizeof err) != 0)
        fail_msg("%s", err);
    const int64_t shape[3] = {1, 7, 32};
    assert_int_equal(st_load(set, "prompt_embeds", 3, shape, F.cond, err, sizeof err), 0);
    assert_int_equal(st_load(set, "negative_prompt_embeds", 3, shape, F.uncond, err, sizeof err), 0);
    st_free(set);
    const char *names[] = {"prompt_embeds", "negative_prompt_embeds"};
    const int nd3[] = {3, 3}, nd2[] = {2};
    const int64_t shapes3[2][3] = {{1, 7, 32}, {1, 7, 32}}, shapes2[1][3] = {{7, 32, 0}};
    const float *data[] = {F.cond, F.uncond};
    snprintf(F.embeds, sizeof F.embeds, "%s/embeds.safetensors", F.tmp);
    write_st(F.embeds, 2, names, nd3, shapes3, data);
    snprintf(F.embeds2, sizeof F.embeds2, "%s/embeds2.safetensors", F.tmp);
    write_st(F.embeds2, 2, names, nd3, shapes3, data);
    /* [L, dim] without the batch dimension is accepted too */
    snprintf(F.cond_only, sizeof F.cond_only, "%s/cond_only.safetensors", F.tmp);
    write_st(F.cond_only, 1, names, nd2, shapes2, data);
    const int64_t wrong[1][3] = {{8, 28, 0}};
    snprintf(F.wrong_dim, sizeof F.wrong_dim, "%s/wrong_dim.safetensors", F.tmp);
    write_st(F.wrong_dim, 1, names, nd2, wrong, data);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rf_rmtree(F.tmp);
    return 0;
}

/* ---- rendering through the engine ---- */

typedef struct {
    uint8_t *frames;
    uint32_t count, first;
    int out_of_order;
    char logs[8192];
    atomic_int *stop;
    const char *stop_on; /* set *stop when a log line holds this */
} sink;

static int on_frame(void *ctx, uint32_t abs_frame, const uint8_t *px, size_t len) {
    sink *s = ctx;
    if (abs_frame != s->first + s->count || len != FRAME_BYTES)
        s->out_of_order = 1;
    s->frames = realloc(s->frames, (s->count + 1) * FRAME_BYTES);
    memcpy(s->frames + s->count * FRAME_BYTES, px, FRAME_BYTES);
    s->count++;
    return 0;
}

static void on_log(void *ctx, const char *line) {
    sink *s = ctx;
    size_t used = strlen(s->logs);
    snprintf(s->logs + used, sizeof s->logs - used, "%s\n", line);
    if (s->stop_on && strstr(line, s->stop_on))
        atomic_store(s->stop, 1);
}

typedef struct {
    const char *model, *embeds;
    int ranks;
    float guidance;
    uint32_t first, frames, width, height;
    const char *extra; /* more params, ",\"k\":v" */
} job;

static job good_job(void) {
    return (job){.model = F.model, .embeds = F.embeds, .ranks = 1, .guidance = 5.0f,
                 .first = 0, .frames = 9, .width = W, .height = H, .extra = ""};
}

static int render(const job *j, engine_cache *cache, sink *s, char *err, size_t errlen) {
    char params[2048];
    snprintf(params, sizeof params,
             "{\"model\":\"%s\",\"prompt_embeds\":\"%s\",\"steps\":%d,\"guidance\":%g,"
             "\"ranks\":%d%s}",
             j->model, j->embeds, STEPS, (double)j->guidance, j->ranks, j->extra);
    engine_segment seg = {.job_id = "j", .segment = 0, .attempt = 1, .first_frame = j->first,
                          .frames = j->frames, .job_frames = 41, .width = j->width,
                          .height = j->height, .fps_num = 16, .fps_den = 1, .seed = 11,
                          .prompt = "", .params_json = params};
    static atomic_int no_stop;
    atomic_store(&no_stop, 0);
    s->first = j->first;
    if (!s->stop)
        s->stop = &no_stop;
    engine_io io = {.frame = on_frame, .log = on_log, .ctx = s, .stop = s->stop, .cache = cache};
    return engine_render("dit", &seg, &io, err, errlen);
}

/* What the engine must produce, from the parts called directly. */
static uint8_t *direct_frames(uint32_t first, uint32_t frames, float guidance) {
    char path[512], err[512];
    wan_tf_config tc;
    fixture_path(path, sizeof path, "tf_a.config.json");
    assert_int_equal(wan_tf_config_load(path, &tc, err, sizeof err), 0);
    st_set *set;
    fixture_path(path, sizeof path, "tf_a.safetensors");
    assert_int_equal(st_open(path, &set, err, sizeof err), 0);
    wan_tf *m;
    assert_int_equal(wan_tf_new(&tc, set, NULL, &m, err, sizeof err), 0);
    st_free(set);
    fm_sched_config sc;
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", F.model);
    assert_int_equal(fm_sched_config_load(path, &sc, err, sizeof err), 0);
    fm_sched *sched;
    assert_int_equal(fm_sched_new(&sc, STEPS, &sched, err, sizeof err), 0);
    int T = (int)(frames - 1) / 4 + 1, h = H / 4, w = W / 4;
    float *lat = malloc(sizeof(float) * 4 * (size_t)T * h * w);
    dit_pipe_args a = {.channels = 4, .frames = T, .height = h, .width = w, .ctx = F.cond,
                       .ctx_len = 7, .ctx_uncond = F.uncond, .ctx_uncond_len = 7,
                       .guidance = guidance};
    if (dit_pipe_generate(m, sched, &a, 11, first / 4, lat, err, sizeof err) != 0)
        fail_msg("%s", err);
    fm_sched_free(sched);
    wan_tf_free(m);

    wan_vae_config vc;
    fixture_path(path, sizeof path, "vae_a.config.json");
    assert_int_equal(wan_vae_config_load(path, &vc, err, sizeof err), 0);
    fixture_path(path, sizeof path, "vae_a.safetensors");
    assert_int_equal(st_open(path, &set, err, sizeof err), 0);
    wan_vae *v;
    assert_int_equal(wan_vae_new(&vc, set, &v, err, sizeof err), 0);
    st_free(set);
    size_t plane = (size_t)frames * W * H;
    float *rgb = malloc(3 * plane * sizeof *rgb);
    assert_int_equal(wan_vae_decode(v, lat, T, h, w, rgb, err, sizeof err), 0);
    wan_vae_free(v);
    uint8_t *out = malloc(frames * FRAME_BYTES);
    for (uint32_t i = 0; i < frames; i++) {
        const float *r = rgb + (size_t)i * W * H;
        kn_rgbf_to_i420(r, r + plane, r + 2 * plane, W, H, out + i * FRAME_BYTES);
    }
    free(rgb);
    free(lat);
    return out;
}

static void must_fail(const job *j, const char *needle, const char *needle2) {
    sink s = {0};
    char err[2048] = "";
    int rc = render(j, NULL, &s, err, sizeof err);
    print_message("  -> %s\n", err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, needle));
    if (needle2)
        assert_non_null(strstr(err, needle2));
    assert_int_equal(s.count, 0);
    free(s.frames);
}

/* ---- tests ---- */

static int check(const char *params, char *errs, size_t n) {
    errs[0] = '\0';
    return engine_check_params("dit", params, errs, n);
}

static void test_params(void **state) {
    (void)state;
    char errs[2048];
    assert_int_equal(check("{\"model\":\"/m\",\"prompt_embeds\":\"/e.safetensors\"}", errs,
                           sizeof errs), 0);
    assert_int_equal(check("{\"model\":\"/m\",\"prompt_embeds\":\"/e\",\"steps\":4,\"guidance\":1,"
                           "\"shift\":5,\"sampler\":\"euler\",\"ranks\":2}", errs, sizeof errs), 0);
    assert_int_equal(check("{}", errs, sizeof errs), 2);
    assert_non_null(strstr(errs, "params.model: is required"));
    assert_non_null(strstr(errs, "params.prompt_embeds: is required"));
    assert_int_equal(check("{\"model\":\"models/wan\",\"prompt_embeds\":7}", errs, sizeof errs), 2);
    assert_non_null(strstr(errs, "params.model: must be an absolute path, as the workers see it "
                                 "(got 'models/wan')"));
    assert_non_null(strstr(errs, "params.prompt_embeds: must be a string"));
    static const struct {
        const char *extra, *line;
    } bad[] = {
        {"\"steps\":0", "params.steps: must be an integer between 1 and 1000"},
        {"\"steps\":2.5", "params.steps: must be an integer between 1 and 1000"},
        {"\"guidance\":-1", "params.guidance: must be a number of at least 0 and at most 100"},
        {"\"guidance\":\"5\"", "params.guidance: must be a number"},
        {"\"shift\":0", "params.shift: must be a number above 0 and at most 100"},
        {"\"sampler\":\"ddim\"", "params.sampler: must be \"unipc\" or \"euler\""},
        {"\"ranks\":0", "params.ranks: must be an integer between 1 and 64"},
        {"\"ranks\":65", "params.ranks: must be an integer between 1 and 64"},
        {"\"prompt\":\"a cat\"", "params.prompt: unknown parameter for engine dit"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "{\"model\":\"/m\",\"prompt_embeds\":\"/e\",%s}", bad[i].extra);
        assert_int_equal(check(p, errs, sizeof errs), 1);
        if (!strstr(errs, bad[i].line))
            fail_msg("%s: got '%s', want '%s'", bad[i].extra, errs, bad[i].line);
    }
}

static void test_frame_step_and_table(void **state) {
    (void)state;
    assert_int_equal(engine_frame_step("dit"), 4);
    assert_int_equal(engine_frame_step("synthetic"), 1);
    assert_int_equal(engine_frame_step("exec"), 1);
    assert_int_equal(engine_frame_step("teleport"), 0);
    int seen = 0;
    for (const char *const *n = engine_names(); *n; n++)
        seen |= strcmp(*n, "dit") == 0;
    assert_true(seen);
}

static void px(float *r, float *g, float *b, int i, float rv, float gv, float bv) {
    r[i] = rv;
    g[i] = gv;
    b[i] = bv;
}

/* BT.709 limited range: known colours, chroma as the mean of each 2x2
 * block, clamping and NaN. */
static void test_rgb_to_i420(void **state) {
    (void)state;
    enum { w = 8, h = 2 };
    float r[w * h], g[w * h], b[w * h];
    /* blocks: white, black, red, green (each 2x2) */
    const float col[4][3] = {{1, 1, 1}, {-1, -1, -1}, {1, -1, -1}, {-1, 1, -1}};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            px(r, g, b, y * w + x, col[x / 2][0], col[x / 2][1], col[x / 2][2]);
    uint8_t out[w * h * 3 / 2];
    kn_rgbf_to_i420(r, g, b, w, h, out);
    const uint8_t *Y = out, *U = out + w * h, *V = U + (w / 2) * (h / 2);
    const uint8_t wantY[4] = {235, 16, 63, 173}, wantU[4] = {128, 128, 102, 42},
                  wantV[4] = {128, 128, 240, 26};
    for (int k = 0; k < 4; k++) {
        for (int y = 0; y < h; y++)
            for (int x = 2 * k; x < 2 * k + 2; x++)
                assert_int_equal(Y[y * w + x], wantY[k]);
        assert_int_equal(U[k], wantU[k]);
        assert_int_equal(V[k], wantV[k]);
    }
    /* blue, then one block half white half black: chroma neutral, luma
     * per pixel; then out of range and NaN clamp to the ends */
    for (int i = 0; i < w * h; i++)
        px(r, g, b, i, -1, -1, 1);
    px(r, g, b, 2, 1, 1, 1);
    px(r, g, b, 3, 1, 1, 1);
    px(r, g, b, 10, -1, -1, -1);
    px(r, g, b, 11, -1, -1, -1);
    px(r, g, b, 4, 7, 7, 7);
    px(r, g, b, 5, 7, 7, 7);
    px(r, g, b, 12, 1.0001f, 2, 1);
    px(r, g, b, 13, 1, 1, 1e9f);
    px(r, g, b, 6, NAN, NAN, NAN);
    px(r, g, b, 7, -3, -3, -3);
    px(r, g, b, 14, -1, -1, -1);
    px(r, g, b, 15, -1, -1, -1);
    kn_rgbf_to_i420(r, g, b, w, h, out);
    assert_int_equal(Y[0], 32);
    assert_int_equal(U[0], 240);
    assert_int_equal(V[0], 118);
    assert_int_equal(Y[2], 235);
    assert_int_equal(Y[10], 16);
    assert_int_equal(U[1], 128);
    assert_int_equal(V[1], 128);
    assert_int_equal(Y[4], 235);
    assert_int_equal(Y[12], 235);
    assert_int_equal(U[2], 128);
    assert_int_equal(V[2], 128);
    assert_int_equal(Y[6], 16);
    assert_int_equal(Y[7], 16);
    assert_int_equal(U[3], 128);
    assert_int_equal(V[3], 128);
}

/* The engine renders exactly what the parts give when called directly,
 * also for a segment that starts at frame 4 (latent frame 1). */
static void test_render_matches_direct(void **state) {
    (void)state;
    const uint32_t firsts[2] = {0, 4}, lens[2] = {9, 5};
    for (int k = 0; k < 2; k++) {
        job j = good_job();
        j.first = firsts[k];
        j.frames = lens[k];
        sink s = {0};
        char err[2048];
        if (render(&j, NULL, &s, err, sizeof err) != 0)
            fail_msg("%s", err);
        assert_int_equal(s.count, j.frames);
        assert_false(s.out_of_order);
        uint8_t *want = direct_frames(j.first, j.frames, 5.0f);
        assert_memory_equal(s.frames, want, j.frames * FRAME_BYTES);
        /* not a flat picture: the model drew something */
        int lo = 255, hi = 0;
        for (size_t i = 0; i < W * H; i++) {
            lo = s.frames[i] < lo ? s.frames[i] : lo;
            hi = s.frames[i] > hi ? s.frames[i] : hi;
        }
        assert_true(hi - lo > 20);
        assert_non_null(strstr(s.logs, "dit: model loaded"));
        assert_non_null(strstr(s.logs, "dit: denoised"));
        free(want);
        free(s.frames);
    }
}

/* Two ranks (one head each) give the single rank's frames within
 * rounding of the transformer's all-reduced sums. */
static void test_two_ranks(void **state) {
    (void)state;
    job j = good_job();
    sink one = {0}, two = {0};
    char err[2048];
    if (render(&j, NULL, &one, err, sizeof err) != 0)
        fail_msg("%s", err);
    j.ranks = 2;
    if (render(&j, NULL, &two, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(two.count, 9);
    int maxd = 0;
    size_t differ = 0;
    for (size_t i = 0; i < 9 * FRAME_BYTES; i++) {
        int d = abs((int)one.frames[i] - (int)two.frames[i]);
        maxd = d > maxd ? d : maxd;
        differ += d != 0;
    }
    print_message("  ranks 2 vs 1: max |diff| %d, %zu of %zu bytes differ\n", maxd, differ,
                  9 * FRAME_BYTES);
    assert_true(maxd <= 1);
    free(one.frames);
    free(two.frames);
}

static int loaded(const sink *s) { return strstr(s->logs, "dit: model loaded") != NULL; }
static int reused(const sink *s) { return strstr(s->logs, "dit: model reused") != NULL; }

/* A worker's cache keeps the model between segments, also when only the
 * embeddings change, and loads it again when its files change. */
static void test_cache(void **state) {
    (void)state;
    engine_cache *cache;
    char err[2048];
    assert_int_equal(engine_cache_new(&cache, err, sizeof err), 0);
    job j = good_job();
    sink a = {0}, b = {0}, c = {0}, d = {0}, e = {0};
    assert_int_equal(render(&j, cache, &a, err, sizeof err), 0);
    assert_true(loaded(&a));
    assert_int_equal(render(&j, cache, &b, err, sizeof err), 0);
    assert_true(reused(&b));
    assert_memory_equal(a.frames, b.frames, 9 * FRAME_BYTES);
    j.embeds = F.embeds2;
    assert_int_equal(render(&j, cache, &c, err, sizeof err), 0);
    assert_true(reused(&c));
    assert_memory_equal(a.frames, c.frames, 9 * FRAME_BYTES);
    /* another rank count is another model */
    j.ranks = 2;
    assert_int_equal(render(&j, cache, &d, err, sizeof err), 0);
    assert_true(loaded(&d));
    /* the checkpoint replaced in place (a new file, as a copy tool makes) */
    char p[512], src[512];
    snprintf(p, sizeof p, "%s/vae/diffusion_pytorch_model.safetensors", F.model);
    ssize_t n = readlink(p, src, sizeof src - 1);
    assert_true(n > 0);
    src[n] = '\0';
    assert_int_equal(unlink(p), 0);
    copy_file(src, p, -1);
    assert_int_equal(render(&j, cache, &e, err, sizeof err), 0);
    assert_true(loaded(&e));
    assert_memory_equal(d.frames, e.frames, 9 * FRAME_BYTES);
    engine_cache_free(cache);
    free(a.frames);
    free(b.frames);
    free(c.frames);
    free(d.frames);
    free(e.frames);
}

/* A stop request ends the render between two steps, on every rank. */
static void test_stop(void **state) {
    (void)state;
    for (int ranks = 1; ranks <= 2; ranks++) {
        job j = good_job();
        j.ranks = ranks;
        atomic_int stop;
        atomic_init(&stop, 0);
        sink s = {.stop = &stop, .stop_on = "dit: model loaded"};
        char err[2048];
        assert_int_equal(render(&j, NULL, &s, err, sizeof err), -1);
        print_message("  ranks %d: %s\n", ranks, err);
        assert_non_null(strstr(err, "stopped"));
        assert_non_null(strstr(err, "after step 0/3"));
        assert_int_equal(s.count, 0);
        free(s.frames);
    }
}

static void test_bad_model(void **state) {
    (void)state;
    char dir[512], tfc[512], tfw[512], vw[512], cut[512];
    abs_fixture(tfc, sizeof tfc, "tf_a.config.json");
    abs_fixture(tfw, sizeof tfw, "tf_a.safetensors");
    abs_fixture(vw, sizeof vw, "vae_a.safetensors");
    job j = good_job();

    snprintf(dir, sizeof dir, "%s/no/such/model", F.tmp);
    j.model = dir;
    must_fail(&j, dir, "No such file or directory");

    /* no transformer config */
    snprintf(dir, sizeof dir, "%s/no_config", F.tmp);
    make_model(dir, NULL, tfw, vw);
    must_fail(&j, "transformer/config.json", NULL);

    /* the VAE's weights where the transformer's should be */
    snprintf(dir, sizeof dir, "%s/swapped", F.tmp);
    make_model(dir, tfc, vw, vw);
    must_fail(&j, "transformer: wan_tf: tensor", "is missing from the weights");

    /* a transformer file cut short */
    snprintf(cut, sizeof cut, "%s/cut.safetensors", F.tmp);
    copy_file(tfw, cut, 100000);
    snprintf(dir, sizeof dir, "%s/cut", F.tmp);
    make_model(dir, tfc, cut, vw);
    must_fail(&j, "cut/transformer/diffusion_pytorch_model.safetensors", "truncated");

    /* more ranks than heads */
    j = good_job();
    j.ranks = 3;
    must_fail(&j, "ranks: 3 ranks", "2 attention heads");
}

static void test_bad_inputs(void **state) {
    (void)state;
    job j = good_job();
    j.width = 36;
    must_fail(&j, "width: 36 is not a multiple of 8", "e.g. 32 or 40");
    j = good_job();
    j.height = 20;
    must_fail(&j, "height: 20 is not a multiple of 8", NULL);
    j = good_job();
    j.frames = 10;
    must_fail(&j, "4n+1 frames", NULL);
    j = good_job();
    j.first = 2;
    must_fail(&j, "start on a multiple of 4", NULL);

    j = good_job();
    j.embeds = F.cond_only;
    must_fail(&j, "params.guidance: 5 needs negative_prompt_embeds", "cond_only.safetensors has none");
    j.guidance = 1.0f; /* no guidance: the conditional embeddings suffice */
    sink s = {0};
    char err[2048];
    if (render(&j, NULL, &s, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(s.count, 9);
    free(s.frames);

    j = good_job();
    j.embeds = F.wrong_dim;
    must_fail(&j, "wrong_dim.safetensors", "text_dim is 32");
    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", F.tmp);
    j.embeds = missing;
    must_fail(&j, missing, NULL);
    j = good_job();
    j.extra = ",\"sampler\":\"dpm\"";
    must_fail(&j, "dit: params.sampler", NULL);
}

int main(int argc, char **argv) {
    if (argc > 1)
        fixtures = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_frame_step_and_table),
        cmocka_unit_test(test_rgb_to_i420),
        cmocka_unit_test(test_render_matches_direct),
        cmocka_unit_test(test_two_ranks),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_bad_model),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
