/* bench_sched — what fair share costs per segment handed out.
 *
 * 10,000 jobs of 10 segments in N groups (argv[1], default 100): every
 * segment is pushed, popped and reported stopped, and the time per pop is
 * set beside a plain FIFO ring doing the same pushes and pops, so the
 * overhead of the scheduler's ordering is visible. Each case runs five
 * times; the best run counts. Registration (sched_add_job) is not timed.
 *
 *   rf-bench-sched [groups]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_args.h"
#include "sched.h"

enum { NJOBS = 10000, NSEG = 10, RUNS = 5 };

typedef struct item {
    void *job;
    uint32_t seg;
} item;

static int accept_all(void *ctx, void *job) {
    (void)ctx;
    (void)job;
    return 1;
}

/* The baseline: a ring buffer, no priorities, no groups, no caps. */
static double run_fifo(char *jobs, size_t *ops) {
    size_t cap = (size_t)NJOBS * NSEG, head = 0, len = 0, n = 0;
    item *ring = malloc(cap * sizeof *ring);
    if (!ring)
        return -1;
    double t0 = bench_now();
    for (uint32_t k = 0; k < NSEG; k++)
        for (size_t j = 0; j < NJOBS; j++)
            ring[(head + len++) % cap] = (item){jobs + j, k};
    uintptr_t sum = 0; /* keeps the pops from being optimised away */
    while (len) {
        item it = ring[head];
        head = (head + 1) % cap;
        len--;
        sum += (uintptr_t)it.job + it.seg;
        n++;
    }
    double dt = bench_now() - t0;
    volatile uintptr_t sink = sum;
    (void)sink;
    free(ring);
    *ops = n;
    return dt;
}

/* The scheduler: push every segment, then pop and stop until empty. */
static double run_sched(char *jobs, unsigned groups, uint32_t max_running, size_t *ops) {
    sched *s = sched_new();
    if (!s)
        return -1;
    for (size_t j = 0; j < NJOBS; j++) {
        char g[24];
        snprintf(g, sizeof g, "batch-%zu", j % groups);
        sched_job_opts o = {.group = g, .priority = 0, .seq = j, .nseg = NSEG,
                            .max_running = max_running};
        if (sched_add_job(s, jobs + j, &o) != 0) {
            sched_free(s);
            return -1;
        }
    }
    size_t n = 0;
    double t0 = bench_now();
    for (size_t j = 0; j < NJOBS; j++)
        for (uint32_t k = 0; k < NSEG; k++)
            if (sched_push(s, jobs + j, k, 24 + (uint32_t)(j % 3) * 24, 0) != 0)
                goto fail;
    void *job;
    uint32_t seg;
    while (sched_pop(s, accept_all, NULL, &job, &seg)) {
        sched_stopped(s, job);
        n++;
    }
    double dt = bench_now() - t0;
    sched_free(s);
    *ops = n;
    return dt;
fail:
    sched_free(s);
    return -1;
}

static void row(const char *name, double best, size_t ops) {
    if (best < 0) {
        printf("%-30s failed (out of memory)\n", name);
        return;
    }
    printf("%-30s %9zu %9.4f %13.0f %8.1f\n", name, ops, best, (double)ops / best,
           best * 1e9 / (double)ops);
}

int main(int argc, char **argv) {
    unsigned groups = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100;
    if (groups == 0 || groups > NJOBS) {
        fprintf(stderr, "usage: rf-bench-sched [groups (1..%d, default 100)]\n", NJOBS);
        return 2;
    }
    char *jobs = malloc(NJOBS); /* job handles: their addresses */
    if (!jobs)
        return 1;
    printf("%d jobs x %d segments in %u groups, best of %d runs\n\n", NJOBS, NSEG, groups, RUNS);
    printf("%-30s %9s %9s %13s %8s\n", "case", "pops", "seconds", "pops/s", "ns/pop");
    struct {
        const char *name;
        int fifo;
        uint32_t max_running;
    } cases[] = {
        {"fifo ring (baseline)", 1, 0},
        {"sched push+pop+stopped", 0, 0},
        {"sched, max_running=1", 0, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double best = -1;
        size_t ops = 0;
        for (int r = 0; r < RUNS; r++) {
            double dt = cases[c].fifo ? run_fifo(jobs, &ops)
                                      : run_sched(jobs, groups, cases[c].max_running, &ops);
            if (dt >= 0 && (best < 0 || dt < best))
                best = dt;
        }
        row(cases[c].name, best, ops);
    }
    free(jobs);
    return 0;
}
