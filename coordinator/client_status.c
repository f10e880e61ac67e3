/* client_status — what `rfarm status`, `rfarm workers` and `rfarm logs` are
 * told. Everything comes from Redis, the source of truth, so finished jobs
 * and workers that are gone show too; rates and ETAs are computed here from
 * the records' times and rendered-frame counts, so every client sees the
 * same figures.
 *
 * Replies are built from memory owned by a coord_scratch, freed once the
 * reply is sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_internal.h"
#include "rf_util.h"

#define STATUS_RECENT 50
#define STATUS_BATCHES 10
#define STATUS_BATCH_JOBS 1000

typedef struct fill_ctx {
    void *msg;
    coord_scratch *sc;
} fill_ctx;

static char *keep(coord_scratch *sc, const char *value) {
    char *p = coord_scratch_add(sc, strdup(value));
    return p ? p : (char *)"";
}

static void job_field(void *ctx, const char *name, const char *value) {
    fill_ctx *f = ctx;
    Rfarm__JobStatus *js = f->msg;
    char **str = strcmp(name, "id") == 0       ? &js->id
                 : strcmp(name, "state") == 0  ? &js->state
                 : strcmp(name, "engine") == 0 ? &js->engine
                 : strcmp(name, "output") == 0 ? &js->output
                 : strcmp(name, "error") == 0  ? &js->error
                 : strcmp(name, "batch") == 0  ? &js->batch
                 : strcmp(name, "segment_workers") == 0 ? &js->segment_workers
                                                          : NULL;
    if (str) {
        *str = keep(f->sc, value);
        return;
    }
    unsigned long long v = strtoull(value, NULL, 10);
    if (strcmp(name, "frames") == 0)
        js->frames = (uint32_t)v;
    else if (strcmp(name, "frames_stitched") == 0)
        js->frames_stitched = (uint32_t)v;
    else if (strcmp(name, "segments") == 0)
        js->segments = (uint32_t)v;
    else if (strcmp(name, "segments_done") == 0)
        js->segments_done = (uint32_t)v;
    else if (strcmp(name, "created_ms") == 0)
        js->created_ms = v;
    else if (strcmp(name, "started_ms") == 0)
        js->started_ms = v;
    else if (strcmp(name, "finished_ms") == 0)
        js->finished_ms = v;
    else if (strcmp(name, "frames_rendered") == 0)
        js->frames_rendered = v;
    else if (strcmp(name, "frames_to_render") == 0)
        js->frames_to_render = v;
    else if (strcmp(name, "output_bytes") == 0)
        js->output_bytes = v;
    else if (strcmp(name, "render_ms") == 0)
        js->render_ms = v;
    else if (strcmp(name, "priority") == 0)
        js->priority = (int32_t)strtol(value, NULL, 10);
    else if (strcmp(name, "duration_s") == 0)
        js->duration_s = strtod(value, NULL);
}

/* A job's status from Redis: 0, 1 (no such job) or -1 (err). */
static int read_job(coord *c, const char *id, Rfarm__JobStatus *js, coord_scratch *sc, char *err,
                    size_t errlen) {
    rfarm__job_status__init(js);
    fill_ctx f = {js, sc};
    int rc = store_job_read(c->st, id, job_field, &f, err, errlen);
    if (rc == 0) {
        uint64_t end = js->finished_ms ? js->finished_ms : rf_wall_ms();
        rf_rate_eta(js->started_ms, end, js->frames_rendered, js->frames_to_render, &js->rate_fps,
                 &js->eta_s);
    }
    return rc;
}

static void batch_field(void *ctx, const char *name, const char *value) {
    fill_ctx *f = ctx;
    Rfarm__BatchStatus *b = f->msg;
    if (strcmp(name, "id") == 0 || strcmp(name, "name") == 0 || strcmp(name, "state") == 0) {
        char **str = name[0] == 'i' ? &b->id : name[0] == 'n' ? &b->name : &b->state;
        *str = keep(f->sc, value);
        return;
    }
    unsigned long long v = strtoull(value, NULL, 10);
    if (strcmp(name, "jobs") == 0)
        b->jobs = (uint32_t)v;
    else if (strcmp(name, "jobs_done") == 0)
        b->jobs_done = (uint32_t)v;
    else if (strcmp(name, "jobs_failed") == 0)
        b->jobs_failed = (uint32_t)v;
    else if (strcmp(name, "jobs_cancelled") == 0)
        b->jobs_cancelled = (uint32_t)v;
    else if (strcmp(name, "frames_to_render") == 0)
        b->frames = v;
    else if (strcmp(name, "frames_rendered") == 0)
        b->frames_rendered = v;
    else if (strcmp(name, "created_ms") == 0)
        b->created_ms = v;
}

static int read_batch(coord *c, const char *id, Rfarm__BatchStatus *b, coord_scratch *sc,
                      char *err, size_t errlen) {
    rfarm__batch_status__init(b);
    fill_ctx f = {b, sc};
    int rc = store_batch_read(c->st, id, batch_field, &f, err, errlen);
    if (rc == 0) {
        if (!b->state[0])
            b->state = rf_map_get(c->batches, id) ? "active" : "done";
        uint32_t ended = b->jobs_done + b->jobs_failed + b->jobs_cancelled;
        rf_rate_eta(b->created_ms, ended >= b->jobs ? b->created_ms : rf_wall_ms(), b->frames_rendered,
                 b->frames, &b->rate_fps, &b->eta_s);
        if (ended >= b->jobs)
            b->eta_s = 0;
    }
    return rc;
}

static void set_error(Rfarm__ClientReply *reply, coord_scratch *sc, const char *msg) {
    Rfarm__ErrorReply *e = coord_scratch_add(sc, malloc(sizeof *e));
    if (!e)
        return;
    rfarm__error_reply__init(e);
    e->error = keep(sc, msg);
    reply->body_case = RFARM__CLIENT_REPLY__BODY_ERROR;
    reply->error = e;
}

void coord_status(coord *c, const Rfarm__StatusRequest *q, Rfarm__ClientReply *reply,
                  coord_scratch *sc) {
    char err[512] = "";
    size_t max = q->batch_id[0] ? STATUS_BATCH_JOBS : STATUS_RECENT;
    char(*ids)[RF_ID_MAX + 1] = coord_scratch_add(sc, calloc(max, sizeof *ids));
    char(*bids)[RF_ID_MAX + 1] = coord_scratch_add(sc, calloc(STATUS_BATCHES, sizeof *bids));
    Rfarm__JobStatus *js = coord_scratch_add(sc, calloc(max, sizeof *js));
    Rfarm__JobStatus **jp = coord_scratch_add(sc, calloc(max, sizeof *jp));
    Rfarm__BatchStatus *bs = coord_scratch_add(sc, calloc(STATUS_BATCHES, sizeof *bs));
    Rfarm__BatchStatus **bp = coord_scratch_add(sc, calloc(STATUS_BATCHES, sizeof *bp));
    Rfarm__StatusReply *sr = coord_scratch_add(sc, malloc(sizeof *sr));
    if (!ids || !bids || !js || !jp || !bs || !bp || !sr) {
        set_error(reply, sc, "coordinator: out of memory");
        return;
    }
    rfarm__status_reply__init(sr);
    /* Ids become Redis keys: one that is not an id names nothing. */
    if ((q->job_id[0] && !rf_id_valid(q->job_id)) || (q->batch_id[0] && !rf_id_valid(q->batch_id))) {
        snprintf(err, sizeof err, "%s '%.80s' not found (not a valid id)",
                 q->job_id[0] ? "job" : "batch", q->job_id[0] ? q->job_id : q->batch_id);
        set_error(reply, sc, err);
        return;
    }
    int n = 0, nb = 0;
    if (q->job_id[0]) {
        snprintf(ids[0], sizeof ids[0], "%s", q->job_id);
        n = 1;
    } else if (q->batch_id[0]) {
        snprintf(bids[0], sizeof bids[0], "%s", q->batch_id);
        nb = 1;
        n = store_batch_jobs(c->st, q->batch_id, max, ids, err, sizeof err);
    } else {
        n = store_recent_jobs(c->st, max, ids, err, sizeof err);
        if (n >= 0)
            nb = store_recent_batches(c->st, STATUS_BATCHES, bids, err, sizeof err);
    }
    if (n < 0 || nb < 0) {
        set_error(reply, sc, err);
        return;
    }
    for (int i = 0; i < nb; i++) {
        int rc = read_batch(c, bids[i], &bs[sr->n_batches], sc, err, sizeof err);
        if (rc < 0) {
            set_error(reply, sc, err);
            return;
        }
        if (rc == 1 && q->batch_id[0]) {
            snprintf(err, sizeof err, "batch '%s' not found", q->batch_id);
            set_error(reply, sc, err);
            return;
        }
        if (rc == 0) {
            bp[sr->n_batches] = &bs[sr->n_batches];
            sr->n_batches++;
        }
    }
    for (int i = 0; i < n; i++) {
        int rc = read_job(c, ids[i], &js[sr->n_jobs], sc, err, sizeof err);
        if (rc < 0) {
            set_error(reply, sc, err);
            return;
        }
        if (rc == 1 && q->job_id[0]) {
            snprintf(err, sizeof err, "job '%s' not found", q->job_id);
            set_error(reply, sc, err);
            return;
        }
        if (rc == 0) {
            jp[sr->n_jobs] = &js[sr->n_jobs];
            sr->n_jobs++;
        }
    }
    sr->jobs = jp;
    sr->batches = bp;
    reply->body_case = RFARM__CLIENT_REPLY__BODY_STATUS;
    reply->status = sr;
}

/* ---- workers ---- */

static void worker_field(void *ctx, const char *name, const char *value) {
    fill_ctx *f = ctx;
    Rfarm__WorkerStatus *ws = f->msg;
    char **str = strcmp(name, "id") == 0               ? &ws->id
                 : strcmp(name, "state") == 0          ? &ws->state
                 : strcmp(name, "engines") == 0        ? &ws->engines
                 : strcmp(name, "compute") == 0        ? &ws->compute
                 : strcmp(name, "hostname") == 0       ? &ws->hostname
                 : strcmp(name, "kept_from_jobs") == 0 ? &ws->kept_from_jobs
                 : strcmp(name, "last_error") == 0     ? &ws->last_error
                 : strcmp(name, "current") == 0        ? &ws->current
                                                       : NULL;
    if (str) {
        *str = keep(f->sc, value);
        return;
    }
    unsigned long long v = strtoull(value, NULL, 10);
    if (strcmp(name, "capacity") == 0)
        ws->capacity = (uint32_t)v;
    else if (strcmp(name, "gpus") == 0)
        ws->gpus = (uint32_t)v;
    else if (strcmp(name, "last_seen_ms") == 0)
        ws->last_seen_ms = v;
    else if (strcmp(name, "segments_done") == 0)
        ws->segments_done = (uint32_t)v;
    else if (strcmp(name, "fail_streak") == 0)
        ws->fail_streak = (uint32_t)v;
    else if (strcmp(name, "quarantined_until_ms") == 0)
        ws->quarantined_until_ms = v;
}

typedef struct id_list {
    char (*ids)[RF_ID_MAX + 1];
    size_t n, cap;
    int oom;
} id_list;

static void collect_id(void *ctx, const char *id) {
    id_list *l = ctx;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        char(*nids)[RF_ID_MAX + 1] = realloc(l->ids, ncap * sizeof *nids);
        if (!nids) {
            l->oom = 1;
            return;
        }
        l->ids = nids;
        l->cap = ncap;
    }
    snprintf(l->ids[l->n++], RF_ID_MAX + 1, "%s", id);
}

static int by_id(const void *a, const void *b) { return strcmp(a, b); }

void coord_workers_status(coord *c, Rfarm__ClientReply *reply, coord_scratch *sc) {
    char err[512] = "";
    id_list l = {0};
    if (store_worker_ids(c->st, collect_id, &l, err, sizeof err) < 0 || l.oom) {
        set_error(reply, sc, l.oom ? "coordinator: out of memory" : err);
        free(l.ids);
        return;
    }
    if (l.ids && !coord_scratch_add(sc, l.ids)) {
        set_error(reply, sc, "coordinator: out of memory");
        return;
    }
    if (l.n)
        qsort(l.ids, l.n, sizeof *l.ids, by_id);
    Rfarm__WorkerStatus *ws = coord_scratch_add(sc, calloc(l.n ? l.n : 1, sizeof *ws));
    Rfarm__WorkerStatus **wp = coord_scratch_add(sc, calloc(l.n ? l.n : 1, sizeof *wp));
    Rfarm__WorkersReply *wr = coord_scratch_add(sc, malloc(sizeof *wr));
    if (!ws || !wp || !wr) {
        set_error(reply, sc, "coordinator: out of memory");
        return;
    }
    rfarm__workers_reply__init(wr);
    uint64_t now = rf_wall_ms();
    for (size_t i = 0; i < l.n; i++) {
        Rfarm__WorkerStatus *cur = &ws[wr->n_workers];
        rfarm__worker_status__init(cur);
        fill_ctx f = {cur, sc};
        int rc = store_worker_read(c->st, l.ids[i], worker_field, &f, err, sizeof err);
        if (rc < 0) {
            set_error(reply, sc, err);
            return;
        }
        if (rc != 0)
            continue;
        wp[wr->n_workers] = cur;
        wr->n_workers++;
        /* A quarantine is a state of its own while it lasts. */
        if (cur->quarantined_until_ms > now && strcmp(cur->state, "gone") != 0)
            cur->state = "quarantined";
        if (strcmp(cur->state, "gone") == 0)
            cur->current = "";
    }
    wr->workers = wp;
    reply->body_case = RFARM__CLIENT_REPLY__BODY_WORKERS;
    reply->workers = wr;
}

/* ---- logs ---- */

typedef struct log_ctx {
    char **lines;
    size_t n, cap;
    coord_scratch *sc;
} log_ctx;

static void log_line(void *ctx, const char *text) {
    log_ctx *l = ctx;
    if (l->n < l->cap)
        l->lines[l->n++] = keep(l->sc, text);
}

static void ignore_field(void *ctx, const char *name, const char *value) {
    (void)ctx;
    (void)name;
    (void)value;
}

void coord_logs(coord *c, const Rfarm__LogsRequest *q, Rfarm__ClientReply *reply,
                coord_scratch *sc) {
    char err[512] = "";
    int rc = rf_id_valid(q->job_id) ? store_job_read(c->st, q->job_id, ignore_field, NULL, err,
                                                     sizeof err)
                                    : 1;
    if (rc != 0) {
        if (rc == 1)
            snprintf(err, sizeof err, "job '%s' not found", q->job_id);
        set_error(reply, sc, err);
        return;
    }
    log_ctx l = {.cap = 1000, .sc = sc};
    l.lines = coord_scratch_add(sc, calloc(l.cap, sizeof *l.lines));
    Rfarm__LogsReply *lr = coord_scratch_add(sc, malloc(sizeof *lr));
    if (!l.lines || !lr) {
        set_error(reply, sc, "coordinator: out of memory");
        return;
    }
    if (store_job_log_read(c->st, q->job_id, log_line, &l, err, sizeof err) < 0) {
        set_error(reply, sc, err);
        return;
    }
    rfarm__logs_reply__init(lr);
    lr->lines = l.lines;
    lr->n_lines = l.n;
    reply->body_case = RFARM__CLIENT_REPLY__BODY_LOGS;
    reply->logs = lr;
}
