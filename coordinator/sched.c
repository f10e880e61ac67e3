/* sched — fair-share segment scheduling. See sched.h for the order it keeps.
 *
 * Data structures, from the top of a pop down:
 *
 *   levels   one per priority in use, sorted (higher first). A farm uses few
 *            priorities, so a sorted array of pointers is enough.
 *   level    a binary min-heap of the groups at that priority that have an
 *            eligible job, keyed by (virtual time, creation order). The top
 *            is the group that has had the fewest frames: the next to serve.
 *   group    a binary min-heap of its eligible jobs keyed by (seq,
 *            registration order). A heap rather than a list because jobs
 *            leave and re-enter it all the time (cap reached, stopped,
 *            paused, resumed, queue ran dry, retry pushed) and must re-enter
 *            in seq order: O(log n) instead of a walk of the group.
 *   job      a ring of pending (segment, frames); a retry goes in at the
 *            head.
 *
 * A job is in its group's heap exactly when it is eligible (not paused, has
 * a pending segment, below its cap), and a group is in its level's heap
 * exactly when its heap is not empty, so a pop looks only at work it can
 * hand out: O(log groups + log jobs) for a pop, whatever the number of
 * queued jobs. Every heap entry records its index so that an entry can
 * leave from anywhere (pause, remove) in O(log n).
 *
 * When the worker's accept rejects a job, the pop takes that job off its
 * group's heap into a scratch array and looks at the next; a group with no
 * accepted job goes to a second scratch array likewise, and everything
 * goes back afterwards. This walks jobs and groups in exactly the order of
 * the header without a sorted copy, and costs O(log n) per rejection.
 *
 * Memory. Heaps and scratch arrays get their room when a job is registered
 * (the only call that can fail besides sched_push), so pop, stopped, pause
 * and remove never allocate and cannot fail.
 *
 * Virtual time. A group that becomes eligible (new, or with work again
 * after having none eligible) starts at the smallest virtual time of the
 * groups waiting at its priority; when none waits it keeps its own, as only
 * differences between waiting groups matter. A group that was ahead is thus
 * forgiven its lead when it runs dry: without accept rejections the lead is
 * less than one segment (the group served is always the least served one),
 * and with them it came from workers the others could not use.
 *
 * Jobs and named groups are found through two small open-addressing hash
 * tables (pointer key; name and priority key), so no call scans all jobs.
 */
#include "sched.h"

#include <stdlib.h>
#include <string.h>

#define NOPOS ((size_t)-1)

/* ---- heap of nodes with a recorded position ---- */

typedef struct snode {
    uint64_t key, tie; /* lower first */
    size_t pos;        /* index in the heap that holds it, NOPOS when none */
} snode;

typedef struct sheap {
    snode **a;
    size_t n, cap;
} sheap;

static int node_less(const snode *x, const snode *y) {
    return x->key < y->key || (x->key == y->key && x->tie < y->tie);
}

static void heap_set(sheap *h, size_t i, snode *x) {
    h->a[i] = x;
    x->pos = i;
}

static void heap_fix(sheap *h, size_t i) {
    snode *x = h->a[i];
    while (i > 0 && node_less(x, h->a[(i - 1) / 2])) {
        heap_set(h, i, h->a[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && node_less(h->a[c + 1], h->a[c]))
            c++;
        if (!node_less(h->a[c], x))
            break;
        heap_set(h, i, h->a[c]);
        i = c;
    }
    heap_set(h, i, x);
}

/* Array a (capacity *cap) with room for n >= 1 elements of `size`, or NULL
 * (a untouched) when out of memory. */
static void *grow(void *a, size_t *cap, size_t n, size_t size) {
    if (n <= *cap)
        return a;
    size_t ncap = *cap ? *cap * 2 : 4;
    while (ncap < n)
        ncap *= 2;
    void *na = realloc(a, ncap * size);
    if (na)
        *cap = ncap;
    return na;
}

static int heap_reserve(sheap *h, size_t n) {
    snode **a = grow(h->a, &h->cap, n, sizeof *a);
    if (!a)
        return -1;
    h->a = a;
    return 0;
}

/* Room was reserved when the node's job or group was registered. */
static void heap_push(sheap *h, snode *x) {
    heap_set(h, h->n++, x);
    heap_fix(h, h->n - 1);
}

static void heap_del(sheap *h, snode *x) {
    size_t i = x->pos;
    x->pos = NOPOS;
    if (--h->n == i)
        return;
    heap_set(h, i, h->a[h->n]);
    heap_fix(h, i);
}

/* ---- hash table of pointers with their hashes (linear probing) ---- */

typedef struct sslot {
    uint64_t h;
    void *p;
} sslot;

typedef struct stab {
    sslot *e; /* p == NULL: empty */
    size_t cap, n;
} stab;

static uint64_t mix(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static void tab_put(stab *t, uint64_t h, void *p) {
    size_t i = h & (t->cap - 1);
    while (t->e[i].p)
        i = (i + 1) & (t->cap - 1);
    t->e[i] = (sslot){h, p};
    t->n++;
}

/* Room for n entries at a load of at most one half. */
static int tab_reserve(stab *t, size_t n) {
    if (2 * n <= t->cap)
        return 0;
    size_t ncap = t->cap ? t->cap : 16;
    while (ncap < 2 * n)
        ncap *= 2;
    sslot *ne = calloc(ncap, sizeof *ne);
    if (!ne)
        return -1;
    stab old = *t;
    *t = (stab){ne, ncap, 0};
    for (size_t i = 0; i < old.cap; i++)
        if (old.e[i].p)
            tab_put(t, old.e[i].h, old.e[i].p);
    free(old.e);
    return 0;
}

/* Slot of the entry with hash h for which eq(entry, key), or NOPOS. */
static size_t tab_find(const stab *t, uint64_t h, int (*eq)(const void *, const void *),
                       const void *key) {
    if (!t->cap)
        return NOPOS;
    for (size_t i = h & (t->cap - 1); t->e[i].p; i = (i + 1) & (t->cap - 1))
        if (t->e[i].h == h && eq(t->e[i].p, key))
            return i;
    return NOPOS;
}

/* Backward-shift deletion: no tombstones, probes stay short. */
static void tab_del_at(stab *t, size_t i) {
    size_t m = t->cap - 1;
    for (size_t j = (i + 1) & m; t->e[j].p; j = (j + 1) & m) {
        size_t home = t->e[j].h & m;
        /* move e[j] into the hole at i unless its home lies in (i, j] */
        if (((j - home) & m) >= ((j - i) & m)) {
            t->e[i] = t->e[j];
            i = j;
        }
    }
    t->e[i] = (sslot){0, NULL};
    t->n--;
}

/* ---- the scheduler ---- */

typedef struct sseg {
    uint32_t seg, frames;
} sseg;

typedef struct slevel {
    int priority;
    size_t ngroups; /* registered groups; the level goes at 0 */
    sheap groups;   /* groups with an eligible job, by virtual time */
} slevel;

typedef struct sgroup {
    snode node;    /* key: virtual time (frames handed out), tie: creation */
    slevel *lv;
    char *name;    /* NULL: the group of one job, not in the table */
    uint64_t h;
    size_t njobs;  /* registered jobs; the group goes at 0 */
    sheap jobs;    /* eligible jobs, by seq */
} sgroup;

typedef struct sjob {
    snode node;    /* key: seq, tie: registration order */
    void *job;
    sgroup *g;
    uint32_t max_running, running;
    int paused;
    uint32_t cap, head, len; /* ring of pending segments */
    sseg *ring;
} sjob;

struct sched {
    stab jobs, groups;
    slevel **lv; /* priority descending */
    size_t nlv, lvcap;
    sheap jscratch, gscratch; /* what a pop set aside (rejected by accept) */
    uint64_t serial;          /* creation order of jobs and groups */
    size_t pending, ready;
};

static int job_eq(const void *entry, const void *key) { return ((const sjob *)entry)->job == key; }

typedef struct gkey {
    const char *name;
    int priority;
} gkey;

static int group_eq(const void *entry, const void *key) {
    const sgroup *g = entry;
    const gkey *k = key;
    return g->lv->priority == k->priority && strcmp(g->name, k->name) == 0;
}

static uint64_t job_hash(const void *job) { return mix((uint64_t)(uintptr_t)job); }

static uint64_t group_hash(const char *name, int priority) {
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (const char *c = name; *c; c++)
        h = (h ^ (unsigned char)*c) * 0x100000001b3u;
    return mix(h ^ (uint64_t)(uint32_t)priority);
}

static sjob *find_job(const sched *s, const void *job) {
    size_t i = tab_find(&s->jobs, job_hash(job), job_eq, job);
    return i == NOPOS ? NULL : s->jobs.e[i].p;
}

sched *sched_new(void) { return calloc(1, sizeof(sched)); }

/* ---- eligibility: keeping the heaps equal to what can be handed out ---- */

static size_t lv_index(const sched *s, int priority, int *found) {
    size_t lo = 0, hi = s->nlv; /* first level with priority <= the one asked */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->lv[mid]->priority > priority)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->nlv && s->lv[lo]->priority == priority;
    return lo;
}

static int job_wants(const sjob *j) {
    return !j->paused && j->len > 0 && (j->max_running == 0 || j->running < j->max_running);
}

/* Put j into its group's heap, or take it out, to match job_wants. */
static void job_update(sched *s, sjob *j) {
    int in = j->node.pos != NOPOS;
    if (job_wants(j) == in)
        return;
    sgroup *g = j->g;
    if (!in) {
        s->ready += j->len;
        heap_push(&g->jobs, &j->node);
        if (g->jobs.n == 1) { /* the group wakes */
            sheap *gs = &g->lv->groups;
            if (gs->n)
                g->node.key = gs->a[0]->key;
            heap_push(gs, &g->node);
        }
    } else {
        s->ready -= j->len;
        heap_del(&g->jobs, &j->node);
        if (g->jobs.n == 0)
            heap_del(&g->lv->groups, &g->node);
    }
}

/* ---- registration ---- */

static void group_release(sched *s, sgroup *g) {
    if (--g->njobs > 0)
        return;
    if (g->name)
        tab_del_at(&s->groups, tab_find(&s->groups, g->h, group_eq,
                                        &(gkey){g->name, g->lv->priority}));
    slevel *lv = g->lv;
    free(g->jobs.a);
    free(g->name);
    free(g);
    if (--lv->ngroups > 0)
        return;
    int found;
    size_t i = lv_index(s, lv->priority, &found);
    memmove(&s->lv[i], &s->lv[i + 1], (s->nlv - i - 1) * sizeof *s->lv);
    s->nlv--;
    free(lv->groups.a);
    free(lv);
}

int sched_add_job(sched *s, void *job, const sched_job_opts *o) {
    if (!s || !o || find_job(s, job))
        return -1;
    size_t njobs = s->jobs.n + 1;
    /* Room first: growing an array changes nothing a caller can see, so a
     * failure after it leaves the scheduler as it was. */
    if (tab_reserve(&s->jobs, njobs) != 0 || tab_reserve(&s->groups, njobs) != 0 ||
        heap_reserve(&s->jscratch, njobs) != 0 || heap_reserve(&s->gscratch, njobs) != 0)
        return -1;
    slevel **lvs = grow(s->lv, &s->lvcap, s->nlv + 1, sizeof *lvs);
    if (!lvs)
        return -1;
    s->lv = lvs;
    int named = o->group && o->group[0], found;
    size_t li = lv_index(s, o->priority, &found);
    slevel *lv = found ? s->lv[li] : NULL;
    uint64_t gh = named ? group_hash(o->group, o->priority) : 0;
    size_t gi = named && lv ? tab_find(&s->groups, gh, group_eq, &(gkey){o->group, o->priority})
                            : NOPOS;
    sgroup *g = gi == NOPOS ? NULL : s->groups.e[gi].p;
    if (lv && heap_reserve(&lv->groups, lv->ngroups + 1) != 0)
        return -1;
    if (g && heap_reserve(&g->jobs, g->njobs + 1) != 0)
        return -1;

    /* New objects; all or none. */
    sjob *j = calloc(1, sizeof *j);
    sseg *ring = o->nseg ? malloc(o->nseg * sizeof *ring) : NULL;
    sgroup *ng = g ? NULL : calloc(1, sizeof *ng);
    char *name = !g && named ? strdup(o->group) : NULL;
    slevel *nlv = lv ? NULL : calloc(1, sizeof *nlv);
    if (!j || (o->nseg && !ring) || (!g && !ng) || (!g && named && !name) || (!lv && !nlv) ||
        (ng && heap_reserve(&ng->jobs, 1) != 0) || (nlv && heap_reserve(&nlv->groups, 1) != 0)) {
        free(ng ? ng->jobs.a : NULL);
        free(nlv ? nlv->groups.a : NULL);
        free(j);
        free(ring);
        free(ng);
        free(name);
        free(nlv);
        return -1;
    }
    if (nlv) {
        nlv->priority = o->priority;
        memmove(&s->lv[li + 1], &s->lv[li], (s->nlv - li) * sizeof *s->lv);
        s->lv[li] = nlv;
        s->nlv++;
        lv = nlv;
    }
    if (ng) {
        *ng = (sgroup){.node = {.tie = s->serial++, .pos = NOPOS}, .lv = lv, .name = name, .h = gh,
                       .jobs = ng->jobs};
        lv->ngroups++;
        if (name)
            tab_put(&s->groups, gh, ng);
        g = ng;
    }
    g->njobs++;
    *j = (sjob){.node = {.key = o->seq, .tie = s->serial++, .pos = NOPOS}, .job = job, .g = g,
                .max_running = o->max_running, .cap = o->nseg, .ring = ring};
    tab_put(&s->jobs, job_hash(job), j);
    return 0;
}

void sched_remove_job(sched *s, void *job) {
    if (!s)
        return;
    size_t i = tab_find(&s->jobs, job_hash(job), job_eq, job);
    if (i == NOPOS)
        return;
    sjob *j = s->jobs.e[i].p;
    tab_del_at(&s->jobs, i);
    j->paused = 1; /* leaves the heaps */
    job_update(s, j);
    s->pending -= j->len;
    group_release(s, j->g);
    free(j->ring);
    free(j);
}

void sched_free(sched *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->jobs.cap; i++) {
        sjob *j = s->jobs.e[i].p;
        if (!j)
            continue;
        if (--j->g->njobs == 0) {
            free(j->g->jobs.a);
            free(j->g->name);
            free(j->g);
        }
        free(j->ring);
        free(j);
    }
    for (size_t l = 0; l < s->nlv; l++) {
        free(s->lv[l]->groups.a);
        free(s->lv[l]);
    }
    free(s->jobs.e);
    free(s->groups.e);
    free(s->lv);
    free(s->jscratch.a);
    free(s->gscratch.a);
    free(s);
}

/* ---- queueing and handing out ---- */

int sched_push(sched *s, void *job, uint32_t seg, uint32_t frames, int front) {
    sjob *j = s ? find_job(s, job) : NULL;
    if (!j || j->len == j->cap)
        return -1;
    if (front) {
        j->head = j->head ? j->head - 1 : j->cap - 1;
        j->ring[j->head] = (sseg){seg, frames};
    } else {
        uint32_t tail = j->head + j->len;
        j->ring[tail >= j->cap ? tail - j->cap : tail] = (sseg){seg, frames};
    }
    j->len++;
    s->pending++;
    if (j->node.pos != NOPOS)
        s->ready++;
    job_update(s, j);
    return 0;
}

/* Set aside to a scratch heap used as a plain array; give back later. */
static void put_back(sheap *scratch, sheap *h) {
    while (scratch->n)
        heap_push(h, scratch->a[--scratch->n]);
}

int sched_pop(sched *s, int (*accept)(void *ctx, void *job), void *ctx, void **job, uint32_t *seg) {
    for (size_t l = 0; s && l < s->nlv; l++) {
        slevel *lv = s->lv[l];
        sheap *gs = &s->gscratch, *js = &s->jscratch;
        while (lv->groups.n) {
            sgroup *g = (sgroup *)lv->groups.a[0];
            sjob *j = NULL;
            while (g->jobs.n) {
                sjob *c = (sjob *)g->jobs.a[0];
                if (!accept || accept(ctx, c->job)) {
                    j = c;
                    break;
                }
                heap_del(&g->jobs, &c->node);
                js->a[js->n++] = &c->node;
            }
            put_back(js, &g->jobs);
            if (!j) {
                heap_del(&lv->groups, &g->node);
                gs->a[gs->n++] = &g->node;
                continue;
            }
            sseg sg = j->ring[j->head];
            j->head = j->head + 1 == j->cap ? 0 : j->head + 1;
            j->len--;
            j->running++;
            s->pending--;
            s->ready--;
            g->node.key += sg.frames;
            heap_fix(&lv->groups, g->node.pos);
            put_back(gs, &lv->groups);
            job_update(s, j);
            *job = j->job;
            *seg = sg.seg;
            return 1;
        }
        put_back(gs, &lv->groups);
    }
    return 0;
}

void sched_stopped(sched *s, void *job) {
    sjob *j = s ? find_job(s, job) : NULL;
    if (!j || j->running == 0)
        return;
    j->running--;
    job_update(s, j);
}

void sched_pause(sched *s, void *job, int paused) {
    sjob *j = s ? find_job(s, job) : NULL;
    if (!j)
        return;
    j->paused = paused != 0;
    job_update(s, j);
}

size_t sched_pending(const sched *s) { return s ? s->pending : 0; }

size_t sched_ready(const sched *s) { return s ? s->ready : 0; }
