/* bench_args — what the small standalone bench helpers (memcpy_bw.c,
 * zmq_bw.c) share: a monotonic clock in seconds and their positional
 * numeric arguments. Header-only, so that bench_farm.py can still build a
 * helper alone with `cc bench/NAME.c` when a build lacks it. */
#ifndef BENCH_ARGS_H
#define BENCH_ARGS_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* argv[i] as a positive number, or dflt when there is no argv[i]; exits
 * with status 2 and a message naming prog when it is not one. */
static inline unsigned long long bench_arg(const char *prog, int argc, char **argv, int i,
                                           unsigned long long dflt) {
    if (argc <= i)
        return dflt;
    char *end = NULL;
    unsigned long long v = argv[i][0] == '-' ? 0 : strtoull(argv[i], &end, 10);
    if (!end || *end || v == 0) {
        fprintf(stderr, "%s: argument %d must be a positive whole number, not '%s'\n", prog, i,
                argv[i]);
        exit(2);
    }
    return v;
}

#endif
