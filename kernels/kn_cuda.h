/* kn_cuda — the CUDA side of kernels/, seen from C. Only the C files in kernels/
 * include this, and only in builds with RF_HAVE_CUDA. */
#ifndef KN_CUDA_H
#define KN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable devices (0 when none), with a description of device 0
 * or of the reason there is none in `why`. */
int kn_cuda_probe(char *why, size_t whylen);

int kn_cuda_blend_u8(const uint8_t *const *src, const uint32_t *w_q16, unsigned nsrc, uint8_t *dst,
                     size_t n, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
