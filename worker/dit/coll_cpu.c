/* coll_cpu — collectives for ranks that are threads of one process.
 *
 * Ranks share memory, so a collective is: every rank publishes its buffer
 * pointers in its slot, a barrier, every rank reads the others' buffers
 * directly, a second barrier so that nobody returns (and reuses or frees a
 * buffer) while another rank still reads it.
 *
 * All-reduce must give bit-identical sums on every rank and from run to
 * run, or ranks of one model drift apart. Each element is therefore summed
 * exactly once, in rank order ((x0 + x1) + x2) + ..., by one rank, and that
 * one result is copied to every rank's output; thread timing cannot change
 * the order. The element range is cut into one chunk per rank so the sums
 * run in parallel. Only the owner of a chunk reads or writes that chunk of
 * any buffer, and it reads every input block before writing any output,
 * which makes send == recv safe.
 *
 * Point-to-point messages are copied into a FIFO per (sender, receiver)
 * pair and send returns at once, so a ring where every rank sends before it
 * receives cannot deadlock here. NCCL gives no such promise for large
 * messages; code meant for both backends orders its sends and receives
 * (even ranks send first, odd ranks receive first).
 *
 * One mutex guards the barrier and the mailboxes; the data itself is read
 * and written outside it.
 */
#include "coll_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const void *send;
    void *recv;
    size_t count;
} cpu_slot;

typedef struct cpu_msg {
    struct cpu_msg *next;
    size_t nbytes;
    unsigned char data[];
} cpu_msg;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long gen; /* barrier generation: bumps when the last rank arrives */
    int waiting;
    int failed;   /* a rank gave up: everything fails from now on */
    int nleft;    /* ranks that will call nothing more */
    char *left;   /* per rank */
    cpu_slot *slots;
    cpu_msg **head, **tail; /* nranks*nranks queues, [sender*nranks + receiver] */
} cpu_state;

static cpu_state *cpu_of(coll *c)
{
    return c->group->backend;
}

static int cpu_barrier(coll *c)
{
    cpu_state *s = cpu_of(c);
    int n = c->group->nranks, rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->failed || s->nleft > 0) {
        rc = -1;
    } else if (++s->waiting == n) {
        s->waiting = 0;
        s->gen++;
        pthread_cond_broadcast(&s->cv);
    } else {
        unsigned long my = s->gen;
        while (s->gen == my && !s->failed && s->nleft == 0)
            pthread_cond_wait(&s->cv, &s->mu);
        rc = s->gen == my ? -1 : 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Publish this rank's buffers, wait for all, and check that every rank
 * passed the same count (all ranks see the same slots, so all agree on the
 * verdict). On a mismatch the second barrier keeps the slots stable until
 * every rank has looked at them. */
static int cpu_publish(coll *c, const void *send, void *recv, size_t count)
{
    cpu_state *s = cpu_of(c);
    s->slots[c->rank] = (cpu_slot){send, recv, count};
    if (cpu_barrier(c) != 0)
        return -1;
    for (int q = 0; q < c->group->nranks; q++) {
        if (s->slots[q].count != count) {
            cpu_barrier(c);
            return -1;
        }
    }
    return 0;
}

/* [lo, hi) of count elements for rank r of n: sizes differ by at most one. */
static void cpu_chunk(size_t count, int r, int n, size_t *lo, size_t *hi)
{
    size_t base = count / (size_t)n, extra = count % (size_t)n, ur = (size_t)r;
    *lo = ur * base + (ur < extra ? ur : extra);
    *hi = *lo + base + (ur < extra ? 1 : 0);
}

enum { CPU_BLOCK = 2048 };

static int cpu_allreduce_sum(coll *c, const void *send, void *recv, size_t count, coll_type t)
{
    (void)t; /* COLL_F32 is the only type */
    int n = c->group->nranks;
    if (n == 1) {
        if (send != recv)
            memmove(recv, send, count * sizeof(float));
        return 0;
    }
    if (cpu_publish(c, send, recv, count) != 0)
        return -1;
    cpu_state *s = cpu_of(c);
    size_t lo, hi;
    cpu_chunk(count, c->rank, n, &lo, &hi);
    float acc[CPU_BLOCK];
    for (size_t i = lo; i < hi; i += CPU_BLOCK) {
        size_t m = hi - i < CPU_BLOCK ? hi - i : CPU_BLOCK;
        memcpy(acc, (const float *)s->slots[0].send + i, m * sizeof(float));
        for (int q = 1; q < n; q++) {
            const float *x = (const float *)s->slots[q].send + i;
            for (size_t j = 0; j < m; j++)
                acc[j] += x[j];
        }
        for (int q = 0; q < n; q++)
            memcpy((float *)s->slots[q].recv + i, acc, m * sizeof(float));
    }
    return cpu_barrier(c);
}

/* In place in NCCL's sense (send == recv + rank*count) works: a rank's own
 * block is then already where it belongs and is not copied, and no rank
 * writes into another rank's buffer. */
static int cpu_allgather(coll *c, const void *send, void *recv, size_t count, coll_type t)
{
    size_t es = coll_type_size(t), nb = count * es;
    int n = c->group->nranks;
    if (cpu_publish(c, send, recv, count) != 0)
        return -1;
    cpu_state *s = cpu_of(c);
    for (int q = 0; q < n; q++) {
        unsigned char *dst = (unsigned char *)recv + (size_t)q * nb;
        if (s->slots[q].send != dst)
            memcpy(dst, s->slots[q].send, nb);
    }
    return cpu_barrier(c);
}

static int cpu_broadcast(coll *c, void *buf, size_t count, coll_type t, int root)
{
    if (cpu_publish(c, buf, buf, count) != 0)
        return -1;
    cpu_state *s = cpu_of(c);
    if (c->rank != root && count > 0)
        memcpy(buf, s->slots[root].send, count * coll_type_size(t));
    return cpu_barrier(c);
}

static int cpu_send(coll *c, const void *buf, size_t count, coll_type t, int peer)
{
    size_t nb = count * coll_type_size(t);
    cpu_msg *m = malloc(sizeof *m + nb);
    if (!m)
        return -1;
    m->next = NULL;
    m->nbytes = nb;
    if (nb)
        memcpy(m->data, buf, nb);
    cpu_state *s = cpu_of(c);
    size_t q = (size_t)c->rank * (size_t)c->group->nranks + (size_t)peer;
    pthread_mutex_lock(&s->mu);
    if (s->failed) {
        pthread_mutex_unlock(&s->mu);
        free(m);
        return -1;
    }
    if (s->tail[q])
        s->tail[q]->next = m;
    else
        s->head[q] = m;
    s->tail[q] = m;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* A message of another size than the receiver expects is consumed and
 * reported as an error: the two ranks disagree about the protocol. */
static int cpu_recv(coll *c, void *buf, size_t count, coll_type t, int peer)
{
    cpu_state *s = cpu_of(c);
    size_t q = (size_t)peer * (size_t)c->group->nranks + (size_t)c->rank;
    pthread_mutex_lock(&s->mu);
    while (!s->head[q] && !s->failed && !s->left[peer])
        pthread_cond_wait(&s->cv, &s->mu);
    cpu_msg *m = s->failed ? NULL : s->head[q];
    if (m) {
        s->head[q] = m->next;
        if (!s->head[q])
            s->tail[q] = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (!m)
        return -1;
    size_t nb = count * coll_type_size(t);
    int rc = m->nbytes == nb ? 0 : -1;
    if (rc == 0 && nb)
        memcpy(buf, m->data, nb);
    free(m);
    return rc;
}

static void cpu_left(coll_group *g, int rank, int failed)
{
    cpu_state *s = g->backend;
    pthread_mutex_lock(&s->mu);
    if (!s->left[rank]) {
        s->left[rank] = 1;
        s->nleft++;
    }
    if (failed)
        s->failed = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void cpu_free(coll_group *g)
{
    cpu_state *s = g->backend;
    if (!s)
        return;
    size_t nq = (size_t)g->nranks * (size_t)g->nranks;
    for (size_t q = 0; q < nq; q++) {
        cpu_msg *m = s->head[q];
        while (m) {
            cpu_msg *next = m->next;
            free(m);
            m = next;
        }
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->left);
    free(s->slots);
    free(s->head);
    free(s->tail);
    free(s);
    g->backend = NULL;
}

static const coll_ops cpu_ops = {
    .name = "cpu",
    .allreduce_sum = cpu_allreduce_sum,
    .allgather = cpu_allgather,
    .broadcast = cpu_broadcast,
    .send = cpu_send,
    .recv = cpu_recv,
    .barrier = cpu_barrier,
    .left = cpu_left,
    .free = cpu_free,
};

int coll_cpu_init(coll_group *g, char *err, size_t errlen)
{
    size_t n = (size_t)g->nranks;
    cpu_state *s = calloc(1, sizeof *s);
    if (s) {
        s->left = calloc(n, 1);
        s->slots = calloc(n, sizeof *s->slots);
        s->head = calloc(n * n, sizeof *s->head);
        s->tail = calloc(n * n, sizeof *s->tail);
    }
    if (!s || !s->left || !s->slots || !s->head || !s->tail) {
        if (s) {
            free(s->left);
            free(s->slots);
            free(s->head);
            free(s->tail);
        }
        free(s);
        snprintf(err, errlen, "coll: out of memory for a group of %d ranks", g->nranks);
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    g->backend = s;
    g->ops = &cpu_ops;
    return 0;
}
