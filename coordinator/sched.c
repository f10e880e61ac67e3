/* sched — per-job pending queues in priority order. See sched.h. */
#include "sched.h"

#include <stdlib.h>
#include <string.h>

typedef struct sched_q {
    void *job;
    int priority;
    uint64_t seq;
    uint32_t cap, head, len; /* ring buffer of pending segment indices */
    uint32_t *ring;
} sched_q;

struct sched {
    sched_q *q; /* sorted: priority desc, seq asc */
    size_t n, cap;
    size_t pending;
};

sched *sched_new(void) { return calloc(1, sizeof(sched)); }

void sched_free(sched *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->q[i].ring);
    free(s->q);
    free(s);
}

static sched_q *find(const sched *s, const void *job) {
    for (size_t i = 0; i < s->n; i++)
        if (s->q[i].job == job)
            return &s->q[i];
    return NULL;
}

int sched_add_job(sched *s, void *job, int priority, uint64_t seq, uint32_t nseg) {
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        sched_q *nq = realloc(s->q, ncap * sizeof *nq);
        if (!nq)
            return -1;
        s->q = nq;
        s->cap = ncap;
    }
    uint32_t *ring = malloc((nseg ? nseg : 1) * sizeof *ring);
    if (!ring)
        return -1;
    size_t pos = s->n;
    while (pos > 0 && (s->q[pos - 1].priority < priority ||
                       (s->q[pos - 1].priority == priority && s->q[pos - 1].seq > seq)))
        pos--;
    memmove(&s->q[pos + 1], &s->q[pos], (s->n - pos) * sizeof *s->q);
    s->q[pos] = (sched_q){.job = job, .priority = priority, .seq = seq, .cap = nseg ? nseg : 1,
                          .ring = ring};
    s->n++;
    return 0;
}

void sched_remove_job(sched *s, void *job) {
    sched_q *q = find(s, job);
    if (!q)
        return;
    size_t i = (size_t)(q - s->q);
    s->pending -= q->len;
    free(q->ring);
    memmove(&s->q[i], &s->q[i + 1], (s->n - i - 1) * sizeof *s->q);
    s->n--;
}

int sched_push(sched *s, void *job, uint32_t seg, int front) {
    sched_q *q = find(s, job);
    if (!q || q->len == q->cap)
        return -1;
    if (front) {
        q->head = (q->head + q->cap - 1) % q->cap;
        q->ring[q->head] = seg;
    } else {
        q->ring[(q->head + q->len) % q->cap] = seg;
    }
    q->len++;
    s->pending++;
    return 0;
}

int sched_pop(sched *s, int (*accept)(void *ctx, void *job), void *ctx, void **job, uint32_t *seg) {
    for (size_t i = 0; i < s->n; i++) {
        sched_q *q = &s->q[i];
        if (q->len == 0 || !accept(ctx, q->job))
            continue;
        *job = q->job;
        *seg = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        s->pending--;
        return 1;
    }
    return 0;
}

size_t sched_pending(const sched *s) { return s->pending; }
