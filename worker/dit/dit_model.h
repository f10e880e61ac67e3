/* dit_model — a Wan2.1 text-to-video model directory loaded for R
 * tensor-parallel ranks, the prompt embeddings it is run with, and the two
 * halves of one segment's work on it: denoising (all ranks) and decoding.
 *
 * The directory is laid out as diffusers saves a pipeline, which is how
 * the published Wan2.1-T2V-1.3B-Diffusers checkpoint comes:
 *
 *     DIR/transformer/config.json          WanTransformer3DModel
 *     DIR/transformer/ (.safetensors)      one file, or shards + index
 *     DIR/vae/config.json                  AutoencoderKLWan
 *     DIR/vae/ (.safetensors)              one file
 *     DIR/scheduler/scheduler_config.json  UniPC (or FlowMatchEuler)
 *
 * (the text encoder and tokenizer folders, if present, are not read: the
 * prompt arrives as embeddings). Weights are converted to float32 once, at
 * load; a rank holds only its share of the transformer; the VAE decoder
 * is held once and runs on the caller's thread.
 *
 * Ranks are threads: the group's R ranks run a segment's denoising loop
 * side by side (rank 0 on the caller's thread) and meet in the
 * transformer's all-reduces. Every rank stops at the same step because
 * the stop request is itself all-reduced after each step; a rank that
 * stopped alone would leave the others waiting in a collective for ever.
 */
#ifndef DIT_MODEL_H
#define DIT_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fm_sched.h"
#include "wan_tf.h"
#include "wan_vae.h"

typedef struct dit_model dit_model;

/* Load DIR for `ranks` ranks (1..64, at most the transformer's heads).
 * Every failure names the file and, for weights, the tensor (st, wan_tf
 * and wan_vae say what is wrong). On success *out is owned by the caller
 * (dit_model_free). */
int dit_model_load(const char *dir, int ranks, dit_model **out, char *err, size_t errlen);
void dit_model_free(dit_model *m);

const wan_tf_config *dit_model_tf_config(const dit_model *m);
const wan_vae_config *dit_model_vae_config(const dit_model *m);
/* The directory's scheduler, as scheduler_config.json describes it. */
const fm_sched_config *dit_model_sched_config(const dit_model *m);
int dit_model_ranks(const dit_model *m);
/* Float32 bytes of transformer weights held by all ranks together. */
uint64_t dit_model_weight_bytes(const dit_model *m);

/* Prompt embeddings as the text encoder left them: `prompt_embeds`
 * [L, text_dim] or [1, L, text_dim], and optionally
 * `negative_prompt_embeds` (the unconditional branch of guidance). */
typedef struct {
    float *cond;
    int cond_len;
    float *uncond; /* NULL when the file has none */
    int uncond_len;
    int dim;
} dit_embeds;

/* Read a safetensors file of embeddings for a model of text_dim. On
 * success *out is owned by the caller (dit_embeds_free). */
int dit_embeds_load(const char *path, int text_dim, dit_embeds **out, char *err, size_t errlen);
void dit_embeds_free(dit_embeds *e);

typedef struct {
    fm_sched_config sched; /* the sampler to run */
    int steps;
    float guidance; /* classifier-free guidance when > 1 */
    const dit_embeds *embeds;
    int frames, height, width; /* latent shape; multiples of the patch */
    uint64_t seed;
    int64_t first_latent_frame; /* absolute: where the segment's noise starts */
    const atomic_int *stop;     /* may be NULL */
} dit_gen_args;

/* Denoise one segment's latents ([C, frames, height, width], C the
 * transformer's channels) from dit_noise's noise for (seed, absolute latent
 * frame). Returns 0; 1 when *stop was seen between two steps (err says at
 * which); -1 with err on failure. */
int dit_model_generate(dit_model *m, const dit_gen_args *a, float *latents, char *err,
                       size_t errlen);

/* Decode latents [z_dim, T, h, w] to rgb [3, 4T-3, h*s, w*s] in [-1, 1]
 * (wan_vae_decode). */
int dit_model_decode(dit_model *m, const float *latents, int T, int h, int w, float *rgb, char *err,
                     size_t errlen);

#endif
