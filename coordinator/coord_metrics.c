/* coord_metrics — the farm's figures for dashboards (README "Metrics"):
 * counters into <p>metrics, gauges into <p>gauges and per-worker figures
 * into each worker's record about once a second, and one sample per time
 * series into capped streams every metrics interval.
 *
 * Counting itself is free: the loop already keeps coord_stats; this file
 * only sends the difference since its last write, so the cost is a handful
 * of Redis commands per second, in the same round trip as the loop's other
 * writes, whatever the farm's throughput.
 */
#include <stdio.h>
#include <string.h>

#include "coord_internal.h"
#include "rf_util.h"

#define FLUSH_EVERY_MS 1000
#define FPS_SMOOTHING 0.5 /* weight of the newest second in a worker's rate */

typedef struct gauges {
    coord *c;
    uint64_t queued, in_flight, running_jobs, paused_jobs;
    uint64_t by_prio[COORD_MX_PRIOS];
} gauges;

static unsigned prio_slot(coord_mx *mx, int prio) {
    for (unsigned i = 0; i < mx->nprio; i++)
        if (mx->prio[i] == prio)
            return i;
    if (mx->nprio == COORD_MX_PRIOS)
        return COORD_MX_PRIOS; /* more priorities than gauges: total only */
    mx->prio[mx->nprio] = prio;
    return mx->nprio++;
}

static int count_job(void *ctx, const char *key, void *value) {
    (void)key;
    gauges *g = ctx;
    const coord_job *j = value;
    uint64_t queued = 0, running = 0;
    for (size_t k = 0; k < j->plan->n; k++) {
        if (j->segs[k].state == SEG_QUEUED)
            queued++;
        else if (j->segs[k].state == SEG_RUNNING)
            running++;
    }
    g->queued += queued;
    g->in_flight += running;
    if (j->paused)
        g->paused_jobs++;
    else if (running)
        g->running_jobs++;
    if (queued) {
        unsigned slot = prio_slot(&g->c->mx, j->spec->priority);
        if (slot < COORD_MX_PRIOS)
            g->by_prio[slot] += queued;
    }
    return 0;
}

typedef struct figures {
    coord *c;
    uint64_t dt_ms; /* since the last figures */
} figures;

static int worker_figures(void *ctx, const char *key, void *value) {
    const figures *f = ctx;
    coord *c = f->c;
    coord_worker *w = value;
    double now_fps = (double)(w->frames_received - w->frames_at_flush) * 1000.0 / (double)f->dt_ms;
    w->fps = FPS_SMOOTHING * now_fps + (1.0 - FPS_SMOOTHING) * w->fps;
    if (w->fps < 0.005)
        w->fps = 0;
    w->frames_at_flush = w->frames_received;
    const coord_health *h = rf_map_get(c->health, key);
    coord_store_warn(c, store_worker_figures(c->st, w->id, w->fps, w->frames_received,
                                             h ? h->failures : 0), "worker figures");
    return 0;
}

#define DELTA(f) {#f, c->stats.f - c->mx.added.f}

static void write_counters(coord *c) {
    const store_stat d[] = {
        DELTA(jobs_submitted),    DELTA(jobs_done),       DELTA(jobs_failed),
        DELTA(jobs_cancelled),    DELTA(segments_rendered), DELTA(segments_retried),
        DELTA(segments_lost),     DELTA(frames_stitched), DELTA(frames_received),
        DELTA(bytes_received),    DELTA(stale_frames),    DELTA(stale_results),
    };
    /* Deferred writes: a failure shows at the loop's flush, which starts an
     * outage; increments lost with it are not sent twice. */
    if (store_metrics_add(c->st, d, sizeof d / sizeof d[0]) == 0)
        c->mx.added = c->stats;
}

static void write_gauges(coord *c, const gauges *g) {
    store_stat v[8 + COORD_MX_PRIOS];
    char names[COORD_MX_PRIOS][32];
    size_t n = 0;
    v[n++] = (store_stat){"queue_depth", g->queued};
    v[n++] = (store_stat){"segments_in_flight", g->in_flight};
    v[n++] = (store_stat){"workers_alive", rf_map_len(c->workers)};
    v[n++] = (store_stat){"jobs_active", rf_map_len(c->jobs)};
    v[n++] = (store_stat){"jobs_running", g->running_jobs};
    v[n++] = (store_stat){"jobs_paused", g->paused_jobs};
    v[n++] = (store_stat){"segments_retry_wait", c->delayed};
    v[n++] = (store_stat){"updated_ms", rf_wall_ms()};
    for (unsigned i = 0; i < c->mx.nprio; i++) {
        snprintf(names[i], sizeof names[i], "queue_depth:%d", c->mx.prio[i]);
        v[n++] = (store_stat){names[i], g->by_prio[i]};
    }
    coord_store_warn(c, store_gauges(c->st, v, n), "gauges");
}

static void write_samples(coord *c, const gauges *g, uint64_t now) {
    double secs = c->mx.sampled_ms ? (double)(now - c->mx.sampled_ms) / 1000.0 : 0;
    const coord_stats *a = &c->stats, *b = &c->mx.sampled;
    unsigned keep = c->cfg.metrics_retention_s * 1000u / c->cfg.metrics_interval_ms;
    struct {
        const char *name;
        double v;
    } s[] = {
        {"frames_per_s", secs > 0 ? (double)(a->frames_received - b->frames_received) / secs : 0},
        {"segments_per_s",
         secs > 0 ? (double)(a->segments_rendered - b->segments_rendered) / secs : 0},
        {"bytes_per_s", secs > 0 ? (double)(a->bytes_received - b->bytes_received) / secs : 0},
        {"queue_depth", (double)g->queued},
        {"segments_in_flight", (double)g->in_flight},
        {"workers_alive", (double)rf_map_len(c->workers)},
        {"jobs_active", (double)rf_map_len(c->jobs)},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        coord_store_warn(c, store_series_add(c->st, s[i].name, s[i].v, keep), "time series");
    c->mx.sampled = c->stats;
    c->mx.sampled_ms = now;
}

void coord_metrics_tick(coord *c, uint64_t now) {
    if (!c->cfg.metrics || now < c->mx.next_flush_ms || !store_available(c->st))
        return;
    figures f = {.c = c, .dt_ms = c->mx.flushed_ms ? now - c->mx.flushed_ms : FLUSH_EVERY_MS};
    if (f.dt_ms == 0)
        f.dt_ms = 1;
    c->mx.next_flush_ms = now + FLUSH_EVERY_MS;
    c->mx.flushed_ms = now;
    gauges g = {.c = c};
    rf_map_each(c->jobs, count_job, &g);
    write_counters(c);
    write_gauges(c, &g);
    rf_map_each(c->workers, worker_figures, &f);
    if (now >= c->mx.next_sample_ms) {
        c->mx.next_sample_ms = now + c->cfg.metrics_interval_ms;
        write_samples(c, &g, now);
    }
}
