/* wan_tf — Wan2.1's video diffusion transformer (diffusers'
 * WanTransformer3DModel), text-to-video, forward pass on the CPU,
 * tensor-parallel over the ranks of a coll group.
 *
 * What one forward computes, for a latent video x [C_in, F, H, W], a
 * diffusion timestep t and a text embedding ctx [L, text_dim]:
 *   - patch embedding (a strided 3D convolution) to N = F/pt * H/ph * W/pw
 *     tokens of dim = num_heads * head_dim channels;
 *   - a sinusoidal timestep embedding through an MLP (temb), projected to
 *     six modulation vectors per block; the text embedding through a
 *     GELU(tanh) MLP to dim channels;
 *   - num_layers blocks of: modulated layer norm, self-attention with q and
 *     k RMS-normed across all heads and turned by a 3D rotary embedding,
 *     gated residual; optional affine layer norm, cross-attention to the
 *     text, residual; modulated layer norm, GELU(tanh) feed-forward, gated
 *     residual;
 *   - a modulated output norm, a linear head and unpatchify to
 *     [C_out, F, H, W].
 *
 * Tensor parallelism (Megatron-style): rank r of R holds heads
 * [r*nh/R, (r+1)*nh/R) of every attention's q/k/v projections (rows) and
 * the matching input columns of its output projection, and the same share
 * of the feed-forward's hidden units and of the text embedding MLP's
 * hidden units (4096 x 512 inputs: too much work to repeat on every rank);
 * partial products are summed with an all-reduce and the output biases are
 * added once, after it. The q/k RMS norm runs over all heads, so the
 * per-token sums of squares are all-reduced too. The patch and time
 * embeddings, modulation, norms and the head are small and every rank
 * holds them whole. A rank reads only its slices from the weights file.
 *
 * Text cache: everything a forward computes from the text alone (the text
 * MLP and every block's cross-attention keys and values) depends on
 * nothing else, and a sampler calls forward 2 x steps times with the same
 * two prompts. The model therefore keeps the text side of the last two
 * texts it saw (keyed by their content, compared exactly) and later
 * forwards with one of them skip that work. It costs num_layers * L * 2 *
 * dim / R floats per text per rank (Wan2.1-1.3B, 512 tokens, one rank:
 * 189 MB per text). On by default; wan_tf_set_text_cache turns it off.
 *
 * Batch size is one; classifier-free guidance calls forward twice.
 */
#ifndef WAN_TF_H
#define WAN_TF_H

#include <stddef.h>
#include <stdint.h>

#include "coll.h"
#include "st.h"

typedef struct wan_tf wan_tf;

typedef struct {
    int patch[3]; /* t, h, w */
    int num_heads, head_dim;
    int in_channels, out_channels;
    int text_dim, freq_dim, ffn_dim, num_layers;
    float eps;
    int cross_attn_norm;  /* affine layer norm before cross-attention */
    int rope_max_seq_len; /* positions the rotary tables cover per axis */
} wan_tf_config;

/* Read a diffusers transformer config.json. Unknown keys are ignored;
 * values this implementation does not support (image_dim or
 * added_kv_proj_dim set: image-to-video; qk_norm other than
 * "rms_norm_across_heads") are refused with a message naming the key. */
int wan_tf_config_load(const char *config_json_path, wan_tf_config *out, char *err,
                       size_t errlen);

/* Build this rank's shard from `weights` (diffusers state-dict names); c is
 * this rank's handle, or NULL for a single rank. The weights are copied
 * (converted to float32): the set may be freed afterwards. On success *out
 * is owned by the caller (wan_tf_free). A missing tensor or one whose shape
 * the config does not imply is an error naming it. */
int wan_tf_new(const wan_tf_config *cfg, st_set *weights, coll *c, wan_tf **out, char *err,
               size_t errlen);

/* One forward pass. Every rank of the group calls it with the same inputs
 * and every rank receives the full output. x [C_in, F, H, W], ctx
 * [L, text_dim], out [C_out, F, H, W]; F, H, W multiples of the patch.
 * Activation buffers are allocated on the first call for a shape and
 * reused by later calls of the same or a smaller shape. */
int wan_tf_forward(wan_tf *m, const float *x, int F, int H, int W, float timestep,
                   const float *ctx, int L, float *out, char *err, size_t errlen);

/* Float32 bytes of weights this rank holds. */
uint64_t wan_tf_weight_bytes(const wan_tf *m);

/* Keep (on, the default) or do not keep (off: also frees what is kept) the
 * text side of the last two texts between forwards. Results are the same
 * bit for bit either way. Ranks need not agree: a forward recomputes the
 * text side on every rank when any rank lacks it. */
void wan_tf_set_text_cache(wan_tf *m, int on);

/* Bytes this rank's text cache holds now. */
uint64_t wan_tf_text_cache_bytes(const wan_tf *m);

/* Forwards so far that took the text side from the cache. */
uint64_t wan_tf_text_cache_hits(const wan_tf *m);

void wan_tf_free(wan_tf *m);

/* A tensor a checkpoint for a config must hold. */
#define WAN_TF_NAME_MAX 96
typedef struct {
    char name[WAN_TF_NAME_MAX];
    int ndim;
    int64_t shape[5];
} wan_tf_tensor;

/* Every tensor the loader reads for cfg, in state-dict order, without
 * touching any file. On success *out (count entries) is owned by the
 * caller (free()). */
int wan_tf_expected_tensors(const wan_tf_config *cfg, wan_tf_tensor **out, size_t *count,
                            char *err, size_t errlen);

#endif
