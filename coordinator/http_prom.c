/* http_prom — GET /metrics: the counters and gauges the coordinator keeps
 * in Redis (<p>metrics, <p>gauges, <p>worker:<id>), in Prometheus' text
 * exposition format (version 0.0.4). Every metric is always present (0
 * before its first event), so dashboards and alerts can rely on the names.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

typedef struct prom_def {
    const char *field; /* in Redis */
    const char *help;
} prom_def;

static const prom_def COUNTERS[] = {
    {"jobs_submitted", "Jobs accepted (single submissions and batch lines)."},
    {"jobs_done", "Jobs whose video was written."},
    {"jobs_failed", "Jobs that failed, with a reason in their record."},
    {"jobs_cancelled", "Jobs cancelled by an operator."},
    {"segments_rendered", "Segments rendered and made durable."},
    {"segments_retried", "Failed segment attempts queued again."},
    {"segments_lost", "Segments re-queued because their worker was lost."},
    {"frames_stitched", "Frames written to output videos."},
    {"frames_received", "Frames workers delivered to the coordinator."},
    {"bytes_received", "Pixel bytes workers delivered to the coordinator."},
    {"stale_frames", "Frames dropped because their attempt was no longer current."},
    {"stale_results", "Results dropped because their attempt was no longer current."},
    {NULL, NULL},
};

static const prom_def GAUGES[] = {
    {"queue_depth", "Segments waiting for a worker."},
    {"segments_in_flight", "Segments being rendered now."},
    {"workers_alive", "Workers connected to the coordinator."},
    {"jobs_active", "Jobs not yet finished."},
    {"jobs_running", "Jobs with segments being rendered."},
    {"jobs_paused", "Jobs paused by an operator."},
    {"segments_retry_wait", "Failed segments waiting out their retry backoff."},
    {NULL, NULL},
};

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = b->oom ? 0 : vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (b->oom || n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Label values: backslash, quote and newline escaped, as the format says. */
static void put_label(buf *b, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(b, "\\%c", *v);
        else if (*v == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *v);
    }
}

static void put_family(buf *b, const char *name, const char *type, const char *help) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static double field_num(json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    return s ? strtod(s, NULL) : 0;
}

static void raw_field(void *ctx, const char *name, const char *value) {
    json_object_set_new(ctx, name, json_string(value));
}

static void worker_id(void *ctx, const char *id) {
    json_array_append_new(ctx, json_string(id));
}

typedef struct worker_metric {
    const char *name, *type, *help, *field;
} worker_metric;

static const worker_metric WORKER_METRICS[] = {
    {"rfarm_worker_up", "gauge", "1 while the worker is connected.", NULL},
    {"rfarm_worker_busy", "gauge", "1 while the worker renders segments.", NULL},
    {"rfarm_worker_fps", "gauge", "Frames per second the worker delivered recently.", "fps"},
    {"rfarm_worker_gpus", "gauge", "GPUs the worker has.", "gpus"},
    {"rfarm_worker_capacity", "gauge", "Segments the worker takes at once.", "capacity"},
    {"rfarm_worker_segments_done_total", "counter", "Segments the worker rendered.",
     "segments_done"},
    {"rfarm_worker_frames_total", "counter", "Frames the worker delivered.", "frames_done"},
    {"rfarm_worker_failures_total", "counter", "Failed segment attempts of the worker.",
     "failures"},
    {"rfarm_worker_last_seen_timestamp_seconds", "gauge", "When the worker was last heard from.",
     "last_seen_ms"},
    {NULL, NULL, NULL, NULL},
};

static double worker_value(const worker_metric *m, json_t *w) {
    const char *state = json_string_value(json_object_get(w, "state"));
    if (strcmp(m->name, "rfarm_worker_up") == 0)
        return state && strcmp(state, "gone") != 0;
    if (strcmp(m->name, "rfarm_worker_busy") == 0)
        return state && strcmp(state, "busy") == 0;
    double v = field_num(w, m->field);
    return strcmp(m->field, "last_seen_ms") == 0 ? v / 1000.0 : v;
}

static int workers(http_server *h, buf *b, char *err, size_t errlen) {
    json_t *ids = json_array(), *recs = json_array();
    int rc = store_worker_ids(h->st, worker_id, ids, err, errlen) < 0 ? -1 : 0;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        json_t *w = json_object();
        if (rc == 0 && store_worker_read(h->st, json_string_value(id), raw_field, w, err,
                                         errlen) == 0) {
            json_object_set(w, "id", id);
            json_array_append_new(recs, w);
        } else {
            json_decref(w);
        }
    }
    for (const worker_metric *m = WORKER_METRICS; rc == 0 && m->name; m++) {
        put_family(b, m->name, m->type, m->help);
        json_t *w;
        json_array_foreach(recs, i, w) {
            put(b, "%s{worker=\"", m->name);
            put_label(b, json_string_value(json_object_get(w, "id")));
            put(b, "\"} %.15g\n", worker_value(m, w));
        }
    }
    json_decref(ids);
    json_decref(recs);
    return rc;
}

void http_prometheus(http_server *h, http_resp *out) {
    json_t *counters = json_object(), *gauges = json_object();
    char err[512];
    buf b = {0};
    int rc = store_metrics_read(h->st, "metrics", raw_field, counters, err, sizeof err) < 0 ||
                     store_metrics_read(h->st, "gauges", raw_field, gauges, err, sizeof err) < 0
                 ? -1
                 : 0;
    for (const prom_def *d = COUNTERS; rc == 0 && d->field; d++) {
        char name[96];
        snprintf(name, sizeof name, "rfarm_%s_total", d->field);
        put_family(&b, name, "counter", d->help);
        put(&b, "%s %.15g\n", name, field_num(counters, d->field));
    }
    for (const prom_def *d = GAUGES; rc == 0 && d->field; d++) {
        char name[96];
        snprintf(name, sizeof name, "rfarm_%s", d->field);
        put_family(&b, name, "gauge", d->help);
        put(&b, "%s %.15g\n", name, field_num(gauges, d->field));
    }
    if (rc == 0) {
        put_family(&b, "rfarm_queue_depth_by_priority", "gauge",
                   "Segments waiting for a worker, by job priority.");
        const char *key;
        json_t *v;
        json_object_foreach(gauges, key, v) {
            if (strncmp(key, "queue_depth:", 12) != 0)
                continue;
            put(&b, "rfarm_queue_depth_by_priority{priority=\"");
            put_label(&b, key + 12);
            put(&b, "\"} %.15g\n", strtod(json_string_value(v), NULL));
        }
        put_family(&b, "rfarm_metrics_updated_timestamp_seconds", "gauge",
                   "When the coordinator last wrote these figures.");
        put(&b, "rfarm_metrics_updated_timestamp_seconds %.3f\n",
            field_num(gauges, "updated_ms") / 1000.0);
        rc = workers(h, &b, err, sizeof err);
    }
    json_decref(counters);
    json_decref(gauges);
    if (rc != 0 || b.oom) {
        free(b.p);
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "redis: %s", b.oom ? "out of memory" : err);
        return;
    }
    out->status = MHD_HTTP_OK;
    out->type = "text/plain; version=0.0.4; charset=utf-8";
    out->body = b.p;
    out->len = b.len;
}
