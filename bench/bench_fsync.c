/* rf-bench-fsync DIR [FILES] [SIZE] — what the commit thread's sync crew
 * buys: FILES files of SIZE bytes (default 256 of 384, a 16x16 frame)
 * created in DIR and synced one after another (the baseline), then the
 * same with sync_crew_run and 4 and 16 crew threads (the coordinator uses
 * 16). Each line is the best of 3 rounds, in microseconds per file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sync_crew.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Create, fill and sync n files with `threads` crew threads (-1: plain
 * fsync loop); returns seconds spent syncing. */
static double round_once(const char *dir, int n, size_t size, int threads, int round) {
    int *fds = calloc((size_t)n, sizeof *fds), *errs = calloc((size_t)n, sizeof *errs);
    char *buf = calloc(1, size);
    if (!fds || !errs || !buf) {
        fprintf(stderr, "rf-bench-fsync: out of memory\n");
        exit(1);
    }
    memset(buf, 0x5a, size);
    char path[4200];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/rf-bench-fsync-%d-%d-%d", dir, threads, round, i);
        fds[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fds[i] < 0 || write(fds[i], buf, size) != (ssize_t)size) {
            perror(path);
            exit(1);
        }
    }
    double dt;
    if (threads < 0) {
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            fsync(fds[i]);
        dt = now_s() - t0;
    } else {
        sync_crew *c;
        char err[256];
        if (sync_crew_new((unsigned)threads, 0, &c, err, sizeof err) != 0) {
            fprintf(stderr, "rf-bench-fsync: %s\n", err);
            exit(1);
        }
        double t0 = now_s(); /* after the crew's start-up */
        sync_crew_run(c, fds, errs, (size_t)n);
        dt = now_s() - t0;
        sync_crew_free(c);
    }
    for (int i = 0; i < n; i++) {
        close(fds[i]);
        snprintf(path, sizeof path, "%s/rf-bench-fsync-%d-%d-%d", dir, threads, round, i);
        unlink(path);
    }
    free(fds);
    free(errs);
    free(buf);
    return dt;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: rf-bench-fsync DIR [FILES] [SIZE]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 256;
    size_t size = argc > 3 ? (size_t)atol(argv[3]) : 384;
    if (n < 1 || size < 1) {
        fprintf(stderr, "rf-bench-fsync: FILES and SIZE must be positive\n");
        return 2;
    }
    printf("%-30s  %12s  %10s\n", "files synced", "us per file", "x baseline");
    const int modes[] = {-1, 4, 16};
    double base = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            double t = round_once(argv[1], n, size, modes[m], r);
            if (t < best)
                best = t;
        }
        double us = best / n * 1e6;
        if (modes[m] < 0)
            base = us;
        char label[64];
        if (modes[m] < 0)
            snprintf(label, sizeof label, "one after another (baseline)");
        else
            snprintf(label, sizeof label, "sync_crew, %d threads", modes[m]);
        printf("%-30s  %12.1f  %10.2f\n", label, us, base / us);
    }
    printf("%d files of %zu bytes in %s, best of 3 rounds\n", n, size, argv[1]);
    return 0;
}
