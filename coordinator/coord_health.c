/* coord_health — which workers may run which jobs.
 *
 * A worker that fails attempts of one job twice is kept away from
 * that job while another worker can run it. Failures are blamed on a worker
 * only once another worker has rendered the segment it failed (a segment
 * that fails everywhere is the job's fault, not the workers'); blamed
 * failures in three different jobs in a row put the worker in quarantine,
 * no work at all, for --quarantine-ms. A rendered segment clears the
 * streak. Both show in the worker's Redis record and in `rfarm workers`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_internal.h"
#include "rf_util.h"

#define JOB_FAILURES_BEFORE_KEPT_AWAY 2
#define BLAMED_JOBS_BEFORE_QUARANTINE 3

static coord_health *health_of(coord *c, const char *id) {
    coord_health *h = rf_map_get(c->health, id);
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h || rf_map_put(c->health, id, h) != 0) {
            free(h);
            return NULL;
        }
    }
    return h;
}

static int free_health(void *ctx, const char *key, void *value) {
    (void)ctx;
    (void)key;
    free(value);
    return 0;
}

void coord_health_free_all(coord *c) {
    if (c->health) {
        rf_map_each(c->health, free_health, NULL);
        rf_map_free(c->health);
        c->health = NULL;
    }
}

static int quarantined(const coord_health *h, uint64_t now) {
    return h && h->quarantined_until_ms > now;
}

static uint32_t job_failures_of(const coord_job *j, const char *worker) {
    return (uint32_t)(uintptr_t)rf_map_get(j->worker_failures, worker);
}

typedef struct kept_ctx {
    const char *worker;
    char *buf;
    size_t len;
} kept_ctx;

static int add_kept(void *ctx, const char *key, void *value) {
    kept_ctx *k = ctx;
    if (job_failures_of(value, k->worker) >= JOB_FAILURES_BEFORE_KEPT_AWAY) {
        size_t used = strlen(k->buf);
        snprintf(k->buf + used, k->len - used, "%s%s", used ? "," : "", key);
    }
    return 0;
}

void coord_worker_kept_from(coord *c, const char *worker, char *buf, size_t len) {
    buf[0] = '\0';
    kept_ctx k = {worker, buf, len};
    rf_map_each(c->jobs, add_kept, &k);
}

static void health_write(coord *c, const char *worker, const coord_health *h, const char *error) {
    char kept[1024];
    coord_worker_kept_from(c, worker, kept, sizeof kept);
    uint64_t until = quarantined(h, rf_mono_ms()) ? h->quarantined_until_wall : 0;
    coord_store_warn(c, store_worker_health(c->st, worker, h->fail_streak, until, kept, error),
                     "worker health");
}

void coord_health_failed(coord *c, coord_job *j, const char *worker, const char *error) {
    uint32_t n = job_failures_of(j, worker) + 1;
    if (rf_map_put(j->worker_failures, worker, (void *)(uintptr_t)n) != 0)
        return;
    coord_health *h = health_of(c, worker);
    if (!h)
        return;
    h->failures++;
    if (n == JOB_FAILURES_BEFORE_KEPT_AWAY) {
        rf_warn(LOG, "worker kept away from job worker=%s job=%s failures=%u", worker, j->spec->id,
                n);
        coord_store_warn(c, store_event(c->st, "worker_kept_away", j->spec->id, -1, worker, error),
                         "event");
    }
    health_write(c, worker, h, error);
}

/* Segment k of j was rendered by `worker`: its streak ends, and the workers
 * that failed k before are blamed for it. */
void coord_health_rendered(coord *c, coord_job *j, uint32_t k, const char *worker) {
    coord_health *h = health_of(c, worker);
    if (h && h->fail_streak) {
        h->fail_streak = 0;
        h->last_blamed_job[0] = '\0';
        health_write(c, worker, h, NULL);
    }
    const char *tried = j->segs[k].tried;
    for (const char *p = tried; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        char id[RF_ID_MAX + 1];
        if (len == 0 || len > RF_ID_MAX)
            break;
        memcpy(id, p, len);
        id[len] = '\0';
        p += len;
        coord_health *b = strcmp(id, worker) ? health_of(c, id) : NULL;
        if (!b || strcmp(b->last_blamed_job, j->spec->id) == 0)
            continue;
        b->fail_streak++;
        snprintf(b->last_blamed_job, sizeof b->last_blamed_job, "%s", j->spec->id);
        if (b->fail_streak >= BLAMED_JOBS_BEFORE_QUARANTINE) {
            b->quarantined_until_ms = rf_mono_ms() + c->cfg.quarantine_ms;
            b->quarantined_until_wall = rf_wall_ms() + c->cfg.quarantine_ms;
            rf_warn(LOG, "worker quarantined worker=%s fail_streak=%u for_ms=%u", id, b->fail_streak,
                    c->cfg.quarantine_ms);
            coord_store_warn(c, store_event(c->st, "worker_quarantined", NULL, -1, id, NULL), "event");
        }
        health_write(c, id, b, NULL);
    }
}

typedef struct other_ctx {
    coord *c;
    const coord_worker *self;
    const coord_job *j;
    uint64_t now;
    int found;
} other_ctx;

static int other_can_run(void *ctx, const char *key, void *value) {
    other_ctx *o = ctx;
    const coord_worker *w = value;
    if (w == o->self || !rf_list_has(w->engines, o->j->spec->engine))
        return 0;
    if (quarantined(rf_map_get(o->c->health, key), o->now))
        return 0;
    if (job_failures_of(o->j, w->id) >= JOB_FAILURES_BEFORE_KEPT_AWAY)
        return 0;
    o->found = 1;
    return 1;
}

int coord_worker_may_run(coord *c, const coord_worker *w, const coord_job *j) {
    if (!rf_list_has(w->engines, j->spec->engine))
        return 0;
    uint64_t now = rf_mono_ms();
    if (quarantined(rf_map_get(c->health, w->id), now))
        return 0;
    if (job_failures_of(j, w->id) < JOB_FAILURES_BEFORE_KEPT_AWAY)
        return 1;
    /* Kept away, unless nobody else could take the job: then trying again
     * beats a job that waits for ever (max-attempts still bounds it). */
    other_ctx o = {c, w, j, now, 0};
    rf_map_each(c->workers, other_can_run, &o);
    return !o.found;
}

