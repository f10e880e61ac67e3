/* engine_dit — the native engine: Wan2.1 text-to-video in C, one segment at
 * a time.
 *
 * A segment is rendered as WanPipeline renders a video, with two changes
 * that make segments of one job agree where they overlap:
 *   - its initial noise is dit_noise's, addressed by absolute latent frame
 *     (first_frame / 4), so overlapping segments start from the same noise
 *     on the latent frames they share;
 *   - it starts on a frame that is a multiple of 4 and holds 4n+1 frames
 *     (engine_frame_step): the VAE decodes T latent frames to 4T-3, latent
 *     frame 0 to one frame and every later one to four, so a segment
 *     starting at 4k maps its latent frame j to exactly the frames latent
 *     frame k+j would give in one long render.
 *
 * The work: lease the model and the prompt embeddings from the worker's
 * cache (dit_cache: loaded once, reused while segments name the same
 * files), denoise with the model's ranks, decode with the VAE, convert
 * each frame to I420 (BT.709, limited range; kernels/yuv.h) and hand it
 * over in order. A stop request is honoured between denoising steps.
 *
 * Parameters are checked by the same parser on the coordinator (at
 * submission) and on the worker. The coordinator may not see the files a
 * worker sees, so there only their form is checked (absolute paths); a
 * worker that cannot read them fails the segment with the reason.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_cache.h"
#include "engine_impl.h"
#include "rf_util.h"
#include "yuv.h"

#define DIT_PATH_MAX 1024
#define DIT_FRAME_STEP 4 /* the VAE's temporal factor; wan_vae refuses any other */
#define STEPS_DEFAULT 50 /* WanPipeline's num_inference_steps */
#define GUIDANCE_DEFAULT 5.0 /* WanPipeline's guidance_scale */

typedef struct {
    char model[DIT_PATH_MAX];
    char embeds[DIT_PATH_MAX];
    int steps;
    double guidance;
    double shift; /* 0: the model's scheduler config */
    int sampler;  /* -1: the model's scheduler; else an fm_kind */
    int ranks;
} dit_params;

/* ---- parameters ---- */

static int read_path(const json_t *v, const char *name, const char *what, char *out, char *errs,
                     size_t errlen) {
    if (!v) {
        engine_add_problem(errs, errlen, "params.%s: is required (%s)", name, what);
        return 1;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s) {
        engine_add_problem(errs, errlen, "params.%s: must be a string (%s)", name, what);
        return 1;
    }
    char shown[80];
    engine_printable_key(s, shown, sizeof shown);
    if (s[0] != '/') {
        engine_add_problem(errs, errlen,
                           "params.%s: must be an absolute path, as the workers see it (got '%s')",
                           name, shown);
        return 1;
    }
    if (strlen(s) >= DIT_PATH_MAX) {
        engine_add_problem(errs, errlen, "params.%s: must be shorter than %d bytes", name,
                           DIT_PATH_MAX);
        return 1;
    }
    strcpy(out, s);
    return 0;
}

static int read_number(const json_t *v, const char *name, double lo, double hi, int lo_open,
                       double *out, char *errs, size_t errlen) {
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi)) {
        engine_add_problem(errs, errlen, "params.%s: must be a number %s %g and at most %g", name,
                           lo_open ? "above" : "of at least", lo, hi);
        return 1;
    }
    *out = x;
    return 0;
}

static int read_int(const json_t *v, const char *name, int lo, int hi, int *out, char *errs,
                    size_t errlen) {
    json_int_t x = json_is_integer(v) ? json_integer_value(v) : (json_int_t)lo - 1;
    if (x < lo || x > hi) {
        engine_add_problem(errs, errlen, "params.%s: must be an integer between %d and %d", name,
                           lo, hi);
        return 1;
    }
    *out = (int)x;
    return 0;
}

/* Parse and check params_json into *p. Returns the number of problems,
 * each appended to errs as a line. */
static int dit_parse(const char *params_json, dit_params *p, char *errs, size_t errlen) {
    memset(p, 0, sizeof *p);
    p->steps = STEPS_DEFAULT;
    p->guidance = GUIDANCE_DEFAULT;
    p->sampler = -1;
    p->ranks = 1;
    json_error_t jerr;
    json_t *root = json_loads(params_json ? params_json : "", JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        engine_add_problem(errs, errlen, "params: must be a JSON object");
        return 1;
    }
    int problems = 0;
    problems += read_path(json_object_get(root, "model"), "model",
                          "a Wan2.1 model directory as diffusers saves it", p->model, errs, errlen);
    problems += read_path(json_object_get(root, "prompt_embeds"), "prompt_embeds",
                          "a safetensors file with the prompt's text-encoder embeddings", p->embeds,
                          errs, errlen);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "model") == 0 || strcmp(key, "prompt_embeds") == 0) {
            continue;
        } else if (strcmp(key, "steps") == 0) {
            problems += read_int(v, key, 1, 1000, &p->steps, errs, errlen);
        } else if (strcmp(key, "guidance") == 0) {
            problems += read_number(v, key, 0.0, 100.0, 0, &p->guidance, errs, errlen);
        } else if (strcmp(key, "shift") == 0) {
            problems += read_number(v, key, 0.0, 100.0, 1, &p->shift, errs, errlen);
        } else if (strcmp(key, "ranks") == 0) {
            problems += read_int(v, key, 1, 64, &p->ranks, errs, errlen);
        } else if (strcmp(key, "sampler") == 0) {
            const char *s = json_is_string(v) ? json_string_value(v) : "";
            if (strcmp(s, "unipc") == 0) {
                p->sampler = FM_UNIPC;
            } else if (strcmp(s, "euler") == 0) {
                p->sampler = FM_EULER;
            } else {
                engine_add_problem(errs, errlen, "params.sampler: must be \"unipc\" or \"euler\"");
                problems++;
            }
        } else {
            problems += engine_unknown_param(errs, errlen, "dit", key);
        }
    }
    json_decref(root);
    return problems;
}

int engine_dit_check(const char *params_json, char *errs, size_t errlen) {
    dit_params p;
    return dit_parse(params_json, &p, errs, errlen);
}

/* ---- cache hooks for engine.c ---- */

int engine_dit_cache_new(struct dit_cache **out, char *err, size_t errlen) {
    return dit_cache_new(out, err, errlen);
}

void engine_dit_cache_free(struct dit_cache *c) { dit_cache_free(c); }

/* ---- rendering ---- */

static int stopped(const engine_io *io) { return io->stop && atomic_load(io->stop) != 0; }

static void say(const engine_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const engine_io *io, const char *fmt, ...) {
    if (!io->log)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    io->log(io->ctx, line);
}

/* A frame size the model can take: a multiple of the VAE's spatial factor
 * times the transformer's patch. */
static int check_side(const char *name, uint32_t v, int mult, int vae, int patch, char *err,
                      size_t errlen) {
    if (v % (uint32_t)mult == 0)
        return 0;
    uint32_t lo = v / (uint32_t)mult * (uint32_t)mult, hi = lo + (uint32_t)mult;
    snprintf(err, errlen,
             "dit: %s: %u is not a multiple of %d, which this model needs (its VAE's spatial "
             "factor %d times its transformer's patch %d); e.g. %u or %u",
             name, v, mult, vae, patch, lo ? lo : hi, lo ? hi : hi + (uint32_t)mult);
    return -1;
}

/* The sampler this segment runs: the model's scheduler, switched to the
 * other kind (with that kind's Wan defaults) when params ask for it, with
 * the flow shift params may override. */
static fm_sched_config pick_sampler(const dit_model *m, const dit_params *p) {
    fm_sched_config sc = *dit_model_sched_config(m);
    if (p->sampler >= 0 && (fm_kind)p->sampler != sc.kind) {
        double shift = sc.shift;
        fm_sched_config_default((fm_kind)p->sampler, &sc);
        sc.shift = shift;
    }
    if (p->shift > 0.0)
        sc.shift = p->shift;
    return sc;
}

/* Decode and deliver. rgb is [3, frames, H, W]. */
static int deliver(const engine_segment *seg, const engine_io *io, const float *rgb, char *err,
                   size_t errlen) {
    size_t hw = (size_t)seg->width * seg->height, plane = hw * seg->frames;
    size_t len = rf_i420_bytes(seg->width, seg->height);
    uint8_t *buf = malloc(len);
    if (!buf) {
        snprintf(err, errlen, "dit: out of memory for a %ux%u frame", seg->width, seg->height);
        return -1;
    }
    int rc = 0;
    for (uint32_t i = 0; i < seg->frames; i++) {
        const float *r = rgb + i * hw;
        uint8_t *out = io->buffer ? io->buffer(io->ctx, len) : NULL; /* sent as it is */
        if (!out)
            out = buf;
        kn_rgbf_to_i420(r, r + plane, r + 2 * plane, (int)seg->width, (int)seg->height, out);
        if (io->frame && io->frame(io->ctx, seg->first_frame + i, out, len) != 0) {
            snprintf(err, errlen, "dit: the frame receiver stopped the segment at frame %u",
                     seg->first_frame + i);
            rc = -1;
            break;
        }
    }
    free(buf);
    return rc;
}

/* The segment on a leased model. *keep = 0 when the model should not be
 * reused (its ranks failed mid-step). */
static int render_leased(const engine_segment *seg, const engine_io *io, const dit_params *p,
                         const dit_lease *lease, int *keep, char *err, size_t errlen) {
    dit_model *m = lease->model;
    const wan_tf_config *tc = dit_model_tf_config(m);
    const wan_vae_config *vc = dit_model_vae_config(m);
    int s = vc->scale_factor_spatial;
    if (check_side("width", seg->width, s * tc->patch[2], s, tc->patch[2], err, errlen) != 0 ||
        check_side("height", seg->height, s * tc->patch[1], s, tc->patch[1], err, errlen) != 0)
        return -1;
    int T = (int)(seg->frames - 1) / DIT_FRAME_STEP + 1;
    if (T % tc->patch[0] != 0) {
        snprintf(err, errlen, "dit: frames: a segment of %u frames is %d latent frames, not a "
                 "multiple of the transformer's temporal patch %d", seg->frames, T, tc->patch[0]);
        return -1;
    }
    if (p->guidance > 1.0 && !lease->embeds->uncond) {
        snprintf(err, errlen,
                 "dit: params.guidance: %g needs negative_prompt_embeds, and %s has none (add "
                 "the negative prompt's embeddings, or set guidance to 1)",
                 p->guidance, p->embeds);
        return -1;
    }
    int h = (int)seg->height / s, w = (int)seg->width / s, C = tc->in_channels;
    size_t nlat = (size_t)C * (size_t)T * (size_t)h * (size_t)w;
    size_t nrgb = (size_t)3 * seg->frames * seg->width * seg->height;
    float *latents = malloc(nlat * sizeof *latents);
    float *rgb = latents ? malloc(nrgb * sizeof *rgb) : NULL;
    if (!rgb) {
        free(latents);
        snprintf(err, errlen, "dit: out of memory for a segment of %u frames of %ux%u (%zu MB)",
                 seg->frames, seg->width, seg->height, (nlat + nrgb) * sizeof(float) >> 20);
        return -1;
    }
    dit_gen_args ga = {.sched = pick_sampler(m, p),
                       .steps = p->steps,
                       .guidance = (float)p->guidance,
                       .embeds = lease->embeds,
                       .frames = T,
                       .height = h,
                       .width = w,
                       .seed = seg->seed,
                       .first_latent_frame = seg->first_frame / DIT_FRAME_STEP,
                       .stop = io->stop};
    char inner[1024];
    uint64_t t0 = rf_mono_ms();
    int rc = dit_model_generate(m, &ga, latents, inner, sizeof inner);
    if (rc == 1) {
        snprintf(err, errlen, "stopped (%s)", inner);
        rc = -1;
    } else if (rc != 0) {
        snprintf(err, errlen, "dit: denoising: %s", inner);
        *keep = 0;
    } else {
        uint64_t t1 = rf_mono_ms();
        say(io, "dit: denoised latents=%dx%dx%dx%d steps=%d sampler=%s shift=%g guidance=%g "
            "ranks=%d ms=%llu", C, T, h, w, p->steps, ga.sched.kind == FM_UNIPC ? "unipc" : "euler",
            ga.sched.shift, p->guidance, dit_model_ranks(m), (unsigned long long)(t1 - t0));
        if (dit_model_decode(m, latents, T, h, w, rgb, inner, sizeof inner) != 0) {
            snprintf(err, errlen, "dit: decoding: %s", inner);
            rc = -1;
        } else {
            say(io, "dit: decoded frames=%u size=%ux%u ms=%llu", seg->frames, seg->width,
                seg->height, (unsigned long long)(rf_mono_ms() - t1));
            rc = deliver(seg, io, rgb, err, errlen);
        }
    }
    free(latents);
    free(rgb);
    return rc;
}

int engine_dit_render(const engine_segment *seg, const engine_io *io, char *err, size_t errlen) {
    dit_params p;
    char problems[1024] = "";
    if (dit_parse(seg->params_json, &p, problems, sizeof problems) != 0) {
        problems[strcspn(problems, "\n")] = '\0';
        snprintf(err, errlen, "dit: %s", problems);
        return -1;
    }
    if (seg->frames == 0 || seg->first_frame % DIT_FRAME_STEP || seg->frames % DIT_FRAME_STEP != 1) {
        snprintf(err, errlen,
                 "dit: a segment must start on a multiple of %d and hold %dn+1 frames; got %u "
                 "frames from frame %u (the spec check and the planner should have prevented "
                 "this)",
                 DIT_FRAME_STEP, DIT_FRAME_STEP, seg->frames, seg->first_frame);
        return -1;
    }
    if (seg->width % 2 || seg->height % 2 || seg->width == 0 || seg->height == 0) {
        snprintf(err, errlen, "dit: frame size %ux%u must be even and positive", seg->width,
                 seg->height);
        return -1;
    }
    if (stopped(io)) {
        snprintf(err, errlen, "stopped");
        return -1;
    }
    dit_cache *cache = io->cache ? io->cache->dit : NULL;
    dit_lease lease;
    char inner[1536];
    uint64_t t0 = rf_mono_ms();
    if (dit_cache_acquire(cache, p.model, p.ranks, p.embeds, &lease, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "dit: %s", inner);
        return -1;
    }
    if (lease.model_reused)
        say(io, "dit: model reused model=%s ranks=%d", p.model, p.ranks);
    else
        say(io, "dit: model loaded model=%s ranks=%d weights_mb=%llu ms=%llu", p.model, p.ranks,
            (unsigned long long)(dit_model_weight_bytes(lease.model) >> 20),
            (unsigned long long)(rf_mono_ms() - t0));
    int keep = 1;
    int rc = render_leased(seg, io, &p, &lease, &keep, err, errlen);
    dit_cache_release(cache, &lease, keep);
    return rc;
}
