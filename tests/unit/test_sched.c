/* Scheduler: the order of sched.h (priority, fair share by frames between
 * groups, seq within a group, queue order with retries at the front), the
 * limits (cap, pause), accept rejections, removal, the counts, a random
 * walk checked against a brute-force model, and a large farm popped fast.
 *
 * RF_SCHED_NO_TIMING=1 keeps the large case but skips its speed assertion
 * (for valgrind and sanitizer runs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sched.h"

/* A job handle: the scheduler only compares its address. */
typedef struct tjob {
    unsigned id;
} tjob;

static tjob *jobs_new(size_t n) {
    tjob *t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        t[i].id = (unsigned)i;
    return t;
}

static void add(sched *s, tjob *j, const char *group, int prio, uint64_t seq, uint32_t nseg,
                uint32_t max_running) {
    sched_job_opts o = {.group = group, .priority = prio, .seq = seq, .nseg = nseg,
                        .max_running = max_running};
    assert_int_equal(sched_add_job(s, j, &o), 0);
}

static void push_all(sched *s, tjob *j, uint32_t nseg, uint32_t frames) {
    for (uint32_t k = 0; k < nseg; k++)
        assert_int_equal(sched_push(s, j, k, frames, 0), 0);
}

static int accept_all(void *ctx, void *job) {
    (void)ctx;
    (void)job;
    return 1;
}

static int accept_even(void *ctx, void *job) {
    (void)ctx;
    return ((tjob *)job)->id % 2 == 0;
}

/* Pops one segment and checks it is (want, seg). */
static void expect_pop(sched *s, const tjob *want, uint32_t seg) {
    void *job = NULL;
    uint32_t k = 99;
    assert_int_equal(sched_pop(s, accept_all, NULL, &job, &k), 1);
    assert_ptr_equal(job, want);
    assert_int_equal(k, seg);
}

static void expect_none(sched *s) {
    void *job;
    uint32_t k;
    assert_int_equal(sched_pop(s, accept_all, NULL, &job, &k), 0);
}

static void test_priority_order(void **state) {
    (void)state;
    sched *s = sched_new();
    tjob *t = jobs_new(3);
    add(s, &t[0], NULL, 0, 1, 2, 0);
    add(s, &t[1], NULL, 5, 2, 2, 0);
    push_all(s, &t[0], 2, 10);
    push_all(s, &t[1], 2, 10);
    expect_pop(s, &t[1], 0);
    /* a later job of higher priority goes before everything queued */
    add(s, &t[2], "batch", 10, 3, 2, 0);
    push_all(s, &t[2], 2, 10);
    expect_pop(s, &t[2], 0);
    expect_pop(s, &t[2], 1);
    expect_pop(s, &t[1], 1);
    expect_pop(s, &t[0], 0);
    expect_pop(s, &t[0], 1);
    expect_none(s);
    sched_free(s);
    free(t);
}

static void test_fifo_and_retry_front(void **state) {
    (void)state;
    sched *s = sched_new();
    tjob *t = jobs_new(4);
    add(s, &t[0], NULL, 0, 1, 5, 0);
    push_all(s, &t[0], 5, 10);
    expect_pop(s, &t[0], 0);
    expect_pop(s, &t[0], 1);
    expect_pop(s, &t[0], 2);
    /* two retries: each goes to the front, the latest first */
    assert_int_equal(sched_push(s, &t[0], 1, 10, 1), 0);
    assert_int_equal(sched_push(s, &t[0], 0, 10, 1), 0);
    expect_pop(s, &t[0], 0);
    expect_pop(s, &t[0], 1);
    expect_pop(s, &t[0], 3);
    expect_pop(s, &t[0], 4);
    expect_none(s);
    /* within a group, jobs go by seq, whatever the order they came in */
    add(s, &t[1], "g", 0, 30, 2, 0);
    add(s, &t[2], "g", 0, 10, 2, 0);
    add(s, &t[3], "g", 0, 20, 2, 0);
    for (int i = 1; i <= 3; i++)
        push_all(s, &t[i], 2, 10);
    expect_pop(s, &t[2], 0);
    expect_pop(s, &t[2], 1);
    expect_pop(s, &t[3], 0);
    expect_pop(s, &t[3], 1);
    expect_pop(s, &t[1], 0);
    /* a retry of an earlier job goes before the later job's segments */
    assert_int_equal(sched_push(s, &t[2], 1, 10, 1), 0);
    expect_pop(s, &t[2], 1);
    expect_pop(s, &t[1], 1);
    expect_none(s);
    sched_free(s);
    free(t);
}

static void test_groups_alternate_by_frames(void **state) {
    (void)state;
    sched *s = sched_new();
    tjob *t = jobs_new(20);
    /* group a: 10 jobs of 10 segments of 100 frames; group b: of 50 */
    for (unsigned i = 0; i < 20; i++) {
        add(s, &t[i], i < 10 ? "a" : "b", 0, i, 10, 0);
        push_all(s, &t[i], 10, i < 10 ? 100 : 50);
    }
    long fa = 0, fb = 0;
    int na = 0, nb = 0;
    for (int i = 0; i < 150; i++) {
        void *job;
        uint32_t k;
        assert_int_equal(sched_pop(s, accept_all, NULL, &job, &k), 1);
        if (((tjob *)job)->id < 10) {
            fa += 100;
            na++;
        } else {
            fb += 50;
            nb++;
        }
        assert_true(labs(fa - fb) <= 100);
    }
    assert_int_equal(na, 50); /* equal frames: a got half the segments of b */
    assert_int_equal(nb, 100);
    assert_int_equal(sched_pending(s), 200 - 150);
    sched_free(s);
    free(t);
}

static void test_late_group_no_burst(void **state) {
    (void)state;
    sched *s = sched_new();
    tjob *t = jobs_new(3);
    const char *g[3] = {"a", "b", "c"};
    for (int i = 0; i < 2; i++) {
        add(s, &t[i], g[i], 0, (uint64_t)i, 200, 0);
        push_all(s, &t[i], 200, 10);
    }
    void *job;
    uint32_t k;
    for (int i = 0; i < 100; i++)
        assert_int_equal(sched_pop(s, accept_all, NULL, &job, &k), 1);
    /* c arrives after a and b had 500 frames each: it starts level with
     * them, so the next 30 pops go round the three, not 30 times to c */
    add(s, &t[2], g[2], 0, 2, 200, 0);
    push_all(s, &t[2], 200, 10);
    int n[3] = {0, 0, 0};
    for (int i = 0; i < 30; i++) {
        assert_int_equal(sched_pop(s, accept_all, NULL, &job, &k), 1);
        n[((tjob *)job)->id]++;
        assert_true(n[2] <= i / 3 + 1);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(n[i], 10);
    sched_free(s);
    free(t);
}

static void test_max_running(void **state) {
    (void)state;
    sched *s = sched_new();
    tjob *t = jobs_new(3);
    add(s, &t[0], "g", 0, 1, 5, 2);
    add(s, &t[1], "g", 0, 2, 5, 0);
    push_all(s, &t[0], 5, 10);
    push_all(s, &t[1], 5, 10);
    assert_int_equal(sched_ready(s), 10);
    expect_pop(s, &t[0], 0);
    expect_pop(s, &t[0], 1);
    /* at its cap: the next job of the group goes */
    assert_int_equal(sched_ready(s), 5);
    assert_int_equal(sched_pending(s), 8);
    expect_pop(s, &t[1], 0);
    sched_stopped(s, &t[0]);
    assert_int_equal(sched_ready(s), 7);
    expect_pop(s, &t[0], 2);
    expect_pop(s, &t[1], 1);
    /* unknown job and a job with nothing running: no-ops */
    sched_stopped(s, &t[2]);
    sched_stopped(s, &t[1]);
    sched_stopped(s, &t[1]);
    sched_stopped(s, &t[1]);
    expect_pop(s, &t[1], 2);
    sched_stopped(s, &t[0]);
    sched_stopped(s, &t[0]);
    sched_stopped(s, &t[0]); /* only two were running */
    expect_pop(s, &t[0], 3);
    expect_pop(s, &t[0], 4);
    expect_pop(s, &t[1], 3);
    expect_pop(s, &t[1], 4);
    expect_none(s);
    sched_free(s);
    free(t);
}

static void test_pause_resume(void **state) {
    (void)state;
    sched *s = sched_new();
    tjob *t = jobs_new(2);
    add(s, &t[0], "g", 0, 1, 3, 0);
    add(s, &t[1], "g", 0, 2, 3, 0);
    push_all(s, &t[0], 3, 10);
    push_all(s, &t[1], 3, 10);
    expect_pop(s, &t[0], 0);
    sched_pause(s, &t[0], 1);
    assert_int_equal(sched_pending(s), 5);
    assert_int_equal(sched_ready(s), 3);
    expect_pop(s, &t[1], 0);
    sched_pause(s, &t[1], 1);
    sched_pause(s, &t[1], 1);
    expect_none(s);
    assert_int_equal(sched_ready(s), 0);
    /* a retry while paused stays queued */
    assert_int_equal(sched_push(s, &t[0], 0, 10, 1), 0);
    expect_none(s);
    sched_pause(s, &t[0], 0);
    assert_int_equal(sched_ready(s), 3);
    expect_pop(s, &t[0], 0);
    expect_pop(s, &t[0], 1);
    expect_pop(s, &t[0], 2);
    expect_none(s);
    sched_pause(s, &t[1], 0);
    expect_pop(s, &t[1], 1);
    int stranger;
    sched_pause(s, &stranger, 1); /* unknown: no-op */
    expect_pop(s, &t[1], 2);
    sched_free(s);
    free(t);
}

static void test_accept_rejects(void **state) {
    (void)state;
    sched *s = sched_new();
    tjob *t = jobs_new(12);
    for (unsigned i = 0; i < 10; i++) {
        add(s, &t[i], "g", 0, i, 2, 0);
        push_all(s, &t[i], 2, 10);
    }
    /* another group, odd: it is skipped, and its turn is not used up */
    add(s, &t[11], "h", 0, 11, 4, 0);
    push_all(s, &t[11], 4, 10);
    void *job;
    uint32_t k;
    for (unsigned i = 0; i < 10; i += 2)
        for (uint32_t seg = 0; seg < 2; seg++) {
            assert_int_equal(sched_pop(s, accept_even, NULL, &job, &k), 1);
            assert_ptr_equal(job, &t[i]);
            assert_int_equal(k, seg);
        }
    assert_int_equal(sched_pop(s, accept_even, NULL, &job, &k), 0);
    assert_int_equal(sched_ready(s), 14);
    /* h has 0 frames against g's 100: h catches up first, then by frames */
    for (int i = 0; i < 4; i++)
        expect_pop(s, &t[11], (uint32_t)i);
    for (unsigned i = 1; i < 10; i += 2) {
        expect_pop(s, &t[i], 0);
        expect_pop(s, &t[i], 1);
    }
    expect_none(s);
    sched_free(s);
    free(t);
}

static void test_remove_job(void **state) {
    (void)state;
    sched *s = sched_new();
    tjob *t = jobs_new(3);
    add(s, &t[0], "g", 0, 1, 4, 2);
    add(s, &t[1], "g", 0, 2, 4, 0);
    push_all(s, &t[0], 4, 10);
    push_all(s, &t[1], 4, 10);
    expect_pop(s, &t[0], 0);
    expect_pop(s, &t[0], 1);
    assert_int_equal(sched_pending(s), 6);
    /* two running, two pending: all forgotten */
    sched_remove_job(s, &t[0]);
    sched_remove_job(s, &t[0]);
    sched_remove_job(s, &t[2]); /* never registered: no-op */
    assert_int_equal(sched_pending(s), 4);
    assert_int_equal(sched_ready(s), 4);
    sched_stopped(s, &t[0]);
    assert_int_equal(sched_push(s, &t[0], 0, 10, 0), -1);
    expect_pop(s, &t[1], 0);
    /* the same handle again is a new job: nothing running, nothing queued */
    add(s, &t[0], "g", 0, 3, 4, 1);
    push_all(s, &t[0], 2, 10);
    sched_remove_job(s, &t[1]); /* with pending segments only */
    expect_pop(s, &t[0], 0);
    expect_none(s);
    sched_stopped(s, &t[0]);
    expect_pop(s, &t[0], 1);
    sched_remove_job(s, &t[0]); /* the last job of its group and priority */
    assert_int_equal(sched_pending(s), 0);
    assert_int_equal(sched_ready(s), 0);
    add(s, &t[0], "g", 0, 4, 1, 0);
    push_all(s, &t[0], 1, 10);
    expect_pop(s, &t[0], 0);
    sched_free(s);
    free(t);
}

static void test_counts_and_errors(void **state) {
    (void)state;
    sched *s = sched_new();
    assert_non_null(s);
    tjob *t = jobs_new(3);
    assert_int_equal(sched_pending(s), 0);
    assert_int_equal(sched_ready(s), 0);
    expect_none(s);
    add(s, &t[0], "", 1, 1, 3, 1);
    sched_job_opts o = {.priority = 1, .seq = 9, .nseg = 3};
    assert_int_equal(sched_add_job(s, &t[0], &o), -1); /* already registered */
    assert_int_equal(sched_push(s, &t[1], 0, 10, 0), -1); /* unknown */
    push_all(s, &t[0], 3, 10);
    assert_int_equal(sched_push(s, &t[0], 3, 10, 1), -1); /* full */
    assert_int_equal(sched_pending(s), 3);
    assert_int_equal(sched_ready(s), 3);
    expect_pop(s, &t[0], 0);
    assert_int_equal(sched_pending(s), 2);
    assert_int_equal(sched_ready(s), 0); /* capped at one running */
    add(s, &t[1], NULL, 1, 2, 0, 0); /* no room at all */
    assert_int_equal(sched_push(s, &t[1], 0, 10, 0), -1);
    sched_free(s);
    sched_free(NULL);
    free(t);
}

/* ---- a random walk against a brute-force model of sched.h ---- */

#define MJ 24
#define MG 4
#define MP 3
#define MQ 6

typedef struct mjob {
    int live, paused, prio;
    int g; /* group slot: named groups 0..MG-1 per priority, own group MG + job */
    uint64_t seq, tie;
    uint32_t maxr, running, len, nseg;
    uint32_t seg[MQ], fr[MQ];
} mjob;

typedef struct mgroup {
    int njobs, awake;
    uint64_t vt, tie;
} mgroup;

typedef struct model {
    mjob j[MJ];
    mgroup g[MP][MG + MJ];
    uint64_t serial;
} model;

static int m_wants(const mjob *j) {
    return j->live && !j->paused && j->len && (!j->maxr || j->running < j->maxr);
}

static int m_awake(const model *m, int p, int g) {
    for (int i = 0; i < MJ; i++)
        if (m->j[i].live && m->j[i].prio == p && m->j[i].g == g && m_wants(&m->j[i]))
            return 1;
    return 0;
}

/* Groups that start or stop waiting, after any change (at most one). */
static void m_settle(model *m) {
    for (int p = 0; p < MP; p++)
        for (int g = 0; g < MG + MJ; g++) {
            mgroup *G = &m->g[p][g];
            int aw = G->njobs && m_awake(m, p, g);
            if (aw == G->awake)
                continue;
            int others = 0;
            uint64_t min = UINT64_MAX;
            for (int h = 0; h < MG + MJ; h++)
                if (h != g && m->g[p][h].awake) {
                    others = 1;
                    min = m->g[p][h].vt < min ? m->g[p][h].vt : min;
                }
            if (aw && others)
                G->vt = min;
            G->awake = aw;
        }
}

static int m_pop(model *m, unsigned salt, int *job, uint32_t *seg) {
    for (int p = MP - 1; p >= 0; p--) {
        int tried[MG + MJ] = {0};
        for (;;) {
            int g = -1;
            for (int h = 0; h < MG + MJ; h++) {
                const mgroup *G = &m->g[p][h];
                if (G->awake && !tried[h] &&
                    (g < 0 || G->vt < m->g[p][g].vt ||
                     (G->vt == m->g[p][g].vt && G->tie < m->g[p][g].tie)))
                    g = h;
            }
            if (g < 0)
                break;
            tried[g] = 1;
            int best = -1;
            for (int i = 0; i < MJ; i++) {
                const mjob *J = &m->j[i];
                if (J->prio != p || J->g != g || !m_wants(J) || (i + salt) % 3 == 0)
                    continue;
                if (best < 0 || J->seq < m->j[best].seq ||
                    (J->seq == m->j[best].seq && J->tie < m->j[best].tie))
                    best = i;
            }
            if (best < 0)
                continue;
            mjob *J = &m->j[best];
            *job = best;
            *seg = J->seg[0];
            m->g[p][g].vt += J->fr[0];
            memmove(J->seg, J->seg + 1, (J->len - 1) * sizeof *J->seg);
            memmove(J->fr, J->fr + 1, (J->len - 1) * sizeof *J->fr);
            J->len--;
            J->running++;
            m_settle(m);
            return 1;
        }
    }
    return 0;
}

static int accept_salted(void *ctx, void *job) {
    return (((tjob *)job)->id + *(unsigned *)ctx) % 3 != 0;
}

static void test_random_walk_matches_model(void **state) {
    (void)state;
    static const char *names[MG] = {"w", "x", "y", "z"};
    sched *s = sched_new();
    tjob *t = jobs_new(MJ);
    model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    uint64_t r = 0x9e3779b97f4a7c15u, seq = 0;
    size_t pending = 0, pops = 0;
    for (int step = 0; step < 200000; step++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int i = (int)((r >> 40) % MJ), op = (int)((r >> 20) % 16);
        mjob *J = &m->j[i];
        if (!J->live) {
            int p = (int)((r >> 8) % MP), named = (int)((r >> 12) % 5);
            int g = named < MG ? named : MG + i;
            J->nseg = 1 + (uint32_t)(r >> 30) % MQ;
            add(s, &t[i], named < MG ? names[named] : NULL, p, ++seq, J->nseg,
                (uint32_t)(r >> 50) % 3);
            if (m->g[p][g].njobs++ == 0)
                m->g[p][g] = (mgroup){.njobs = 1, .tie = m->serial++};
            *J = (mjob){.live = 1, .prio = p, .g = g, .seq = seq, .tie = m->serial++,
                        .maxr = (uint32_t)(r >> 50) % 3, .nseg = J->nseg};
        } else if (op < 6) {
            uint32_t k = (uint32_t)(r >> 24) % 100, fr = 1 + (uint32_t)(r >> 4) % 50;
            int front = op == 0, full = J->len == J->nseg;
            assert_int_equal(sched_push(s, &t[i], k, fr, front), full ? -1 : 0);
            if (!full) {
                int at = front ? 0 : (int)J->len;
                memmove(J->seg + at + 1, J->seg + at, (J->len - at) * sizeof *J->seg);
                memmove(J->fr + at + 1, J->fr + at, (J->len - at) * sizeof *J->fr);
                J->seg[at] = k;
                J->fr[at] = fr;
                J->len++;
                pending++;
                m_settle(m);
            }
        } else if (op < 11) {
            unsigned salt = (unsigned)(r >> 2) % 3;
            int mj = -1;
            uint32_t mk = 0, k = 0;
            void *job = NULL;
            int got = sched_pop(s, accept_salted, &salt, &job, &k);
            assert_int_equal(got, m_pop(m, salt, &mj, &mk));
            if (got) {
                assert_ptr_equal(job, &t[mj]);
                assert_int_equal(k, mk);
                pending--;
                pops++;
            }
        } else if (op < 13) {
            sched_stopped(s, &t[i]);
            J->running -= J->running > 0;
            m_settle(m);
        } else if (op < 15) {
            J->paused = (int)((r >> 3) % 2);
            sched_pause(s, &t[i], J->paused);
            m_settle(m);
        } else {
            sched_remove_job(s, &t[i]);
            J->live = 0;
            pending -= J->len;
            m_settle(m);
            m->g[J->prio][J->g].njobs--;
        }
        size_t ready = 0;
        for (int x = 0; x < MJ; x++)
            ready += m_wants(&m->j[x]) ? m->j[x].len : 0;
        assert_int_equal(sched_pending(s), pending);
        assert_int_equal(sched_ready(s), ready);
    }
    assert_true(pops > 10000);
    sched_free(s);
    free(m);
    free(t);
}

/* ---- a large farm ---- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_large_farm(void **state) {
    (void)state;
    enum { NJOBS = 10000, NSEG = 10, NGROUPS = 100 };
    sched *s = sched_new();
    tjob *t = jobs_new(NJOBS);
    uint8_t *seen = calloc((size_t)NJOBS * NSEG, 1);
    unsigned *per_group = calloc(NGROUPS, sizeof *per_group);
    assert_non_null(seen);
    assert_non_null(per_group);
    for (unsigned i = 0; i < NJOBS; i++) {
        char g[16];
        snprintf(g, sizeof g, "batch-%u", i % NGROUPS);
        add(s, &t[i], g, 0, i, NSEG, 0);
        push_all(s, &t[i], NSEG, 24);
    }
    assert_int_equal(sched_pending(s), (size_t)NJOBS * NSEG);
    double t0 = now();
    size_t n = 0;
    void *job;
    uint32_t k;
    while (sched_pop(s, accept_all, NULL, &job, &k)) {
        unsigned id = ((tjob *)job)->id;
        assert_true(k < NSEG);
        assert_int_equal(seen[id * NSEG + k], 0);
        seen[id * NSEG + k] = 1;
        /* equal segments: the groups go round, one segment each */
        assert_int_equal(per_group[id % NGROUPS], n / NGROUPS);
        per_group[id % NGROUPS]++;
        n++;
    }
    double dt = now() - t0;
    assert_int_equal(n, (size_t)NJOBS * NSEG);
    assert_int_equal(sched_pending(s), 0);
    double rate = (double)n / dt;
    print_message("large farm: %zu pops in %.4f s, %.0f pops/s\n", n, dt, rate);
    const char *no_timing = getenv("RF_SCHED_NO_TIMING");
    if (!no_timing || !no_timing[0] || strcmp(no_timing, "0") == 0)
        assert_true(rate > 200000.0);
    sched_free(s);
    free(per_group);
    free(seen);
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_order),
        cmocka_unit_test(test_fifo_and_retry_front),
        cmocka_unit_test(test_groups_alternate_by_frames),
        cmocka_unit_test(test_late_group_no_burst),
        cmocka_unit_test(test_max_running),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_accept_rejects),
        cmocka_unit_test(test_remove_job),
        cmocka_unit_test(test_counts_and_errors),
        cmocka_unit_test(test_random_walk_matches_model),
        cmocka_unit_test(test_large_farm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
