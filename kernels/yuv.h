/* yuv — a decoded RGB frame (float planes in [-1, 1], what the video VAE
 * hands out) to the farm's I420 pixels.
 *
 * The colour matrix is BT.709 with limited ("TV") range: HD video is
 * BT.709, and the encoders and players downstream assume limited range
 * unless told otherwise (our encoder writes no range flag). With R, G, B
 * mapped from [-1, 1] to [0, 1] (and clamped there):
 *
 *     Y' = 0.2126 R + 0.7152 G + 0.0722 B
 *     Y  = 16  + 219 Y'
 *     Cb = 128 + 224 (B - Y') / 1.8556
 *     Cr = 128 + 224 (R - Y') / 1.5748
 *
 * each rounded to the nearest integer. Chroma is taken at the centre of
 * each 2x2 block (the mean of its four pixels' Cb and Cr), which is where
 * JPEG/MPEG-1 site it and close to MPEG-2's left siting; the difference is
 * a quarter pixel. Width and height must be even (I420 has no odd sizes;
 * the job spec refuses them).
 *
 * A whole frame per call, so a CUDA version can sit behind the same
 * contract with one launch.
 */
#ifndef YUV_H
#define YUV_H

#include <stddef.h>
#include <stdint.h>

/* Convert one frame. r, g, b: w*h floats each, row-major (the three planes
 * may be far apart: the VAE's output is [3, frames, h, w]). dst: w*h luma
 * bytes, then (w/2)*(h/2) Cb bytes, then as many Cr bytes. w, h even and
 * positive. Values outside [-1, 1] are clamped; NaN becomes -1 (black), so
 * a broken model shows as black frames rather than undefined bytes. */
void kn_rgbf_to_i420(const float *r, const float *g, const float *b, int w, int h, uint8_t *dst);

#endif
