/* http_api — the JSON API under /api: what the dashboard shows, read from
 * Redis, and submit / pause / resume / cancel, passed to the coordinator's
 * loop over its client socket exactly as the CLI sends them.
 *
 *   GET  /api/jobs?batch=B&state=S&limit=N   recent jobs (or a batch's)
 *   GET  /api/jobs/ID                        a job, its segments, its log
 *   GET  /api/jobs/ID/output                 the finished video
 *   POST /api/jobs                           submit (body: a job spec)
 *   POST /api/jobs/ID/{pause,resume,cancel}
 *   GET  /api/batches, /api/batches/ID
 *   POST /api/batches/ID/{pause,resume,cancel}
 *   GET  /api/workers
 *   GET  /api/metrics?points=N               counters, gauges, time series
 *
 * Bad input is a 400 naming the parameter; an unknown job or batch a 404.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "http_internal.h"
#include "rf_util.h"
#include "rf_wire.h"
#include "rfarm.pb-c.h"

#define MAX_LIST 2000
#define DEFAULT_LIST 200
#define LOG_LINES 200
#define SERIES_POINTS 360
#define ASK_TIMEOUT_MS 15000

static const char *const SERIES[] = {"frames_per_s", "segments_per_s", "bytes_per_s",
                                     "queue_depth", "segments_in_flight", "workers_alive",
                                     "jobs_active", NULL};
static const char *const JOB_STATES[] = {"queued", "running", "paused", "done", "failed",
                                         "cancelled", NULL};
/* Record fields that hold text even when they look like numbers. */
static const char *const TEXT_FIELDS[] = {
    "id", "state", "engine", "output", "error", "batch", "worker", "name", "tried", "engines",
    "hostname", "compute", "current", "segment_workers", "kept_from_jobs", "last_error", NULL};

static int in_list(const char *const *list, const char *s) {
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* Engine output may be any bytes; JSON strings must be UTF-8. */
static json_t *text(const char *s) {
    json_t *v = json_string(s);
    if (v)
        return v;
    char *copy = strdup(s);
    if (!copy)
        return json_null();
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v ? v : json_null();
}

static void record_field(void *ctx, const char *name, const char *value) {
    json_t *o = ctx;
    if (strcmp(name, "spec") == 0) {
        json_t *spec = json_loads(value, 0, NULL);
        if (spec) {
            json_object_set_new(o, name, spec);
            return;
        }
    }
    if (!in_list(TEXT_FIELDS, name) && value[0]) {
        char *end;
        errno = 0;
        long long i = strtoll(value, &end, 10);
        if (!*end && !errno) {
            json_object_set_new(o, name, json_integer(i));
            return;
        }
        double d = strtod(value, &end);
        if (!*end) {
            json_object_set_new(o, name, json_real(d));
            return;
        }
    }
    json_object_set_new(o, name, text(value));
}

static uint64_t num(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* Progress, rate and ETA, figured as `rfarm status` does. */
static void job_derived(json_t *j) {
    uint64_t total = num(j, "frames_to_render"), done = num(j, "frames_rendered");
    uint64_t fin = num(j, "finished_ms");
    double rate, eta;
    rf_rate_eta(num(j, "started_ms"), fin ? fin : rf_wall_ms(), done, total, &rate, &eta);
    const char *state = json_string_value(json_object_get(j, "state"));
    double progress = total ? (double)done / (double)total : 0;
    if (state && strcmp(state, "done") == 0)
        progress = 1, eta = 0;
    json_object_set_new(j, "progress", json_real(progress > 1 ? 1 : progress));
    json_object_set_new(j, "rate_fps", json_real(rate));
    json_object_set_new(j, "eta_s", eta < 0 ? json_null() : json_real(eta));
    if (state && strcmp(state, "done") == 0 && json_object_get(j, "id")) {
        char url[RF_ID_MAX + 32];
        snprintf(url, sizeof url, "/api/jobs/%s/output",
                 json_string_value(json_object_get(j, "id")));
        json_object_set_new(j, "output_url", json_string(url));
    }
}

static void batch_derived(json_t *b) {
    uint64_t jobs = num(b, "jobs");
    uint64_t ended = num(b, "jobs_done") + num(b, "jobs_failed") + num(b, "jobs_cancelled");
    double rate, eta;
    rf_rate_eta(num(b, "created_ms"), ended >= jobs ? num(b, "created_ms") : rf_wall_ms(),
                num(b, "frames_rendered"), num(b, "frames_to_render"), &rate, &eta);
    uint64_t total = num(b, "frames_to_render");
    json_object_set_new(b, "progress",
                        json_real(total ? (double)num(b, "frames_rendered") / (double)total : 0));
    json_object_set_new(b, "rate_fps", json_real(rate));
    json_object_set_new(b, "eta_s", ended >= jobs ? json_real(0) : eta < 0 ? json_null()
                                                                           : json_real(eta));
}

/* A record as a JSON object: 0 found, 404 (out set) when absent, 503 when
 * Redis failed (out set). */
typedef int (*read_fn)(store *s, const char *id, store_field_fn f, void *ctx, char *err,
                       size_t errlen);
static json_t *read_record(http_server *h, read_fn rd, const char *kind, const char *id,
                           http_resp *out) {
    char err[512];
    json_t *o = json_object();
    int rc = o ? rd(h->st, id, record_field, o, err, sizeof err) : -1;
    if (rc == 0)
        return o;
    json_decref(o);
    if (rc == 1)
        http_error(out, MHD_HTTP_NOT_FOUND, "%s: no %s '%s'", kind, kind, id);
    else
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "redis: %s", o ? err : "out of memory");
    return NULL;
}

/* ?limit=N: DEFAULT_LIST when absent; 0 with out set when bad. */
static size_t list_limit(const http_req *r, http_resp *out) {
    const char *s = http_arg(r, "limit");
    if (!s)
        return DEFAULT_LIST;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v < 1 || v > MAX_LIST) {
        http_error(out, MHD_HTTP_BAD_REQUEST, "limit: must be an integer from 1 to %d (got '%s')",
                   MAX_LIST, s);
        return 0;
    }
    return v;
}

static void jobs_list(http_server *h, const http_req *r, http_resp *out) {
    const char *batch = http_arg(r, "batch"), *state = http_arg(r, "state");
    if (batch && !batch[0])
        batch = NULL;
    if (state && !state[0])
        state = NULL;
    size_t limit = list_limit(r, out);
    if (!limit)
        return;
    if (state && !in_list(JOB_STATES, state)) {
        http_error(out, MHD_HTTP_BAD_REQUEST,
                   "state: must be queued, running, paused, done, failed or cancelled (got '%.64s')",
                   state);
        return;
    }
    if (batch && !rf_id_valid(batch)) {
        http_error(out, MHD_HTTP_BAD_REQUEST, "batch: '%.64s' is not a valid batch id", batch);
        return;
    }
    if (batch) {
        json_t *b = read_record(h, store_batch_read, "batch", batch, out);
        if (!b)
            return;
        json_decref(b);
    }
    /* A state filter looks further back than the limit. */
    size_t want = state ? MAX_LIST : limit;
    char(*ids)[RF_ID_MAX + 1] = malloc(want * sizeof *ids);
    char err[512];
    int n = !ids ? -1
            : batch ? store_batch_jobs(h->st, batch, want, ids, err, sizeof err)
                    : store_recent_jobs(h->st, want, ids, err, sizeof err);
    if (n < 0) {
        free(ids);
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "redis: %s", ids ? err : "out of memory");
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < n && json_array_size(list) < limit; i++) {
        json_t *j = json_object();
        if (store_job_read(h->st, ids[i], record_field, j, err, sizeof err) != 0) {
            json_decref(j);
            continue;
        }
        json_object_del(j, "spec"); /* the job page has it; the table needs none */
        job_derived(j);
        const char *js = json_string_value(json_object_get(j, "state"));
        if (state && (!js || strcmp(js, state) != 0)) {
            json_decref(j);
            continue;
        }
        json_array_append_new(list, j);
    }
    free(ids);
    http_json(out, MHD_HTTP_OK, json_pack("{s:o, s:I}", "jobs", list, "now_ms",
                                          (json_int_t)rf_wall_ms()));
}

typedef struct segs_ctx {
    json_t *segs;
} segs_ctx;

static void seg_field(void *ctx, uint32_t k, const char *name, const char *value) {
    segs_ctx *s = ctx;
    while (json_array_size(s->segs) <= k) {
        json_t *o = json_object();
        json_object_set_new(o, "k", json_integer((json_int_t)json_array_size(s->segs)));
        json_array_append_new(s->segs, o);
    }
    record_field(json_array_get(s->segs, k), name, value);
}

static void log_line(void *ctx, const char *line) {
    json_t *lines = ctx;
    json_array_append_new(lines, text(line));
    if (json_array_size(lines) > LOG_LINES)
        json_array_remove(lines, 0);
}

static void job_page(http_server *h, const char *id, http_resp *out) {
    json_t *j = read_record(h, store_job_read, "job", id, out);
    if (!j)
        return;
    job_derived(j);
    char err[512];
    segs_ctx sc = {.segs = json_array()};
    uint64_t nseg = num(j, "segments");
    if (store_segs_read(h->st, id, (uint32_t)nseg, seg_field, &sc, err, sizeof err) < 0) {
        json_decref(sc.segs);
        json_decref(j);
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "redis: %s", err);
        return;
    }
    json_object_set_new(j, "segment_list", sc.segs);
    json_t *lines = json_array();
    if (store_job_log_read(h->st, id, log_line, lines, err, sizeof err) < 0) {
        json_decref(lines);
        lines = json_array();
    }
    json_object_set_new(j, "log", lines);
    http_json(out, MHD_HTTP_OK, j);
}

static const char *video_type(const char *path) {
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".mp4") == 0)
        return "video/mp4";
    if (dot && strcmp(dot, ".mkv") == 0)
        return "video/x-matroska";
    if (dot && strcmp(dot, ".webm") == 0)
        return "video/webm";
    return "application/octet-stream";
}

static void job_output(http_server *h, const char *id, http_resp *out) {
    json_t *j = read_record(h, store_job_read, "job", id, out);
    if (!j)
        return;
    const char *state = json_string_value(json_object_get(j, "state"));
    const char *path = json_string_value(json_object_get(j, "output"));
    if (!state || strcmp(state, "done") != 0 || !path) {
        http_error(out, MHD_HTTP_NOT_FOUND, "output: job '%s' has no finished video (state %s)",
                   id, state ? state : "unknown");
    } else {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            out->status = MHD_HTTP_OK;
            out->type = video_type(path);
            out->fd = fd;
            out->fd_size = (uint64_t)st.st_size;
        } else {
            if (fd >= 0)
                close(fd);
            http_error(out, MHD_HTTP_NOT_FOUND, "output: %s is gone from the coordinator's disk",
                       path);
        }
    }
    json_decref(j);
}

/* One request to the loop; the reply (free with
 * rfarm__client_reply__free_unpacked) or NULL with err set. */
static Rfarm__ClientReply *ask(http_server *h, const Rfarm__ClientRequest *q, char *err,
                               size_t errlen) {
    if (!h->req) {
        if (!(h->req = rf_wire_socket(h->zctx, ZMQ_REQ, 0, err, errlen)))
            return NULL;
        int ms = ASK_TIMEOUT_MS, zero = 0;
        zmq_setsockopt(h->req, ZMQ_RCVTIMEO, &ms, sizeof ms);
        zmq_setsockopt(h->req, ZMQ_SNDTIMEO, &ms, sizeof ms);
        zmq_setsockopt(h->req, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect(h->req, h->client_ep) != 0) {
            snprintf(err, errlen, "coordinator: cannot reach %s: %s", h->client_ep,
                     zmq_strerror(errno));
            zmq_close(h->req);
            h->req = NULL;
            return NULL;
        }
    }
    Rfarm__ClientReply *r = NULL;
    rf_parts p = {0};
    if (rf_wire_send_pb(h->req, &q->base, 0) != 0 || rf_wire_recv(h->req, &p, 0) != 0) {
        snprintf(err, errlen, "coordinator: no answer within %d s (busy or stopping)",
                 ASK_TIMEOUT_MS / 1000);
        /* A REQ socket that missed its reply is stuck: start afresh. */
        zmq_close(h->req);
        h->req = NULL;
        return NULL;
    }
    if (p.n >= 1)
        r = rfarm__client_reply__unpack(NULL, rf_part_size(&p, 0), rf_part_data(&p, 0));
    rf_parts_close(&p);
    if (!r)
        snprintf(err, errlen, "coordinator: unreadable reply");
    return r;
}

static void submit(http_server *h, const http_req *r, http_resp *out) {
    json_error_t je;
    json_t *spec = json_loadb(r->body, r->body_len, 0, &je);
    if (!spec || !json_is_object(spec)) {
        if (spec)
            http_error(out, MHD_HTTP_BAD_REQUEST, "body: must be a JSON object (a job spec)");
        else
            http_error(out, MHD_HTTP_BAD_REQUEST, "body: not JSON: %s (line %d, column %d)",
                       je.text, je.line, je.column);
        json_decref(spec);
        return;
    }
    const char *path = json_string_value(json_object_get(json_object_get(spec, "output"), "path"));
    if (path && path[0] != '/') {
        http_error(out, MHD_HTTP_BAD_REQUEST, "output.path: must be absolute over HTTP (relative "
                   "to what? the coordinator's directory is not the caller's): '%.300s'", path);
        json_decref(spec);
        return;
    }
    json_decref(spec);
    Rfarm__SubmitRequest s = RFARM__SUBMIT_REQUEST__INIT;
    s.spec_json = (char *)r->body;
    Rfarm__ClientRequest q = RFARM__CLIENT_REQUEST__INIT;
    q.body_case = RFARM__CLIENT_REQUEST__BODY_SUBMIT;
    q.submit = &s;
    char err[512];
    Rfarm__ClientReply *rep = ask(h, &q, err, sizeof err);
    if (!rep) {
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
        return;
    }
    if (rep->body_case == RFARM__CLIENT_REPLY__BODY_SUBMIT && rep->submit->ok) {
        http_json(out, MHD_HTTP_CREATED, json_pack("{s:s, s:s+}", "id", rep->submit->job_id,
                                                   "url", "/api/jobs/", rep->submit->job_id));
    } else if (rep->body_case == RFARM__CLIENT_REPLY__BODY_SUBMIT) {
        json_t *errs = json_array();
        for (size_t i = 0; i < rep->submit->n_errors; i++)
            json_array_append_new(errs, text(rep->submit->errors[i]));
        const char *first = rep->submit->n_errors ? rep->submit->errors[0] : "refused";
        /* Redis away is the farm's state, not the caller's mistake. */
        unsigned status = strncmp(first, "redis:", 6) == 0 ? MHD_HTTP_SERVICE_UNAVAILABLE
                          : strstr(first, "already exists") ? MHD_HTTP_CONFLICT
                                                            : MHD_HTTP_BAD_REQUEST;
        http_json(out, status, json_pack("{s:o, s:o}", "error", text(first), "errors", errs));
    } else {
        http_error(out, MHD_HTTP_BAD_GATEWAY, "%s",
                   rep->body_case == RFARM__CLIENT_REPLY__BODY_ERROR ? rep->error->error
                                                                     : "unexpected reply");
    }
    rfarm__client_reply__free_unpacked(rep, NULL);
}

static void control(http_server *h, const char *kind, const char *id, const char *action,
                    http_resp *out) {
    if (strcmp(action, "pause") != 0 && strcmp(action, "resume") != 0 &&
        strcmp(action, "cancel") != 0) {
        http_error(out, MHD_HTTP_NOT_FOUND, "%s: unknown action (pause, resume or cancel)",
                   action);
        return;
    }
    json_t *rec = read_record(h, strcmp(kind, "job") == 0 ? store_job_read : store_batch_read,
                              kind, id, out);
    if (!rec)
        return;
    json_decref(rec);
    Rfarm__ControlRequest c = RFARM__CONTROL_REQUEST__INIT;
    c.target = (char *)id;
    c.action = (char *)action;
    Rfarm__ClientRequest q = RFARM__CLIENT_REQUEST__INIT;
    q.body_case = RFARM__CLIENT_REQUEST__BODY_CONTROL;
    q.control = &c;
    char err[512];
    Rfarm__ClientReply *rep = ask(h, &q, err, sizeof err);
    if (!rep) {
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
        return;
    }
    if (rep->body_case == RFARM__CLIENT_REPLY__BODY_CONTROL)
        http_json(out, MHD_HTTP_OK,
                  json_pack("{s:s, s:s, s:s, s:i, s:i}", "target", id, "kind", rep->control->kind,
                            "action", action, "jobs", (int)rep->control->jobs, "segments_stopped",
                            (int)rep->control->segments_stopped));
    else if (rep->body_case == RFARM__CLIENT_REPLY__BODY_ERROR)
        /* It exists (read above) but cannot take this now: it has ended. */
        http_error(out, MHD_HTTP_CONFLICT, "%s", rep->error->error);
    else
        http_error(out, MHD_HTTP_BAD_GATEWAY, "coordinator: unexpected reply");
    rfarm__client_reply__free_unpacked(rep, NULL);
}

static void batches_list(http_server *h, const http_req *r, http_resp *out) {
    size_t limit = list_limit(r, out);
    if (!limit)
        return;
    char(*ids)[RF_ID_MAX + 1] = malloc(limit * sizeof *ids);
    char err[512];
    int n = ids ? store_recent_batches(h->st, limit, ids, err, sizeof err) : -1;
    if (n < 0) {
        free(ids);
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "redis: %s", ids ? err : "out of memory");
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_t *b = json_object();
        if (store_batch_read(h->st, ids[i], record_field, b, err, sizeof err) == 0) {
            batch_derived(b);
            json_array_append_new(list, b);
        } else {
            json_decref(b);
        }
    }
    free(ids);
    http_json(out, MHD_HTTP_OK, json_pack("{s:o}", "batches", list));
}

static void worker_id(void *ctx, const char *id) {
    json_array_append_new(ctx, json_string(id));
}

static void workers_list(http_server *h, http_resp *out) {
    json_t *ids = json_array(), *list = json_array();
    char err[512];
    if (store_worker_ids(h->st, worker_id, ids, err, sizeof err) < 0) {
        json_decref(ids);
        json_decref(list);
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "redis: %s", err);
        return;
    }
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        json_t *w = json_object();
        if (store_worker_read(h->st, json_string_value(id), record_field, w, err, sizeof err) == 0)
            json_array_append_new(list, w);
        else
            json_decref(w);
    }
    json_decref(ids);
    http_json(out, MHD_HTTP_OK, json_pack("{s:o, s:I}", "workers", list, "now_ms",
                                          (json_int_t)rf_wall_ms()));
}

static void sample(void *ctx, uint64_t ts_ms, double v) {
    json_array_append_new(ctx, json_pack("[I, f]", (json_int_t)ts_ms, v));
}

static void metrics(http_server *h, const http_req *r, http_resp *out) {
    size_t points = SERIES_POINTS;
    const char *p = http_arg(r, "points");
    if (p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (!*p || *end || v < 1 || v > 100000) {
            http_error(out, MHD_HTTP_BAD_REQUEST,
                       "points: must be an integer from 1 to 100000 (got '%s')", p);
            return;
        }
        points = v;
    }
    json_t *counters = json_object(), *gauges = json_object(), *series = json_object();
    char err[512];
    int bad = store_metrics_read(h->st, "metrics", record_field, counters, err, sizeof err) < 0 ||
              store_metrics_read(h->st, "gauges", record_field, gauges, err, sizeof err) < 0;
    for (size_t i = 0; !bad && SERIES[i]; i++) {
        json_t *pts = json_array();
        json_object_set_new(series, SERIES[i], pts);
        bad = store_series_read(h->st, SERIES[i], 0, points, sample, pts, err, sizeof err) < 0;
    }
    json_t *v = json_pack("{s:o, s:o, s:o, s:I}", "counters", counters, "gauges", gauges,
                          "series", series, "now_ms", (json_int_t)rf_wall_ms());
    if (bad) {
        json_decref(v);
        http_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "redis: %s", err);
        return;
    }
    http_json(out, MHD_HTTP_OK, v);
}

/* sub: the path below /api, e.g. "/jobs/abc/cancel". */
void http_api(http_server *h, const http_req *r, const char *sub, http_resp *out) {
    char seg[4][RF_ID_MAX + 2];
    int n = 0;
    const char *p = sub;
    while (*p == '/')
        p++;
    while (*p && n < 4) {
        size_t len = strcspn(p, "/");
        if (len > RF_ID_MAX) {
            http_error(out, MHD_HTTP_BAD_REQUEST, "path: part longer than %d characters",
                       RF_ID_MAX);
            return;
        }
        memcpy(seg[n], p, len);
        seg[n++][len] = '\0';
        p += len;
        while (*p == '/')
            p++;
    }
    if (*p || n == 0) {
        http_error(out, MHD_HTTP_NOT_FOUND, "%s: no such API path", r->path);
        return;
    }
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    int post = strcmp(r->method, "POST") == 0;
    const char *what = seg[0];
    int collection = strcmp(what, "jobs") == 0 || strcmp(what, "batches") == 0;
    if (collection && n >= 2 && !rf_id_valid(seg[1])) {
        http_error(out, MHD_HTTP_BAD_REQUEST, "id: '%s' is not a valid %s id", seg[1],
                   what[0] == 'j' ? "job" : "batch");
        return;
    }
    if (strcmp(what, "jobs") == 0 && n == 1 && get)
        jobs_list(h, r, out);
    else if (strcmp(what, "jobs") == 0 && n == 1 && post)
        submit(h, r, out);
    else if (strcmp(what, "jobs") == 0 && n == 2 && get)
        job_page(h, seg[1], out);
    else if (strcmp(what, "jobs") == 0 && n == 3 && get && strcmp(seg[2], "output") == 0)
        job_output(h, seg[1], out);
    else if (collection && n == 3 && post)
        control(h, what[0] == 'j' ? "job" : "batch", seg[1], seg[2], out);
    else if (strcmp(what, "batches") == 0 && n == 1 && get)
        batches_list(h, r, out);
    else if (strcmp(what, "batches") == 0 && n == 2 && get) {
        json_t *b = read_record(h, store_batch_read, "batch", seg[1], out);
        if (b) {
            batch_derived(b);
            http_json(out, MHD_HTTP_OK, b);
        }
    } else if (strcmp(what, "workers") == 0 && n == 1 && get)
        workers_list(h, out);
    else if (strcmp(what, "metrics") == 0 && n == 1 && get)
        metrics(h, r, out);
    else if (get || post)
        http_error(out, MHD_HTTP_NOT_FOUND, "%s %s: no such API call", r->method, r->path);
    else
        http_error(out, MHD_HTTP_METHOD_NOT_ALLOWED, "%s: use GET or POST", r->method);
}
