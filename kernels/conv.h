/* conv — the convolution-family operations of the video VAE decoder.
 *
 * Every operation works on whole frames. A frame is one time step of a
 * feature map, [c, h, w] row-major; a run of t frames is [t, c, h, w], so
 * each frame is contiguous. That layout is what streaming wants: a causal
 * convolution reads a few cached frames of the past plus the frames of the
 * current chunk, and the caller hands it one pointer per frame instead of
 * copying cache and chunk into one tensor. A NULL frame pointer stands for
 * a frame of zeros, which is how the causal (front-only) padding in time is
 * expressed without allocating it.
 *
 * Convolutions are lowered to matrix products (im2col + cblas_sgemm): the
 * weight [cout, cin, kt, kh, kw] is already the row-major matrix
 * [cout, cin*kt*kh*kw], and the gathered input patch matrix is built a
 * tile of output pixels at a time in caller-provided scratch, so memory
 * stays bounded at any resolution. A CUDA version will sit behind these
 * same signatures (device pointers in, device pointers out).
 *
 * Every op here is the C reference: always built, always tested.
 */
#ifndef CONV_H
#define CONV_H

#include <stddef.h>

/* Smallest scratch (floats) kn_conv_3d accepts for this kernel shape: one
 * output pixel's patch column. More scratch means larger tiles and fewer,
 * larger matrix products; kn_conv_scratch_want says how much one tile of
 * the whole frame would take. */
size_t kn_conv_scratch_min(int cin, int kt, int kh, int kw);
size_t kn_conv_scratch_want(int cin, int kt, int kh, int kw, int h, int w);

/* 3D convolution, stride 1, no padding in time (the caller supplies the
 * causal past as leading frames, NULL for zeros), zero "same" padding in
 * space ((kh-1)/2 rows, (kw-1)/2 columns; kh and kw odd).
 *
 *   in:     n_in frame pointers, each [cin, h, w] (NULL = zeros)
 *   weight: [cout, cin, kt, kh, kw], bias: [cout] or NULL
 *   out:    n_in - kt + 1 frames, [n_out, cout, h, w]; must not alias in
 *
 * A 2D convolution is kt = 1, n_in = 1. Returns 0, or -1 when the shapes
 * are inconsistent or scratch is below kn_conv_scratch_min. */
int kn_conv_3d(const float *const *in, int n_in, int cin, int h, int w, const float *weight,
               const float *bias, int cout, int kt, int kh, int kw, float *out, float *scratch,
               size_t scratch_n);

/* RMS normalisation across channels at every pixel of n frames of
 * [c, hw]:  out = x / max(||x||_2, 1e-12) * sqrt(c) * gamma[ch]
 * (the L2-normalise-then-rescale form the Wan VAE uses). out may be x. */
void kn_conv_rmsnorm(const float *x, int nframes, int c, size_t hw, const float *gamma, float *out);

/* x * sigmoid(x), in place, n elements. */
void kn_conv_silu(float *x, size_t n);

/* y += x, n elements. */
void kn_conv_add(float *y, const float *x, size_t n);

/* Clamp to [lo, hi], in place. */
void kn_conv_clamp(float *x, size_t n, float lo, float hi);

/* Nearest-neighbour 2x spatial upsample of n frames [c, h, w] into
 * [c, 2h, 2w] each. For an exact factor of 2 "nearest" and "nearest-exact"
 * pick the same source pixel (out[i] = in[i / 2]). out must not alias x. */
void kn_conv_upsample2x(const float *x, int nframes, int c, int h, int w, float *out);

/* Single-head softmax attention over the n pixels of one frame, with the
 * channels as the head dimension, in the channel-major layout the
 * convolutions produce:
 *
 *   q, k, v: [c, n];  out[:, i] = sum_j softmax_j(q[:,i].k[:,j] / sqrt(c)) v[:, j]
 *
 * out: [c, n], must not alias q, k or v. Queries are processed in blocks
 * whose score rows fit in scratch (at least n floats). Returns 0, or -1
 * when scratch is too small. */
size_t kn_conv_attn_scratch_want(int n);
int kn_conv_attn(const float *q, const float *k, const float *v, int c, int n, float *out,
                 float *scratch, size_t scratch_n);

#endif
