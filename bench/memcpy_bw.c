/* memcpy_bw — the memory-copy bandwidth of this machine, the baseline that
 * bench_farm.py's transport benchmark sets the coordinator's frame intake
 * beside.
 *
 * Copies TOTAL bytes in CHUNK-byte pieces (one raw frame each) from a source
 * ring to a destination ring of RING bytes, both larger than any cache and
 * touched before the clock starts, so every copy goes to and from DRAM as a
 * frame arriving at the coordinator does. One thread, plain memcpy. Runs
 * the whole copy RUNS times and reports the best run, in one line of
 * key=value pairs that the benchmark script parses:
 *
 *   memcpy bytes=746496000 chunk=3110400 ring=248832000 runs=3 best_s=0.0912 MBps=8185.1
 *
 *   rf-bench-memcpy TOTAL [CHUNK [RING [RUNS]]]
 *
 * defaults: CHUNK 3110400 (1920x1080 I420), RING 80 chunks, RUNS 3.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_args.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: rf-bench-memcpy TOTAL_BYTES [CHUNK_BYTES [RING_BYTES [RUNS]]]\n");
        return 2;
    }
    unsigned long long total = bench_arg("memcpy_bw", argc, argv, 1, 0);
    size_t chunk = (size_t)bench_arg("memcpy_bw", argc, argv, 2, 3110400ULL);
    size_t ring = (size_t)bench_arg("memcpy_bw", argc, argv, 3, (unsigned long long)chunk * 80);
    int runs = (int)bench_arg("memcpy_bw", argc, argv, 4, 3);
    if (ring < chunk)
        ring = chunk;
    size_t nchunks = ring / chunk;
    ring = nchunks * chunk;
    uint8_t *src = malloc(ring), *dst = malloc(ring);
    if (!src || !dst) {
        fprintf(stderr, "memcpy_bw: out of memory for two %zu-byte rings\n", ring);
        return 1;
    }
    /* Touch every page of both, so the copy does not pay for page faults. */
    for (size_t i = 0; i < ring; i++)
        src[i] = (uint8_t)(i * 131u + 7u);
    memset(dst, 0, ring);
    double best = -1;
    uint64_t sink = 0;
    for (int r = 0; r < runs; r++) {
        unsigned long long left = total;
        size_t k = 0;
        double t0 = bench_now();
        while (left) {
            size_t n = left < chunk ? (size_t)left : chunk;
            memcpy(dst + k * chunk, src + k * chunk, n);
            left -= n;
            k = (k + 1) % nchunks;
        }
        double dt = bench_now() - t0;
        sink += dst[(size_t)r % ring];
        if (best < 0 || dt < best)
            best = dt;
    }
    printf("memcpy bytes=%llu chunk=%zu ring=%zu runs=%d best_s=%.6f MBps=%.1f sink=%llu\n", total,
           chunk, ring, runs, best, (double)total / best / 1e6, (unsigned long long)(sink & 1));
    free(src);
    free(dst);
    return 0;
}
