/* kn_cuda — device discovery for the CUDA backend. See kn.h. */
#include <cuda_runtime.h>
#include <stdio.h>

#include "kn_cuda.h"

extern "C" int kn_cuda_probe(char *why, size_t whylen) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        snprintf(why, whylen, "%s", cudaGetErrorString(rc));
        return 0;
    }
    if (n <= 0) {
        snprintf(why, whylen, "no device visible");
        return 0;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        snprintf(why, whylen, "CUDA device 0 of %d: %s", n, prop.name);
    else
        snprintf(why, whylen, "%d CUDA devices", n);
    return n;
}
