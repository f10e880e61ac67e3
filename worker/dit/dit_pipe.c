/* dit_pipe — one segment's denoising loop (see dit_pipe.h).
 *
 * The loop owns two scratch buffers of the latent size (the conditional
 * and unconditional velocity predictions); everything else lives in the
 * transformer and the scheduler. The transformer always sees the sampler's
 * timestep as a float: UniPC's are integers, which float32 holds exactly.
 */
#include "dit_pipe.h"

#include <stdio.h>
#include <stdlib.h>

#include "dit_noise.h"

static int check_args(const dit_pipe_args *a, size_t *n, char *err, size_t errlen) {
    if (a->channels <= 0 || a->frames <= 0 || a->height <= 0 || a->width <= 0) {
        snprintf(err, errlen, "dit_pipe: latent shape [C=%d, F=%d, H=%d, W=%d] has a dimension that is not positive",
                 a->channels, a->frames, a->height, a->width);
        return -1;
    }
    if (!a->ctx || a->ctx_len <= 0) {
        snprintf(err, errlen, "dit_pipe: no prompt embedding (ctx is %s, ctx_len %d)", a->ctx ? "set" : "NULL",
                 a->ctx_len);
        return -1;
    }
    if (a->guidance > 1.0f && (!a->ctx_uncond || a->ctx_uncond_len <= 0)) {
        snprintf(err, errlen,
                 "dit_pipe: guidance %g needs a negative-prompt embedding (ctx_uncond is %s, ctx_uncond_len %d)",
                 (double)a->guidance, a->ctx_uncond ? "set" : "NULL", a->ctx_uncond_len);
        return -1;
    }
    *n = (size_t)a->channels * a->frames * a->height * a->width;
    return 0;
}

int dit_pipe_denoise(wan_tf *m, fm_sched *sched, const dit_pipe_args *a, float *latents, char *err,
                     size_t errlen) {
    size_t n;
    if (check_args(a, &n, err, errlen) != 0) return -1;
    int cfg = a->guidance > 1.0f;
    float *cond = malloc(n * sizeof(float));
    float *uncond = cfg ? malloc(n * sizeof(float)) : NULL;
    int rc = 0;
    if (!cond || (cfg && !uncond)) {
        snprintf(err, errlen, "dit_pipe: out of memory for %s%zu-float prediction buffers", cfg ? "two " : "", n);
        rc = -1;
        goto done;
    }
    int steps = fm_sched_steps(sched);
    char inner[512];
    for (int i = 0; i < steps && rc == 0; i++) {
        float t = fm_sched_timestep(sched, i);
        if (wan_tf_forward(m, latents, a->frames, a->height, a->width, t, a->ctx, a->ctx_len, cond, inner,
                           sizeof inner) != 0) {
            snprintf(err, errlen, "dit_pipe: step %d/%d (t=%g), conditional pass: %s", i, steps, (double)t, inner);
            rc = -1;
            break;
        }
        if (cfg) {
            if (wan_tf_forward(m, latents, a->frames, a->height, a->width, t, a->ctx_uncond, a->ctx_uncond_len,
                               uncond, inner, sizeof inner) != 0) {
                snprintf(err, errlen, "dit_pipe: step %d/%d (t=%g), unconditional pass: %s", i, steps, (double)t,
                         inner);
                rc = -1;
                break;
            }
            fm_cfg_combine(uncond, cond, a->guidance, cond, n);
        }
        if (fm_sched_step(sched, i, cond, latents, n, inner, sizeof inner) != 0) {
            snprintf(err, errlen, "dit_pipe: step %d/%d: %s", i, steps, inner);
            rc = -1;
            break;
        }
        if (a->on_step && (rc = a->on_step(a->user, i, steps, latents)) != 0)
            snprintf(err, errlen, "dit_pipe: stopped after step %d/%d by the caller (%d)", i, steps, rc);
    }
done:
    free(cond);
    free(uncond);
    return rc;
}

int dit_pipe_generate(wan_tf *m, fm_sched *sched, const dit_pipe_args *a, uint64_t seed,
                      int64_t first_latent_frame, float *latents, char *err, size_t errlen) {
    size_t n;
    if (check_args(a, &n, err, errlen) != 0) return -1;
    if (dit_noise_fill(seed, first_latent_frame, a->frames, a->channels, a->height, a->width, latents, err,
                       errlen) != 0)
        return -1;
    return dit_pipe_denoise(m, sched, a, latents, err, errlen);
}
