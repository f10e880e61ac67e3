/* dit_noise — the initial Gaussian noise of a segment's latents.
 *
 * The value at (seed, absolute latent frame, channel, y, x) is a pure
 * function of that tuple: a counter-based generator (Philox4x32-10, keyed
 * by the seed, the tuple as its counter) feeds Box-Muller in double. No
 * stream position exists, so a segment that starts at latent frame 7 and
 * one that starts at frame 0 produce bit-identical noise for the frames
 * they share, on any machine, in any order, with any threads: the first
 * condition for seams that do not show (DESIGN.md, "both sides of an
 * overlap start from the same noise").
 *
 * Changing this function changes every render made with it; the tests pin
 * a few values so that such a change cannot pass unnoticed.
 */
#ifndef DIT_NOISE_H
#define DIT_NOISE_H

#include <stddef.h>
#include <stdint.h>

/* One standard normal sample; frame in [0, 2^32), c, y, x in [0, 2^32). */
float dit_noise_at(uint64_t seed, int64_t frame, uint32_t c, uint32_t y, uint32_t x);

/* The block function, in place: ctr <- Philox4x32-10(ctr, key). Public so
 * that tests can hold it to Random123's known answers and a CUDA version
 * can be checked against it. */
void dit_noise_philox4x32_10(uint32_t ctr[4], const uint32_t key[2]);

/* Fill out[C][frames][h][w] (the latent layout, batch dropped) with the
 * noise of latent frames [first_frame, first_frame + frames). Fails with a
 * message when a dimension is not positive or the frames leave [0, 2^32). */
int dit_noise_fill(uint64_t seed, int64_t first_frame, int frames, int channels, int h, int w, float *out,
                   char *err, size_t errlen);

#endif
