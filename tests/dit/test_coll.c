/* coll, CPU backend: every collective with 1..5 ranks and counts that do
 * not divide evenly, many rounds each; results bit-exact and identical on
 * every rank; point-to-point rings; and a rank that fails or leaves early
 * makes the others fail instead of hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <stdatomic.h>

#include "coll.h"

enum { ROUNDS = 60 };

static const size_t counts[] = {0, 1, 2, 3, 7, 64, 1000, 4099, 5000};
#define NCOUNTS (sizeof counts / sizeof counts[0])

/* Values whose sums round, so that a different order of addition would
 * show in the bits. */
static float val(int rank, size_t i, int round)
{
    return 0.1f * (float)(rank + 1) + 1e-3f * (float)i + 1.7e-5f * (float)round +
           (i % 3 ? 1e7f : -3.3f);
}

typedef struct {
    int bad; /* counts mismatches seen by any rank */
} shared;

static int expect_bits(const float *got, const float *want, size_t n)
{
    return memcmp(got, want, n * sizeof(float)) == 0 ? 0 : 1;
}

static int allreduce_rank(coll *c, void *arg)
{
    shared *sh = arg;
    int r = coll_rank(c), n = coll_size(c), bad = 0;
    float *send = malloc(5000 * sizeof(float)), *recv = malloc(5000 * sizeof(float));
    float *want = malloc(5000 * sizeof(float));
    if (!send || !recv || !want)
        return 99;
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t k = 0; k < NCOUNTS; k++) {
            size_t cnt = counts[k];
            for (size_t i = 0; i < cnt; i++) {
                send[i] = val(r, i, round);
                float s = val(0, i, round);
                for (int q = 1; q < n; q++)
                    s += val(q, i, round);
                want[i] = s;
            }
            int inplace = (round + (int)k) % 2;
            if (inplace) {
                if (coll_allreduce_sum(c, send, send, cnt, COLL_F32) != 0)
                    return 1;
                bad += expect_bits(send, want, cnt);
            } else {
                memset(recv, 0xff, cnt * sizeof(float));
                if (coll_allreduce_sum(c, send, recv, cnt, COLL_F32) != 0)
                    return 1;
                bad += expect_bits(recv, want, cnt);
                for (size_t i = 0; i < cnt; i++) /* send untouched */
                    bad += send[i] != val(r, i, round);
            }
        }
    }
    free(send);
    free(recv);
    free(want);
    if (bad)
        __atomic_add_fetch(&sh->bad, bad, __ATOMIC_RELAXED);
    return 0;
}

static void test_allreduce_exact_every_rank(void **state)
{
    (void)state;
    for (int n = 1; n <= 5; n++) {
        shared sh = {0};
        char err[256];
        assert_int_equal(coll_run(n, allreduce_rank, &sh, err, sizeof err), 0);
        assert_int_equal(sh.bad, 0);
    }
}

static int allgather_rank(coll *c, void *arg)
{
    shared *sh = arg;
    int r = coll_rank(c), n = coll_size(c), bad = 0;
    float *recv = malloc(5 * 5000 * sizeof(float)), *send = malloc(5000 * sizeof(float));
    if (!recv || !send)
        return 99;
    for (int round = 0; round < ROUNDS / 4; round++) {
        for (size_t k = 0; k < NCOUNTS; k++) {
            size_t cnt = counts[k];
            int inplace = (round + (int)k) % 2;
            float *mine = inplace ? recv + (size_t)r * cnt : send;
            memset(recv, 0xff, (size_t)n * cnt * sizeof(float));
            for (size_t i = 0; i < cnt; i++)
                mine[i] = val(r, i, round);
            if (coll_allgather(c, mine, recv, cnt, COLL_F32) != 0)
                return 1;
            for (int q = 0; q < n; q++)
                for (size_t i = 0; i < cnt; i++)
                    bad += recv[(size_t)q * cnt + i] != val(q, i, round);
        }
    }
    free(recv);
    free(send);
    if (bad)
        __atomic_add_fetch(&sh->bad, bad, __ATOMIC_RELAXED);
    return 0;
}

static void test_allgather_in_rank_order(void **state)
{
    (void)state;
    for (int n = 1; n <= 5; n++) {
        shared sh = {0};
        char err[256];
        assert_int_equal(coll_run(n, allgather_rank, &sh, err, sizeof err), 0);
        assert_int_equal(sh.bad, 0);
    }
}

static int broadcast_rank(coll *c, void *arg)
{
    shared *sh = arg;
    int r = coll_rank(c), n = coll_size(c), bad = 0;
    float buf[4099];
    for (int round = 0; round < ROUNDS; round++) {
        int root = round % n;
        size_t cnt = counts[(size_t)round % NCOUNTS];
        if (cnt > 4099)
            cnt = 4099;
        for (size_t i = 0; i < cnt; i++)
            buf[i] = r == root ? val(root, i, round) : -1.0f;
        if (coll_broadcast(c, buf, cnt, COLL_F32, root) != 0)
            return 1;
        for (size_t i = 0; i < cnt; i++)
            bad += buf[i] != val(root, i, round);
    }
    if (bad)
        __atomic_add_fetch(&sh->bad, bad, __ATOMIC_RELAXED);
    return 0;
}

static void test_broadcast_from_every_root(void **state)
{
    (void)state;
    for (int n = 1; n <= 5; n++) {
        shared sh = {0};
        char err[256];
        assert_int_equal(coll_run(n, broadcast_rank, &sh, err, sizeof err), 0);
        assert_int_equal(sh.bad, 0);
    }
}

/* A ring in the order that works on every backend (even ranks send first),
 * then the order only the buffered CPU backend allows (all send, then all
 * receive, several messages queued per pair, received in order). */
static int ring_rank(coll *c, void *arg)
{
    shared *sh = arg;
    int r = coll_rank(c), n = coll_size(c), bad = 0;
    int next = (r + 1) % n, prev = (r + n - 1) % n;
    float out[100], in[100];
    for (int round = 0; round < ROUNDS; round++) {
        size_t cnt = 1 + (size_t)round % 100;
        for (size_t i = 0; i < cnt; i++)
            out[i] = val(r, i, round);
        if (r % 2 == 0) {
            if (coll_send(c, out, cnt, COLL_F32, next) || coll_recv(c, in, cnt, COLL_F32, prev))
                return 1;
        } else {
            if (coll_recv(c, in, cnt, COLL_F32, prev) || coll_send(c, out, cnt, COLL_F32, next))
                return 1;
        }
        for (size_t i = 0; i < cnt; i++)
            bad += in[i] != val(prev, i, round);
    }
    for (int m = 0; m < 3; m++) {
        for (size_t i = 0; i < 10; i++)
            out[i] = val(r, i, 1000 + m);
        if (coll_send(c, out, 10, COLL_F32, next))
            return 1;
    }
    for (int m = 0; m < 3; m++) {
        if (coll_recv(c, in, 10, COLL_F32, prev))
            return 1;
        for (size_t i = 0; i < 10; i++)
            bad += in[i] != val(prev, i, 1000 + m);
    }
    /* A size the receiver does not expect is an error, not a short copy. */
    if (coll_send(c, out, 5, COLL_F32, next))
        return 1;
    bad += coll_recv(c, in, 6, COLL_F32, prev) == 0;
    if (coll_barrier(c))
        return 1;
    if (bad)
        __atomic_add_fetch(&sh->bad, bad, __ATOMIC_RELAXED);
    return 0;
}

static void test_send_recv_ring(void **state)
{
    (void)state;
    for (int n = 1; n <= 5; n++) {
        shared sh = {0};
        char err[256];
        assert_int_equal(coll_run(n, ring_rank, &sh, err, sizeof err), 0);
        assert_int_equal(sh.bad, 0);
    }
}

typedef struct {
    atomic_int arrived;
    int bad;
} barrier_shared;

static int barrier_rank(coll *c, void *arg)
{
    barrier_shared *sh = arg;
    int n = coll_size(c);
    for (int round = 1; round <= 200; round++) {
        atomic_fetch_add(&sh->arrived, 1);
        if (coll_barrier(c))
            return 1;
        /* Everyone arrived at this round, nobody is past the next one. */
        int seen = atomic_load(&sh->arrived);
        if (seen < round * n || seen > (round + 1) * n)
            __atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
        if (coll_barrier(c))
            return 1;
    }
    return 0;
}

static void test_barrier_holds_everyone(void **state)
{
    (void)state;
    for (int n = 1; n <= 4; n++) {
        barrier_shared sh = {0};
        atomic_init(&sh.arrived, 0);
        char err[256];
        assert_int_equal(coll_run(n, barrier_rank, &sh, err, sizeof err), 0);
        assert_int_equal(sh.bad, 0);
    }
}

/* Rank 1 fails with 42 before the collective the others wait in; they
 * must come back with errors, and coll_run reports 42. */
static int failing_rank(coll *c, void *arg)
{
    (void)arg;
    float x[8] = {0};
    if (coll_rank(c) == 1)
        return 42;
    if (coll_allreduce_sum(c, x, x, 8, COLL_F32) == 0)
        return 0;
    return -7;
}

/* Rank 0 leaves after one barrier the others follow with a second. */
static int leaving_rank(coll *c, void *arg)
{
    int *errors = arg;
    if (coll_barrier(c))
        return 1;
    if (coll_rank(c) == 0)
        return 0;
    if (coll_barrier(c) != 0)
        __atomic_add_fetch(errors, 1, __ATOMIC_RELAXED);
    float x;
    if (coll_recv(c, &x, 1, COLL_F32, 0) != 0)
        __atomic_add_fetch(errors, 1, __ATOMIC_RELAXED);
    return 0;
}

static int mismatch_rank(coll *c, void *arg)
{
    int *errors = arg;
    float x[4] = {1, 2, 3, 4};
    if (coll_allreduce_sum(c, x, x, (size_t)(coll_rank(c) == 0 ? 3 : 4), COLL_F32) != 0)
        __atomic_add_fetch(errors, 1, __ATOMIC_RELAXED);
    /* The group is still usable afterwards. */
    if (coll_allreduce_sum(c, x, x, 4, COLL_F32) != 0)
        return 1;
    return x[3] == 4.0f * (float)coll_size(c) ? 0 : 2;
}

static void test_failures_do_not_hang(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(coll_run(3, failing_rank, NULL, err, sizeof err), 42);
    assert_non_null(strstr(err, "returned 42"));

    int errors = 0;
    assert_int_equal(coll_run(3, leaving_rank, &errors, err, sizeof err), 0);
    assert_int_equal(errors, 4);

    errors = 0;
    assert_int_equal(coll_run(3, mismatch_rank, &errors, err, sizeof err), 0);
    assert_int_equal(errors, 3);

    coll_group *g;
    assert_int_not_equal(coll_group_new(0, &g, err, sizeof err), 0);
    assert_null(g);
    assert_non_null(strstr(err, "0 ranks requested"));
    assert_int_not_equal(coll_group_new(65, &g, err, sizeof err), 0);
    assert_int_equal(coll_group_new(2, &g, err, sizeof err), 0);
    assert_int_equal(coll_rank(coll_get(g, 1)), 1);
    assert_int_equal(coll_size(coll_get(g, 1)), 2);
    assert_null(coll_get(g, 2));
    float x = 0;
    assert_int_not_equal(coll_send(coll_get(g, 0), &x, 1, COLL_F32, 2), 0);
    assert_int_not_equal(coll_broadcast(coll_get(g, 0), &x, 1, COLL_F32, -1), 0);
    assert_int_not_equal(coll_allreduce_sum(coll_get(g, 0), &x, &x, 1, (coll_type)7), 0);
    coll_group_free(g);
    coll_group_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce_exact_every_rank),
        cmocka_unit_test(test_allgather_in_rank_order),
        cmocka_unit_test(test_broadcast_from_every_root),
        cmocka_unit_test(test_send_recv_ring),
        cmocka_unit_test(test_barrier_holds_everyone),
        cmocka_unit_test(test_failures_do_not_hang),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
