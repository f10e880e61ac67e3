/* coll — the collective interface, independent of the backend.
 *
 * Arguments are checked here, once, for every backend; a bad call returns
 * COLL_EINVAL-style -1 without touching the group, and since every rank
 * makes the same calls in the same order every rank fails the same way.
 * coll_run is the one place that knows ranks are threads: it is the CPU
 * way to start a group (an NCCL group is started by one process per GPU).
 */
#include "coll_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t coll_type_size(coll_type t)
{
    switch (t) {
    case COLL_F32: return sizeof(float);
    }
    return 0;
}

int coll_group_new(int nranks, coll_group **out, char *err, size_t errlen)
{
    *out = NULL;
    if (nranks < 1 || nranks > 64) {
        snprintf(err, errlen, "coll: %d ranks requested, want 1..64", nranks);
        return -1;
    }
    coll_group *g = calloc(1, sizeof *g);
    if (!g || !(g->ranks = calloc((size_t)nranks, sizeof *g->ranks))) {
        free(g);
        snprintf(err, errlen, "coll: out of memory for a group of %d ranks", nranks);
        return -1;
    }
    g->nranks = nranks;
    for (int r = 0; r < nranks; r++)
        g->ranks[r] = (coll){.group = g, .rank = r};
    if (coll_cpu_init(g, err, errlen) != 0) {
        free(g->ranks);
        free(g);
        return -1;
    }
    *out = g;
    return 0;
}

void coll_group_free(coll_group *g)
{
    if (!g)
        return;
    g->ops->free(g);
    free(g->ranks);
    free(g);
}

coll *coll_get(coll_group *g, int rank)
{
    return rank >= 0 && rank < g->nranks ? &g->ranks[rank] : NULL;
}

int coll_rank(const coll *c)
{
    return c->rank;
}

int coll_size(const coll *c)
{
    return c->group->nranks;
}

int coll_allreduce_sum(coll *c, const void *send, void *recv, size_t count, coll_type t)
{
    if (coll_type_size(t) == 0 || (count && (!send || !recv)))
        return -1;
    return c->group->ops->allreduce_sum(c, send, recv, count, t);
}

int coll_allgather(coll *c, const void *send, void *recv, size_t count, coll_type t)
{
    if (coll_type_size(t) == 0 || (count && (!send || !recv)))
        return -1;
    return c->group->ops->allgather(c, send, recv, count, t);
}

int coll_broadcast(coll *c, void *buf, size_t count, coll_type t, int root)
{
    if (coll_type_size(t) == 0 || (count && !buf) || root < 0 || root >= c->group->nranks)
        return -1;
    return c->group->ops->broadcast(c, buf, count, t, root);
}

int coll_send(coll *c, const void *buf, size_t count, coll_type t, int peer)
{
    if (coll_type_size(t) == 0 || (count && !buf) || peer < 0 || peer >= c->group->nranks)
        return -1;
    return c->group->ops->send(c, buf, count, t, peer);
}

int coll_recv(coll *c, void *buf, size_t count, coll_type t, int peer)
{
    if (coll_type_size(t) == 0 || (count && !buf) || peer < 0 || peer >= c->group->nranks)
        return -1;
    return c->group->ops->recv(c, buf, count, t, peer);
}

int coll_barrier(coll *c)
{
    return c->group->ops->barrier(c);
}

/* ---- ranks as threads ---- */

typedef struct {
    coll_group *g;
    int (*fn)(coll *c, void *arg);
    void *arg;
    _Atomic int first_rc; /* the first failure in time, not in rank order */
} coll_run_ctx;

typedef struct {
    coll_run_ctx *ctx;
    int rank;
    int rc;
} coll_run_rank;

static void *coll_run_main(void *p)
{
    coll_run_rank *rr = p;
    coll_run_ctx *ctx = rr->ctx;
    rr->rc = ctx->fn(&ctx->g->ranks[rr->rank], ctx->arg);
    if (rr->rc != 0) {
        int zero = 0;
        atomic_compare_exchange_strong(&ctx->first_rc, &zero, rr->rc);
    }
    ctx->g->ops->left(ctx->g, rr->rank, rr->rc != 0);
    return NULL;
}

/* The failure that started it all is the useful one: once a rank fails,
 * the others' operations fail too and they return errors of their own. */
int coll_run(int nranks, int (*fn)(coll *c, void *arg), void *arg, char *err, size_t errlen)
{
    coll_group *g;
    if (coll_group_new(nranks, &g, err, errlen) != 0)
        return -1;
    coll_run_ctx ctx = {.g = g, .fn = fn, .arg = arg};
    atomic_init(&ctx.first_rc, 0);
    coll_run_rank *rr = calloc((size_t)nranks, sizeof *rr);
    pthread_t *th = calloc((size_t)nranks, sizeof *th);
    if (!rr || !th) {
        free(rr);
        free(th);
        coll_group_free(g);
        snprintf(err, errlen, "coll: out of memory starting %d ranks", nranks);
        return -1;
    }
    int started = 0, rc = 0;
    for (; started < nranks; started++) {
        rr[started] = (coll_run_rank){.ctx = &ctx, .rank = started};
        int e = pthread_create(&th[started], NULL, coll_run_main, &rr[started]);
        if (e != 0) {
            snprintf(err, errlen, "coll: cannot start rank %d of %d: %s", started, nranks,
                     strerror(e));
            for (int r = started; r < nranks; r++)
                g->ops->left(g, r, 1);
            rc = -1;
            break;
        }
    }
    for (int r = 0; r < started; r++)
        pthread_join(th[r], NULL);
    if (rc == 0) {
        rc = atomic_load(&ctx.first_rc);
        if (rc != 0)
            snprintf(err, errlen, "coll: a rank of %d returned %d", nranks, rc);
    }
    free(rr);
    free(th);
    coll_group_free(g);
    return rc;
}
