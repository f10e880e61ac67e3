/* wan_vae — the decoder of Wan2.1's causal 3D VAE (diffusers'
 * AutoencoderKLWan, decode path only): latents as the sampler leaves them
 * in, RGB frames in [-1, 1] out.
 *
 * Decoding runs one latent frame at a time through the whole decoder, the
 * way the reference does it: every causal convolution keeps the last two
 * frames of its input from earlier chunks, so memory is bounded by one
 * chunk plus those caches whatever the length of the video. The first
 * latent frame becomes one output frame, every later one four (each
 * temporal upsampling stage doubles all chunks but the first), hence
 * 4T-3 frames for T latent frames.
 *
 * Weights come from the model's safetensors (the whole AutoencoderKLWan
 * state dict or only its decoder side); only `post_quant_conv.*` and
 * `decoder.*` are read.
 */
#ifndef WAN_VAE_H
#define WAN_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "st.h"

#define WAN_VAE_MAX_LEVELS 8
#define WAN_VAE_MAX_Z 64

typedef struct {
    int base_dim;         /* encoder's base width */
    int decoder_base_dim; /* the decoder's; base_dim when the config says null */
    int z_dim;
    int n_levels; /* entries of dim_mult */
    int dim_mult[WAN_VAE_MAX_LEVELS];
    int num_res_blocks;
    /* n_levels - 1 entries, encoder order; the decoder uses them reversed. */
    int temperal_downsample[WAN_VAE_MAX_LEVELS - 1];
    float latents_mean[WAN_VAE_MAX_Z];
    float latents_std[WAN_VAE_MAX_Z];
    int out_channels;
    int scale_factor_temporal; /* 4: implied by the layers and checked */
    int scale_factor_spatial;  /* 2^(n_levels-1): implied by the layers and checked */
} wan_vae_config;

typedef struct wan_vae wan_vae;

/* Read a diffusers AutoencoderKLWan config.json. Absent keys take
 * diffusers' defaults. Values this decoder does not implement (is_residual
 * true, a patch_size, a temporal factor other than 4, an unknown key) are
 * refused naming the key. */
int wan_vae_config_load(const char *config_json_path, wan_vae_config *out, char *err,
                        size_t errlen);

/* Check a config filled in by hand; wan_vae_config_load calls it too. */
int wan_vae_config_check(const wan_vae_config *cfg, char *err, size_t errlen);

/* Build the decoder and load its weights from `weights` (converted to
 * float32 and owned by the decoder; the set may be freed afterwards). A
 * missing or misshapen tensor is an error naming it and both shapes. On
 * success *out is owned by the caller (wan_vae_free). */
int wan_vae_new(const wan_vae_config *cfg, st_set *weights, wan_vae **out, char *err,
                size_t errlen);
void wan_vae_free(wan_vae *v);

/* Decode T latent frames of h x w:
 *   latents: [z_dim, T, h, w], normalised as the sampler leaves them (they
 *            are de-normalised here with latents_mean / latents_std exactly
 *            as WanPipeline does before vae.decode)
 *   rgb:     [3, wan_vae_out_frames(T), h*s, w*s], s = scale_factor_spatial,
 *            clamped to [-1, 1]
 * Returns 0, or -1 with err set (bad sizes, out of memory). The decoder
 * is only read during a decode (the caches live in the call), so several
 * threads may decode with one wan_vae at once. */
int wan_vae_decode(wan_vae *v, const float *latents, int T, int h, int w, float *rgb, char *err,
                   size_t errlen);

/* 4T-3: the frame count of a decoded video of T latent frames. */
int wan_vae_out_frames(int T);

const wan_vae_config *wan_vae_get_config(const wan_vae *v);

/* One tensor the decoder reads. */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[5];
} wan_vae_tensor_spec;

/* The tensors wan_vae_new reads for cfg, in load order: fills up to cap
 * entries of out (out may be NULL when cap is 0) and returns how many
 * there are, or -1 when cfg fails wan_vae_config_check (or memory runs
 * out). */
int wan_vae_expected_tensors(const wan_vae_config *cfg, wan_vae_tensor_spec *out, size_t cap);

#endif
