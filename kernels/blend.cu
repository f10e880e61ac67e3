/* blend — CUDA implementation of kn_blend_u8 (contract in blend.h).
 *
 * Same integer formula as the C reference, so results are bit-identical.
 * The sources arrive in host memory (the stitcher reads them from its
 * spool), so each call stages them on the device; the kernel itself is
 * memory-bound, one thread per byte.
 */
#include <cuda_runtime.h>
#include <stdio.h>

#include "kn_cuda.h"

#define KN_CUDA_MAX_SRC 64

struct blend_args {
    const uint8_t *src[KN_CUDA_MAX_SRC];
    uint32_t w[KN_CUDA_MAX_SRC];
    unsigned nsrc;
};

__global__ void blend_kernel(blend_args a, uint8_t *dst, size_t n) {
    size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n)
        return;
    uint32_t acc = 32768u;
    for (unsigned i = 0; i < a.nsrc; i++)
        acc += a.w[i] * a.src[i][p];
    dst[p] = (uint8_t)(acc >> 16);
}

static int fail(cudaError_t rc, const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "blend (cuda): %s: %s", what, cudaGetErrorString(rc));
    return -1;
}

extern "C" int kn_cuda_blend_u8(const uint8_t *const *src, const uint32_t *w_q16, unsigned nsrc,
                                uint8_t *dst, size_t n, char *err, size_t errlen) {
    if (nsrc > KN_CUDA_MAX_SRC) {
        snprintf(err, errlen, "blend (cuda): %u sources, at most %d", nsrc, KN_CUDA_MAX_SRC);
        return -1;
    }
    uint8_t *dev = NULL;
    cudaError_t rc = cudaMalloc((void **)&dev, n * (nsrc + 1));
    if (rc != cudaSuccess)
        return fail(rc, "cudaMalloc", err, errlen);
    blend_args a;
    a.nsrc = nsrc;
    for (unsigned i = 0; i < nsrc; i++) {
        a.src[i] = dev + n * (i + 1);
        a.w[i] = w_q16[i];
        rc = cudaMemcpy(dev + n * (i + 1), src[i], n, cudaMemcpyHostToDevice);
        if (rc != cudaSuccess) {
            cudaFree(dev);
            return fail(rc, "copy to device", err, errlen);
        }
    }
    unsigned threads = 256;
    unsigned blocks = (unsigned)((n + threads - 1) / threads);
    blend_kernel<<<blocks, threads>>>(a, dev, n);
    rc = cudaGetLastError();
    if (rc == cudaSuccess)
        rc = cudaMemcpy(dst, dev, n, cudaMemcpyDeviceToHost);
    cudaFree(dev);
    if (rc != cudaSuccess)
        return fail(rc, "kernel", err, errlen);
    return 0;
}
