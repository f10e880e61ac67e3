/* dit_noise — counter-based Gaussian noise (see dit_noise.h).
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11) is a keyed bijection of 128-bit counters with ten rounds of
 * 32x32->64 multiplies; it passes BigCrush and is what GPU libraries use
 * for the same job, so the CUDA path can produce the same bits later. The
 * counter is (x, y, channel, frame), the key the seed's two halves: every
 * tuple gets its own 128 random bits, of which 2 x 53 make two uniforms for
 * one Box-Muller draw. The cosine branch alone is used (the sine one would
 * tie two tuples' values together). u1 is in (0, 1], so log(u1) is finite.
 */
#include "dit_noise.h"

#include <math.h>
#include <stdio.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void dit_noise_philox4x32_10(uint32_t ctr[4], const uint32_t key[2]) {
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * ctr[0];
        uint64_t p1 = (uint64_t)PHILOX_M1 * ctr[2];
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ ctr[1] ^ k0;
        uint32_t n2 = hi0 ^ ctr[3] ^ k1;
        ctr[0] = n0;
        ctr[1] = lo1;
        ctr[2] = n2;
        ctr[3] = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

float dit_noise_at(uint64_t seed, int64_t frame, uint32_t c, uint32_t y, uint32_t x) {
    uint32_t ctr[4] = {x, y, c, (uint32_t)frame};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    dit_noise_philox4x32_10(ctr, key);
    uint64_t a = ((uint64_t)ctr[0] << 32 | ctr[1]) >> 11;
    uint64_t b = ((uint64_t)ctr[2] << 32 | ctr[3]) >> 11;
    const double two_m53 = 1.0 / 9007199254740992.0;
    double u1 = ((double)a + 1.0) * two_m53; /* (0, 1] */
    double u2 = (double)b * two_m53;         /* [0, 1) */
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

int dit_noise_fill(uint64_t seed, int64_t first_frame, int frames, int channels, int h, int w, float *out,
                   char *err, size_t errlen) {
    if (frames <= 0 || channels <= 0 || h <= 0 || w <= 0) {
        snprintf(err, errlen, "dit_noise: shape [C=%d, F=%d, H=%d, W=%d] has a dimension that is not positive",
                 channels, frames, h, w);
        return -1;
    }
    if (first_frame < 0 || first_frame + frames > ((int64_t)1 << 32)) {
        snprintf(err, errlen, "dit_noise: latent frames [%lld, %lld) leave [0, 2^32)", (long long)first_frame,
                 (long long)(first_frame + frames));
        return -1;
    }
    size_t i = 0;
    for (int c = 0; c < channels; c++)
        for (int f = 0; f < frames; f++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    out[i++] = dit_noise_at(seed, first_frame + f, (uint32_t)c, (uint32_t)y, (uint32_t)x);
    return 0;
}
