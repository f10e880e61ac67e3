/* dit_pipe — the denoising loop of one segment: initial noise, then for
 * each sampler step the transformer (twice under classifier-free
 * guidance), the guidance combination and the sampler step, as diffusers'
 * WanPipeline runs it. What comes out are the final latents [C, F, H, W],
 * still normalised; the VAE decoder (wan_vae) turns them into frames.
 *
 * Under tensor parallelism every rank of the group runs this loop with the
 * same arguments and its own fm_sched: wan_tf_forward hands every rank the
 * same full output, so the ranks' latents stay identical and no extra
 * exchange is needed.
 */
#ifndef DIT_PIPE_H
#define DIT_PIPE_H

#include <stddef.h>
#include <stdint.h>

#include "fm_sched.h"
#include "wan_tf.h"

typedef struct {
    int channels;              /* latent channels: the transformer's in_channels == out_channels */
    int frames, height, width; /* latent frames / rows / columns (multiples of the patch) */
    const float *ctx;          /* prompt embedding [ctx_len, text_dim] */
    int ctx_len;
    /* Classifier-free guidance when guidance > 1 (diffusers' rule): the
     * negative-prompt embedding; unused otherwise and may be NULL. */
    const float *ctx_uncond;
    int ctx_uncond_len;
    float guidance;
    /* Called after each step with the latents it produced (may be NULL;
     * progress reports, previews, tests); a non-zero return stops the loop
     * and dit_pipe_* returns that value with err saying so. */
    int (*on_step)(void *user, int step, int steps, const float *latents);
    void *user;
} dit_pipe_args;

/* Run every step of `sched` on `latents` (channels*frames*height*width
 * floats): on entry the initial noise, on return the final latents. The
 * scheduler restarts at step 0. */
int dit_pipe_denoise(wan_tf *m, fm_sched *sched, const dit_pipe_args *a, float *latents, char *err,
                     size_t errlen);

/* The whole segment: latents <- dit_noise for latent frames
 * [first_latent_frame, first_latent_frame + frames) of `seed`, then
 * dit_pipe_denoise. Two segments of one job that overlap start from the same
 * noise on the frames they share. */
int dit_pipe_generate(wan_tf *m, fm_sched *sched, const dit_pipe_args *a, uint64_t seed,
                      int64_t first_latent_frame, float *latents, char *err, size_t errlen);

#endif
