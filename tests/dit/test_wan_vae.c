/* test_wan_vae — Wan2.1's VAE decoder (worker/dit/wan_vae*.c).
 *
 * Against diffusers: the vae_a and vae_b fixtures (random weights, made by
 * tests/dit/golden/make_golden.py), and the final latents of the pipe_a
 * WanPipeline run, decode to the reference video within a relative L2
 * error of 1e-4. Against itself: decoding is causal (the first
 * frames of a longer video equal the decode of its first latent frames),
 * a missing or misshapen tensor is refused by name, the tensors it reads
 * for the published Wan2.1 config are exactly the checkpoint's decoder
 * tensors, and config values it does not implement are refused by key.
 *
 * Usage: test_wan_vae [fixture dir] (default tests/dit/fixtures).
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

#include "st.h"
#include "wan_vae.h"

/* ---- helpers ---- */

static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / (float)0x1000000 * 2.0f - 1.0f;
}

static char *tmp_path(const char *suffix)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/test_wan_vae_XXXXXX", dir);
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    close(fd);
    unlink(tmpl);
    char *p = malloc(strlen(tmpl) + strlen(suffix) + 1);
    strcpy(p, tmpl);
    strcat(p, suffix);
    return p;
}

/* A small Wan2.1-shaped decoder: three levels, both temporal upsamplers,
 * a shortcut conv in every block after the first. */
static wan_vae_config tiny_config(void)
{
    wan_vae_config c;
    memset(&c, 0, sizeof c);
    c.base_dim = c.decoder_base_dim = 4;
    c.z_dim = 3;
    c.n_levels = 3;
    c.dim_mult[0] = 1, c.dim_mult[1] = 2, c.dim_mult[2] = 2;
    c.num_res_blocks = 1;
    c.temperal_downsample[0] = 1, c.temperal_downsample[1] = 1;
    for (int i = 0; i < c.z_dim; i++) {
        c.latents_mean[i] = 0.1f * (float)i - 0.1f;
        c.latents_std[i] = 1.0f + 0.5f * (float)i;
    }
    c.out_channels = 3;
    c.scale_factor_temporal = 4;
    c.scale_factor_spatial = 4;
    return c;
}

enum { MUT_NONE, MUT_DROP, MUT_RESHAPE };

/* Write a safetensors file holding random weights for every tensor cfg
 * needs; `mutate` drops or reshapes the tensor named `victim`. Weights are
 * scaled by 1/sqrt(fan in) so activations stay of order one. */
static void write_weights(const char *path, const wan_vae_config *cfg, int mutate,
                          const char *victim)
{
    int n = wan_vae_expected_tensors(cfg, NULL, 0);
    assert_true(n > 0);
    wan_vae_tensor_spec *sp = calloc((size_t)n, sizeof *sp);
    assert_int_equal(wan_vae_expected_tensors(cfg, sp, (size_t)n), n);
    size_t hcap = 64 + (size_t)n * 200, hlen = 0, off = 0;
    char *hdr = malloc(hcap);
    hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "{");
    size_t *nel = calloc((size_t)n, sizeof *nel);
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (mutate == MUT_DROP && !strcmp(sp[i].name, victim))
            continue;
        if (mutate == MUT_RESHAPE && !strcmp(sp[i].name, victim))
            sp[i].shape[0] += 1;
        nel[i] = 1;
        for (int k = 0; k < sp[i].ndim; k++)
            nel[i] *= (size_t)sp[i].shape[k];
        hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                                 first ? "" : ",", sp[i].name);
        for (int k = 0; k < sp[i].ndim; k++)
            hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "%s%lld", k ? "," : "",
                                     (long long)sp[i].shape[k]);
        hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "],\"data_offsets\":[%zu,%zu]}", off,
                                 off + nel[i] * 4);
        off += nel[i] * 4;
        first = 0;
    }
    hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "}");
    assert_true(hlen < hcap);
    while (hlen % 8)
        hdr[hlen++] = ' ';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = hlen;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, hlen, f);
    uint64_t seed = 5;
    for (int i = 0; i < n; i++) {
        if (!nel[i])
            continue;
        const char *nm = sp[i].name;
        size_t len = strlen(nm);
        int is_gamma = len > 6 && !strcmp(nm + len - 6, ".gamma");
        int is_bias = len > 5 && !strcmp(nm + len - 5, ".bias");
        double fan_in = sp[i].ndim > 1 ? (double)nel[i] / (double)sp[i].shape[0] : 1.0;
        for (size_t j = 0; j < nel[i]; j++) {
            float r = frand(&seed), v;
            if (is_gamma)
                v = 1.0f + 0.2f * r;
            else if (is_bias)
                v = 0.1f * r;
            else
                v = r * (float)sqrt(3.0 / fan_in);
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
    free(hdr), free(nel), free(sp);
}

static wan_vae *tiny_vae(const char *path)
{
    wan_vae_config cfg = tiny_config();
    write_weights(path, &cfg, MUT_NONE, NULL);
    char err[512];
    st_set *set;
    assert_int_equal(st_open(path, &set, err, sizeof err), 0);
    wan_vae *v = NULL;
    if (wan_vae_new(&cfg, set, &v, err, sizeof err))
        fail_msg("%s", err);
    st_free(set);
    return v;
}

/* ---- against diffusers ---- */

/* Decode `latents_key` of io file `io_name` with the VAE `name` and compare
 * with its `video`. */
static void check_fixture(const char *dir, const char *name, const char *io_name,
                          const char *latents_key)
{
    char path[1024], err[512];
    wan_vae_config cfg;
    snprintf(path, sizeof path, "%s/%s.config.json", dir, name);
    if (wan_vae_config_load(path, &cfg, err, sizeof err))
        fail_msg("%s", err);
    st_set *w, *io;
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    if (st_open(path, &w, err, sizeof err))
        fail_msg("%s", err);
    wan_vae *v;
    if (wan_vae_new(&cfg, w, &v, err, sizeof err))
        fail_msg("%s", err);
    st_free(w);
    snprintf(path, sizeof path, "%s/%s.io.safetensors", dir, io_name);
    if (st_open(path, &io, err, sizeof err))
        fail_msg("%s", err);
    const st_tensor *lt = st_find(io, latents_key), *vt = st_find(io, "video");
    assert_non_null(lt);
    assert_non_null(vt);
    assert_int_equal(lt->ndim, 5);
    assert_int_equal(vt->ndim, 5);
    int T = (int)lt->shape[2], h = (int)lt->shape[3], w_ = (int)lt->shape[4];
    int F = wan_vae_out_frames(T), s = cfg.scale_factor_spatial;
    assert_int_equal(lt->shape[1], cfg.z_dim);
    assert_int_equal(vt->shape[1], 3);
    assert_int_equal(vt->shape[2], F);
    assert_int_equal(vt->shape[3], h * s);
    assert_int_equal(vt->shape[4], w_ * s);
    size_t nl = (size_t)cfg.z_dim * T * h * w_, nv = (size_t)3 * F * h * s * w_ * s;
    float *lat = malloc(nl * sizeof *lat), *want = malloc(nv * sizeof *want),
          *got = malloc(nv * sizeof *got);
    if (st_load(io, latents_key, 5, lt->shape, lat, err, sizeof err) ||
        st_load(io, "video", 5, vt->shape, want, err, sizeof err))
        fail_msg("%s", err);
    if (wan_vae_decode(v, lat, T, h, w_, got, err, sizeof err))
        fail_msg("%s", err);
    double num = 0, den = 0, maxd = 0;
    for (size_t i = 0; i < nv; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
        maxd = fabs(d) > maxd ? fabs(d) : maxd;
    }
    double rel = sqrt(num / den);
    printf("%s (%s): T=%d latent %dx%d -> %d frames of %dx%d  rel_l2=%.3e max_abs=%.3e\n", io_name,
           name, T, h, w_, F, h * s, w_ * s, rel, maxd);
    assert_true(rel < 1e-4);
    free(lat), free(want), free(got);
    st_free(io);
    wan_vae_free(v);
}

static void decode_matches_diffusers_vae_a(void **state)
{
    check_fixture((const char *)*state, "vae_a", "vae_a", "latents");
}

static void decode_matches_diffusers_vae_b(void **state)
{
    check_fixture((const char *)*state, "vae_b", "vae_b", "latents");
}

/* The end of a whole WanPipeline run: its final latents through vae_a. */
static void decode_matches_wanpipeline_pipe_a(void **state)
{
    check_fixture((const char *)*state, "vae_a", "pipe_a", "latents_final");
}

/* ---- against itself ---- */

/* Output frame f may depend only on the latent frames that produced it and
 * those before: decoding the first k latent frames must give exactly the
 * first 4k-3 frames of the full decode. This is what makes frame-by-frame
 * streaming with caches a faithful form of the whole-video graph. */
static void decode_is_causal_and_clamped(void **state)
{
    (void)state;
    char *path = tmp_path(".safetensors");
    wan_vae *v = tiny_vae(path);
    const wan_vae_config *cfg = wan_vae_get_config(v);
    int T = 3, h = 3, w = 5, z = cfg->z_dim, s = cfg->scale_factor_spatial;
    size_t hw = (size_t)h * w, HW = hw * s * s;
    float *lat = malloc((size_t)z * T * hw * sizeof *lat);
    uint64_t seed = 77;
    for (size_t i = 0; i < (size_t)z * T * hw; i++)
        lat[i] = 2.0f * frand(&seed);
    int F = wan_vae_out_frames(T);
    float *full = malloc((size_t)3 * F * HW * sizeof *full);
    char err[512];
    if (wan_vae_decode(v, lat, T, h, w, full, err, sizeof err))
        fail_msg("%s", err);
    int lo = 0, hi = 0;
    for (size_t i = 0; i < (size_t)3 * F * HW; i++) {
        assert_true(full[i] >= -1.0f && full[i] <= 1.0f);
        lo += full[i] > -1.0f, hi += full[i] < 1.0f;
    }
    assert_true(lo > 0 && hi > 0); /* not saturated: the comparison means something */
    for (int k = 1; k < T; k++) {
        float *sub = malloc((size_t)z * k * hw * sizeof *sub);
        for (int c = 0; c < z; c++)
            memcpy(sub + (size_t)c * k * hw, lat + (size_t)c * T * hw,
                   (size_t)k * hw * sizeof *sub);
        int Fk = wan_vae_out_frames(k);
        float *part = malloc((size_t)3 * Fk * HW * sizeof *part);
        if (wan_vae_decode(v, sub, k, h, w, part, err, sizeof err))
            fail_msg("%s", err);
        for (int c = 0; c < 3; c++)
            for (int f = 0; f < Fk; f++) {
                const float *a = part + ((size_t)c * Fk + f) * HW;
                const float *b = full + ((size_t)c * F + f) * HW;
                for (size_t p = 0; p < HW; p++)
                    assert_true(fabsf(a[p] - b[p]) <= 1e-6f);
            }
        free(sub), free(part);
    }
    /* the same decoder decodes again from a clean state */
    float *again = malloc((size_t)3 * F * HW * sizeof *again);
    assert_int_equal(wan_vae_decode(v, lat, T, h, w, again, err, sizeof err), 0);
    assert_memory_equal(again, full, (size_t)3 * F * HW * sizeof *full);
    assert_int_equal(wan_vae_decode(v, lat, 0, h, w, again, err, sizeof err), -1);
    assert_non_null(strstr(err, "T=0"));
    free(again), free(lat), free(full);
    wan_vae_free(v);
    unlink(path);
    free(path);
}

static void expect_new_fails(int mutate, const char *victim, const char *const *needles)
{
    wan_vae_config cfg = tiny_config();
    char *path = tmp_path(".safetensors");
    write_weights(path, &cfg, mutate, victim);
    char err[512];
    st_set *set;
    assert_int_equal(st_open(path, &set, err, sizeof err), 0);
    wan_vae *v = NULL;
    assert_int_equal(wan_vae_new(&cfg, set, &v, err, sizeof err), -1);
    assert_null(v);
    printf("refused: %s\n", err);
    for (const char *const *n = needles; *n; n++)
        if (!strstr(err, *n))
            fail_msg("error '%s' lacks '%s'", err, *n);
    st_free(set);
    unlink(path);
    free(path);
}

static void missing_tensor_is_named(void **state)
{
    (void)state;
    const char *needles[] = {"decoder.up_blocks.1.resnets.0.conv_shortcut.weight", "missing",
                             "[8, 4, 1, 1, 1]", NULL};
    expect_new_fails(MUT_DROP, "decoder.up_blocks.1.resnets.0.conv_shortcut.weight", needles);
}

static void wrong_shape_is_named(void **state)
{
    (void)state;
    const char *needles[] = {"decoder.mid_block.attentions.0.to_qkv.weight", "[25, 8, 1, 1]",
                             "[24, 8, 1, 1]", NULL};
    expect_new_fails(MUT_RESHAPE, "decoder.mid_block.attentions.0.to_qkv.weight", needles);
}

/* The published checkpoint (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, vae/): every
 * decoder-side tensor it holds is one the loader reads, with the same
 * shape, and the loader reads nothing else. */
static void expected_tensors_match_published_wan21(void **state)
{
    const char *dir = (const char *)*state;
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/wan21_t2v_1.3b/vae.tensors.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("no %s: published tensor list not checked\n", path);
        skip();
    }
    snprintf(path, sizeof path, "%s/wan21_t2v_1.3b/vae.config.json", dir);
    wan_vae_config cfg;
    if (wan_vae_config_load(path, &cfg, err, sizeof err))
        fail_msg("%s", err);
    int n = wan_vae_expected_tensors(&cfg, NULL, 0);
    assert_true(n > 0);
    wan_vae_tensor_spec *sp = calloc((size_t)n, sizeof *sp);
    int *seen = calloc((size_t)n, sizeof *seen);
    assert_int_equal(wan_vae_expected_tensors(&cfg, sp, (size_t)n), n);
    char line[512];
    int listed = 0;
    while (fgets(line, sizeof line, f)) {
        char name[256], dtype[16];
        int64_t shape[8];
        int nd = 0, used = 0;
        if (sscanf(line, "%255s %15s%n", name, dtype, &used) != 2)
            continue;
        if (strncmp(name, "decoder.", 8) && strncmp(name, "post_quant_conv.", 16))
            continue;
        const char *p = line + used;
        long long d;
        int k;
        while (nd < 8 && sscanf(p, "%lld%n", &d, &k) == 1)
            shape[nd++] = d, p += k;
        listed++;
        int found = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(sp[i].name, name))
                found = i;
        if (found < 0)
            fail_msg("checkpoint tensor %s is not read by the decoder", name);
        seen[found]++;
        assert_int_equal(sp[found].ndim, nd);
        for (int i = 0; i < nd; i++)
            if (sp[found].shape[i] != shape[i])
                fail_msg("%s: checkpoint dim %d is %lld, decoder expects %lld", name, i,
                         (long long)shape[i], (long long)sp[found].shape[i]);
    }
    fclose(f);
    for (int i = 0; i < n; i++)
        if (seen[i] != 1)
            fail_msg("decoder tensor %s appears %d times in the checkpoint list", sp[i].name,
                     seen[i]);
    printf("published Wan2.1 VAE: %d decoder tensors, all expected\n", listed);
    assert_int_equal(listed, n);
    free(sp), free(seen);
}

/* ---- config ---- */

static int load_json(const char *text, wan_vae_config *cfg, char *err, size_t errlen)
{
    char *path = tmp_path(".json");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    int rc = wan_vae_config_load(path, cfg, err, errlen);
    unlink(path);
    free(path);
    return rc;
}

static void config_defaults_are_wan21(void **state)
{
    (void)state;
    wan_vae_config c;
    char err[512];
    if (load_json("{\"_class_name\": \"AutoencoderKLWan\", \"decoder_base_dim\": null}", &c, err,
                  sizeof err))
        fail_msg("%s", err);
    assert_int_equal(c.base_dim, 96);
    assert_int_equal(c.decoder_base_dim, 96);
    assert_int_equal(c.z_dim, 16);
    assert_int_equal(c.n_levels, 4);
    assert_int_equal(c.scale_factor_spatial, 8);
    assert_true(c.temperal_downsample[0] == 0 && c.temperal_downsample[1] &&
                c.temperal_downsample[2]);
    assert_true(fabsf(c.latents_std[15] - 1.9160f) < 1e-6f);
    int n = wan_vae_expected_tensors(&c, NULL, 0);
    assert_true(n > 100);
}

static void config_refuses_what_it_does_not_implement(void **state)
{
    (void)state;
    static const struct {
        const char *json, *key;
    } cases[] = {
        {"{\"is_residual\": true}", "is_residual"},
        {"{\"patch_size\": 2}", "patch_size"},
        {"{\"clip_output\": true}", "clip_output"},
        {"{\"temperal_downsample\": [false, false, true]}", "temperal_downsample"},
        {"{\"temperal_downsample\": [true, true]}", "temperal_downsample"},
        {"{\"out_channels\": 4}", "out_channels"},
        {"{\"scale_factor_spatial\": 16}", "scale_factor_spatial"},
        {"{\"z_dim\": 8}", "latents_mean"},
        {"{\"z_dim\": \"16\"}", "z_dim"},
        {"{\"base_dim\": 3, \"dim_mult\": [1, 1, 1, 1]}", "dim_mult"},
        {"[1, 2]", "not a JSON object"},
        {"{\"z_dim\": ", "line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wan_vae_config c;
        char err[512] = "";
        assert_int_equal(load_json(cases[i].json, &c, err, sizeof err), -1);
        if (!strstr(err, cases[i].key))
            fail_msg("%s: error '%s' does not name '%s'", cases[i].json, err, cases[i].key);
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/dit/fixtures";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(decode_matches_diffusers_vae_a, (void *)dir),
        cmocka_unit_test_prestate(decode_matches_diffusers_vae_b, (void *)dir),
        cmocka_unit_test_prestate(decode_matches_wanpipeline_pipe_a, (void *)dir),
        cmocka_unit_test(decode_is_causal_and_clamped),
        cmocka_unit_test(missing_tensor_is_named),
        cmocka_unit_test(wrong_shape_is_named),
        cmocka_unit_test_prestate(expected_tensors_match_published_wan21, (void *)dir),
        cmocka_unit_test(config_defaults_are_wan21),
        cmocka_unit_test(config_refuses_what_it_does_not_implement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
