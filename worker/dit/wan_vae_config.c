/* wan_vae_config — reading and checking an AutoencoderKLWan config.json.
 *
 * The config is what `save_config` writes: every constructor argument,
 * plus bookkeeping keys that start with an underscore. A key that is
 * absent takes the constructor's default, as it would in diffusers. A key
 * this file does not know is refused rather than ignored: later VAE
 * generations (Wan2.2's residual blocks and patchified output) arrived as
 * new keys on the same class, and decoding such a checkpoint with the
 * Wan2.1 graph would give plausible-looking garbage instead of an error.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "wan_vae.h"

/* AutoencoderKLWan's defaults for the 16-channel Wan2.1 latent space. */
static const float default_mean[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                       -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                       -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
static const float default_std[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f,
                                      2.6052f, 2.0743f, 3.2687f, 2.1526f, 2.8652f, 1.5579f,
                                      1.6382f, 1.1253f, 2.8251f, 1.9160f};

static int temporal_ups(const wan_vae_config *c)
{
    int n = 0;
    for (int i = 0; i < c->n_levels - 1; i++)
        n += c->temperal_downsample[i] != 0;
    return n;
}

int wan_vae_config_check(const wan_vae_config *c, char *err, size_t errlen)
{
    if (c->z_dim < 1 || c->z_dim > WAN_VAE_MAX_Z) {
        snprintf(err, errlen, "wan_vae config: z_dim %d outside 1..%d", c->z_dim, WAN_VAE_MAX_Z);
        return -1;
    }
    if (c->base_dim < 1 || c->decoder_base_dim < 1) {
        snprintf(err, errlen, "wan_vae config: base_dim %d / decoder_base_dim %d must be positive",
                 c->base_dim, c->decoder_base_dim);
        return -1;
    }
    if (c->n_levels < 1 || c->n_levels > WAN_VAE_MAX_LEVELS) {
        snprintf(err, errlen, "wan_vae config: dim_mult has %d entries, expected 1..%d",
                 c->n_levels, WAN_VAE_MAX_LEVELS);
        return -1;
    }
    for (int i = 0; i < c->n_levels; i++) {
        /* Every level but the last ends in an upsampler that halves its
         * width, so those widths must be even. */
        int d = c->decoder_base_dim * c->dim_mult[i];
        if (c->dim_mult[i] < 1 || (i > 0 && d % 2 != 0)) {
            snprintf(err, errlen,
                     "wan_vae config: dim_mult[%d] = %d gives decoder width %d; it must be a "
                     "positive even width",
                     i, c->dim_mult[i], d);
            return -1;
        }
    }
    if (c->num_res_blocks < 0 || c->num_res_blocks > 64) {
        snprintf(err, errlen, "wan_vae config: num_res_blocks %d outside 0..64", c->num_res_blocks);
        return -1;
    }
    if (temporal_ups(c) != 2) {
        snprintf(err, errlen,
                 "wan_vae config: temperal_downsample has %d true entries among the first %d; this "
                 "decoder implements a temporal factor of 4 (two, giving 4T-3 frames)",
                 temporal_ups(c), c->n_levels - 1);
        return -1;
    }
    if (c->out_channels != 3) {
        snprintf(err, errlen, "wan_vae config: out_channels %d unsupported (RGB decoder: 3)",
                 c->out_channels);
        return -1;
    }
    if (c->scale_factor_temporal != 4) {
        snprintf(err, errlen,
                 "wan_vae config: scale_factor_temporal %d disagrees with the layers (4)",
                 c->scale_factor_temporal);
        return -1;
    }
    if (c->scale_factor_spatial != 1 << (c->n_levels - 1)) {
        snprintf(err, errlen,
                 "wan_vae config: scale_factor_spatial %d disagrees with the layers (%d levels "
                 "upsample by %d)",
                 c->scale_factor_spatial, c->n_levels, 1 << (c->n_levels - 1));
        return -1;
    }
    for (int i = 0; i < c->z_dim; i++)
        if (!(c->latents_std[i] > 0.0f) && !(c->latents_std[i] < 0.0f)) {
            snprintf(err, errlen, "wan_vae config: latents_std[%d] is %g; it divides latents", i,
                     (double)c->latents_std[i]);
            return -1;
        }
    return 0;
}

static int get_int(json_t *v, const char *key, int *out, char *err, size_t errlen)
{
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "wan_vae config: '%s' must be an integer", key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < -1000000 || x > 1000000) {
        snprintf(err, errlen, "wan_vae config: '%s' = %lld is out of range", key, (long long)x);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int get_floats(json_t *v, const char *key, float *out, int cap, int *n, char *err,
                      size_t errlen)
{
    if (!json_is_array(v) || (int)json_array_size(v) > cap) {
        snprintf(err, errlen, "wan_vae config: '%s' must be an array of at most %d numbers", key,
                 cap);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e)) {
            snprintf(err, errlen, "wan_vae config: '%s'[%zu] is not a number", key, i);
            return -1;
        }
        out[i] = (float)json_number_value(e);
    }
    *n = (int)json_array_size(v);
    return 0;
}

/* One key of the object. Returns 0, or -1 with err set. */
static int apply_key(wan_vae_config *c, const char *key, json_t *v, int *n_mean, int *n_std,
                     int *n_tdown, int *sf_t_null, int *sf_s_null, char *err, size_t errlen)
{
    if (key[0] == '_')
        return 0; /* _class_name, _diffusers_version, _name_or_path */
    if (!strcmp(key, "base_dim"))
        return get_int(v, key, &c->base_dim, err, errlen);
    if (!strcmp(key, "decoder_base_dim")) {
        if (json_is_null(v)) {
            c->decoder_base_dim = 0; /* resolved to base_dim at the end */
            return 0;
        }
        return get_int(v, key, &c->decoder_base_dim, err, errlen);
    }
    if (!strcmp(key, "z_dim"))
        return get_int(v, key, &c->z_dim, err, errlen);
    if (!strcmp(key, "num_res_blocks"))
        return get_int(v, key, &c->num_res_blocks, err, errlen);
    if (!strcmp(key, "out_channels"))
        return get_int(v, key, &c->out_channels, err, errlen);
    if (!strcmp(key, "in_channels")) { /* the encoder's input; the decoder has no use for it */
        int ignored;
        return get_int(v, key, &ignored, err, errlen);
    }
    if (!strcmp(key, "dim_mult")) {
        if (!json_is_array(v) || json_array_size(v) < 1 ||
            json_array_size(v) > WAN_VAE_MAX_LEVELS) {
            snprintf(err, errlen, "wan_vae config: 'dim_mult' must be an array of 1..%d integers",
                     WAN_VAE_MAX_LEVELS);
            return -1;
        }
        c->n_levels = (int)json_array_size(v);
        for (int i = 0; i < c->n_levels; i++)
            if (get_int(json_array_get(v, (size_t)i), "dim_mult", &c->dim_mult[i], err, errlen))
                return -1;
        return 0;
    }
    if (!strcmp(key, "temperal_downsample")) {
        if (!json_is_array(v) || json_array_size(v) > WAN_VAE_MAX_LEVELS - 1) {
            snprintf(err, errlen,
                     "wan_vae config: 'temperal_downsample' must be an array of booleans");
            return -1;
        }
        *n_tdown = (int)json_array_size(v);
        for (int i = 0; i < *n_tdown; i++) {
            json_t *e = json_array_get(v, (size_t)i);
            if (!json_is_boolean(e)) {
                snprintf(err, errlen, "wan_vae config: 'temperal_downsample'[%d] is not a boolean",
                         i);
                return -1;
            }
            c->temperal_downsample[i] = json_is_true(e);
        }
        return 0;
    }
    if (!strcmp(key, "latents_mean"))
        return get_floats(v, key, c->latents_mean, WAN_VAE_MAX_Z, n_mean, err, errlen);
    if (!strcmp(key, "latents_std"))
        return get_floats(v, key, c->latents_std, WAN_VAE_MAX_Z, n_std, err, errlen);
    if (!strcmp(key, "attn_scales")) {
        /* Only the encoder places attention by scale; the decoder's one
         * attention block sits in the mid block whatever this says. */
        if (!json_is_array(v)) {
            snprintf(err, errlen, "wan_vae config: 'attn_scales' must be an array");
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "dropout")) {
        if (!json_is_number(v)) {
            snprintf(err, errlen, "wan_vae config: 'dropout' must be a number");
            return -1;
        }
        return 0; /* inference: dropout is the identity */
    }
    if (!strcmp(key, "is_residual")) {
        if (!json_is_boolean(v) || json_is_true(v)) {
            snprintf(
                err, errlen,
                "wan_vae config: 'is_residual' must be false (residual up blocks are the Wan2.2 "
                "VAE; this decoder implements Wan2.1's)");
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "patch_size")) {
        if (!json_is_null(v)) {
            snprintf(err, errlen,
                     "wan_vae config: 'patch_size' must be null (patchified output is the Wan2.2 "
                     "VAE; this decoder implements Wan2.1's)");
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "scale_factor_temporal") || !strcmp(key, "scale_factor_spatial")) {
        int temporal = !strcmp(key, "scale_factor_temporal");
        if (json_is_null(v)) {
            *(temporal ? sf_t_null : sf_s_null) = 1;
            return 0;
        }
        return get_int(v, key, temporal ? &c->scale_factor_temporal : &c->scale_factor_spatial, err,
                       errlen);
    }
    snprintf(err, errlen,
             "wan_vae config: unknown key '%s' (not an AutoencoderKLWan argument this decoder "
             "implements; it may change the architecture)",
             key);
    return -1;
}

int wan_vae_config_load(const char *path, wan_vae_config *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "wan_vae config %s: line %d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "wan_vae config %s: not a JSON object", path);
        json_decref(root);
        return -1;
    }
    wan_vae_config c;
    memset(&c, 0, sizeof c);
    c.base_dim = 96;
    c.z_dim = 16;
    c.n_levels = 4;
    c.dim_mult[0] = 1, c.dim_mult[1] = 2, c.dim_mult[2] = 4, c.dim_mult[3] = 4;
    c.num_res_blocks = 2;
    c.temperal_downsample[0] = 0, c.temperal_downsample[1] = 1, c.temperal_downsample[2] = 1;
    c.out_channels = 3;
    c.scale_factor_temporal = 4;
    c.scale_factor_spatial = 8;
    int n_mean = -1, n_std = -1, n_tdown = 3, sf_t_null = 0, sf_s_null = 0;

    const char *key;
    json_t *v;
    char kerr[256] = "";
    int rc = 0;
    json_object_foreach (root, key, v) {
        if (apply_key(&c, key, v, &n_mean, &n_std, &n_tdown, &sf_t_null, &sf_s_null, kerr,
                      sizeof kerr)) {
            rc = -1;
            break;
        }
    }
    json_decref(root);
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, kerr);
        return -1;
    }
    if (c.decoder_base_dim == 0)
        c.decoder_base_dim = c.base_dim;
    if (n_tdown != c.n_levels - 1) {
        snprintf(
            err, errlen,
            "%s: wan_vae config: temperal_downsample has %d entries, dim_mult %d (expected %d)",
            path, n_tdown, c.n_levels, c.n_levels - 1);
        return -1;
    }
    /* A stated null factor means "whatever the layers do", which the
     * check below would otherwise have to guess. */
    if (sf_t_null)
        c.scale_factor_temporal = 4;
    if (sf_s_null)
        c.scale_factor_spatial = 1 << (c.n_levels - 1);
    if (n_mean < 0 || n_std < 0) {
        if (c.z_dim != 16) {
            snprintf(err, errlen,
                     "%s: wan_vae config: '%s' absent and z_dim is %d; the defaults only fit z_dim "
                     "16",
                     path, n_mean < 0 ? "latents_mean" : "latents_std", c.z_dim);
            return -1;
        }
        if (n_mean < 0)
            memcpy(c.latents_mean, default_mean, sizeof default_mean), n_mean = 16;
        if (n_std < 0)
            memcpy(c.latents_std, default_std, sizeof default_std), n_std = 16;
    }
    if (n_mean != c.z_dim || n_std != c.z_dim) {
        snprintf(err, errlen,
                 "%s: wan_vae config: latents_mean has %d and latents_std %d entries, z_dim is %d",
                 path, n_mean, n_std, c.z_dim);
        return -1;
    }
    char cerr[256];
    if (wan_vae_config_check(&c, cerr, sizeof cerr)) {
        snprintf(err, errlen, "%s: %s", path, cerr);
        return -1;
    }
    *out = c;
    return 0;
}
