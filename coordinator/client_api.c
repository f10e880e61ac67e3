/* client_api — the coordinator's answers to `rfarm` (submit, status,
 * cancel, workers).
 *
 * Clients talk REQ to the coordinator's ROUTER: [routing id][empty][request]
 * in, the same envelope with the reply out. A submission is validated with
 * the same rules the CLI documents (rf_spec) plus what only the coordinator
 * can check (the engines its workers run, the output directory on its
 * disk); a spec with any problem is answered with every problem and leaves
 * no trace in Redis or on disk. Status answers come from Redis, the source
 * of truth, so they also cover jobs finished long ago.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "coord_internal.h"
#include "engine.h"
#include "rf_util.h"
#include "rf_wire.h"
#include "rfarm.pb-c.h"

#define MAX_ERRORS 64
#define STATUS_RECENT 50

static void reply(coord *c, rf_parts *req, const Rfarm__ClientReply *r) {
    rf_wire_send_bytes(c->csock, rf_part_data(req, 0), rf_part_size(req, 0), 1);
    rf_wire_send_bytes(c->csock, "", 0, 1);
    rf_wire_send_pb(c->csock, &r->base, 0);
}

static void reply_error(coord *c, rf_parts *req, const char *msg) {
    Rfarm__ErrorReply e = RFARM__ERROR_REPLY__INIT;
    e.error = (char *)msg;
    Rfarm__ClientReply r = RFARM__CLIENT_REPLY__INIT;
    r.body_case = RFARM__CLIENT_REPLY__BODY_ERROR;
    r.error = &e;
    reply(c, req, &r);
}

static void submit(coord *c, rf_parts *req, const Rfarm__SubmitRequest *s) {
    char errs[8192] = "";
    rf_spec *spec = NULL;
    rf_spec_opts opts = {.engines = engine_names(), .check_output_dir = 1, .base_dir = NULL,
                         .check_params = engine_check_params};
    int rc = rf_spec_parse(s->spec_json, strlen(s->spec_json), &opts, &spec, errs, sizeof errs);
    if (rc == 0) {
        char id[RF_ID_MAX + 1];
        snprintf(id, sizeof id, "%s", spec->id);
        rc = coord_job_add(c, spec, errs, sizeof errs); /* takes spec */
        spec = NULL;
        if (rc == 0) {
            Rfarm__SubmitReply sr = RFARM__SUBMIT_REPLY__INIT;
            sr.ok = 1;
            sr.job_id = id;
            Rfarm__ClientReply r = RFARM__CLIENT_REPLY__INIT;
            r.body_case = RFARM__CLIENT_REPLY__BODY_SUBMIT;
            r.submit = &sr;
            reply(c, req, &r);
            return;
        }
    }
    /* One reply line per problem. */
    char *lines[MAX_ERRORS];
    size_t n = 0;
    for (char *save = NULL, *line = strtok_r(errs, "\n", &save); line && n < MAX_ERRORS;
         line = strtok_r(NULL, "\n", &save))
        lines[n++] = line;
    rf_info(LOG, "job rejected problems=%zu first=\"%s\"", n, n ? lines[0] : "");
    Rfarm__SubmitReply sr = RFARM__SUBMIT_REPLY__INIT;
    sr.ok = 0;
    sr.job_id = "";
    sr.n_errors = n;
    sr.errors = lines;
    Rfarm__ClientReply r = RFARM__CLIENT_REPLY__INIT;
    r.body_case = RFARM__CLIENT_REPLY__BODY_SUBMIT;
    r.submit = &sr;
    reply(c, req, &r);
}

/* A reply's string field from a Redis value: a copy, replacing any earlier
 * one (fields start as protobuf-c's shared empty string, never freed). A
 * failed copy leaves the field empty. */
static void set_str(char **field, const char *value) {
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = strdup(value);
    if (!*field)
        *field = (char *)protobuf_c_empty_string;
}

/* Frees the strings set_str made. */
static void free_strs(char *const *strs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strs[i] && strs[i] != protobuf_c_empty_string)
            free(strs[i]);
}

/* Fills a JobStatus from the Redis hash; strings are strdup'd. */
static void status_field(void *ctx, const char *name, const char *value) {
    Rfarm__JobStatus *js = ctx;
    char **str = NULL;
    if (strcmp(name, "id") == 0)
        str = &js->id;
    else if (strcmp(name, "state") == 0)
        str = &js->state;
    else if (strcmp(name, "engine") == 0)
        str = &js->engine;
    else if (strcmp(name, "output") == 0)
        str = &js->output;
    else if (strcmp(name, "error") == 0)
        str = &js->error;
    if (str) {
        set_str(str, value);
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
    else if (strcmp(name, "finished_ms") == 0)
        js->finished_ms = v;
}

static void status_free(Rfarm__JobStatus *js) {
    char *const strs[] = {js->id, js->state, js->engine, js->output, js->error};
    free_strs(strs, sizeof strs / sizeof strs[0]);
}

static void status(coord *c, rf_parts *req, const Rfarm__StatusRequest *s) {
    char err[512] = "";
    char (*ids)[RF_ID_MAX + 1] = calloc(STATUS_RECENT, sizeof *ids);
    Rfarm__JobStatus *js = calloc(STATUS_RECENT, sizeof *js);
    Rfarm__JobStatus **ptrs = calloc(STATUS_RECENT, sizeof *ptrs);
    if (!ids || !js || !ptrs) {
        reply_error(c, req, "coordinator: out of memory");
        goto out;
    }
    int n;
    if (s->job_id[0]) {
        snprintf(ids[0], sizeof ids[0], "%s", s->job_id);
        n = 1;
    } else if ((n = store_recent_jobs(c->st, STATUS_RECENT, ids, err, sizeof err)) < 0) {
        reply_error(c, req, err);
        goto out;
    }
    size_t found = 0;
    for (int i = 0; i < n; i++) {
        Rfarm__JobStatus *cur = &js[found];
        rfarm__job_status__init(cur);
        int rc = store_job_read(c->st, ids[i], status_field, cur, err, sizeof err);
        if (rc < 0) {
            status_free(cur);
            for (size_t k = 0; k < found; k++)
                status_free(&js[k]);
            reply_error(c, req, err);
            goto out;
        }
        if (rc == 1) {
            if (s->job_id[0]) {
                char msg[RF_ID_MAX + 32];
                snprintf(msg, sizeof msg, "job '%s' not found", s->job_id);
                reply_error(c, req, msg);
                goto out;
            }
            continue;
        }
        ptrs[found++] = cur;
    }
    Rfarm__StatusReply sr = RFARM__STATUS_REPLY__INIT;
    sr.n_jobs = found;
    sr.jobs = ptrs;
    Rfarm__ClientReply r = RFARM__CLIENT_REPLY__INIT;
    r.body_case = RFARM__CLIENT_REPLY__BODY_STATUS;
    r.status = &sr;
    reply(c, req, &r);
    for (size_t k = 0; k < found; k++)
        status_free(&js[k]);
out:
    free(ids);
    free(js);
    free(ptrs);
}

/* What the job's Redis record says its state is ("" when unknown). */
static void state_field(void *ctx, const char *name, const char *value) {
    if (strcmp(name, "state") == 0)
        snprintf(ctx, 16, "%s", value);
}

static void cancel(coord *c, rf_parts *req, const Rfarm__CancelRequest *q) {
    coord_job *j = rf_map_get(c->jobs, q->job_id);
    char msg[RF_ID_MAX + 128];
    if (!j) {
        char state[16] = "", err[512] = "";
        int rc = store_job_read(c->st, q->job_id, state_field, state, err, sizeof err);
        if (rc < 0)
            snprintf(msg, sizeof msg, "cancel: cannot look the job up: %s", err);
        else if (rc == 1)
            snprintf(msg, sizeof msg, "cancel: job '%s' not found", q->job_id);
        else
            snprintf(msg, sizeof msg, "cancel: job '%s' has already ended (%s)", q->job_id,
                     state[0] ? state : "unknown state");
        reply_error(c, req, msg);
        return;
    }
    uint32_t running = 0;
    for (size_t k = 0; k < j->plan->n; k++)
        running += j->segs[k].state == SEG_RUNNING;
    char id[RF_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", q->job_id);
    coord_job_finish(c, j, "cancelled", "cancelled by the operator", 0);
    Rfarm__CancelReply cr = RFARM__CANCEL_REPLY__INIT;
    cr.job_id = id;
    cr.segments_stopped = running;
    Rfarm__ClientReply r = RFARM__CLIENT_REPLY__INIT;
    r.body_case = RFARM__CLIENT_REPLY__BODY_CANCEL;
    r.cancel = &cr;
    reply(c, req, &r);
}

/* Fills a WorkerStatus from a worker's Redis hash; strings are strdup'd. */
static void worker_field(void *ctx, const char *name, const char *value) {
    Rfarm__WorkerStatus *ws = ctx;
    char **str = NULL;
    if (strcmp(name, "id") == 0)
        str = &ws->id;
    else if (strcmp(name, "state") == 0)
        str = &ws->state;
    else if (strcmp(name, "engines") == 0)
        str = &ws->engines;
    else if (strcmp(name, "compute") == 0)
        str = &ws->compute;
    else if (strcmp(name, "hostname") == 0)
        str = &ws->hostname;
    else if (strcmp(name, "kept_from_jobs") == 0)
        str = &ws->kept_from_jobs;
    else if (strcmp(name, "last_error") == 0)
        str = &ws->last_error;
    if (str) {
        set_str(str, value);
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

static void worker_status_free(Rfarm__WorkerStatus *ws) {
    char *const strs[] = {ws->id, ws->state, ws->engines, ws->compute, ws->hostname,
                          ws->kept_from_jobs, ws->last_error};
    free_strs(strs, sizeof strs / sizeof strs[0]);
}

typedef struct worker_list {
    char (*ids)[RF_ID_MAX + 1];
    size_t n, cap;
    int oom;
} worker_list;

static void collect_worker(void *ctx, const char *id) {
    worker_list *l = ctx;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        char (*nids)[RF_ID_MAX + 1] = realloc(l->ids, ncap * sizeof *nids);
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

static void workers(coord *c, rf_parts *req) {
    char err[512] = "";
    worker_list l = {0};
    if (store_worker_ids(c->st, collect_worker, &l, err, sizeof err) < 0 || l.oom) {
        reply_error(c, req, l.oom ? "coordinator: out of memory" : err);
        free(l.ids);
        return;
    }
    if (l.n)
        qsort(l.ids, l.n, sizeof *l.ids, by_id);
    Rfarm__WorkerStatus *ws = calloc(l.n ? l.n : 1, sizeof *ws);
    Rfarm__WorkerStatus **ptrs = calloc(l.n ? l.n : 1, sizeof *ptrs);
    size_t found = 0;
    if (!ws || !ptrs) {
        reply_error(c, req, "coordinator: out of memory");
        goto out;
    }
    uint64_t now = rf_wall_ms();
    for (size_t i = 0; i < l.n; i++) {
        Rfarm__WorkerStatus *cur = &ws[found];
        rfarm__worker_status__init(cur);
        int rc = store_worker_read(c->st, l.ids[i], worker_field, cur, err, sizeof err);
        if (rc != 0) {
            worker_status_free(cur);
            if (rc < 0) {
                reply_error(c, req, err);
                goto out;
            }
            continue;
        }
        /* A quarantine is a state of its own while it lasts. */
        if (cur->quarantined_until_ms > now && strcmp(cur->state, "gone") != 0)
            set_str(&cur->state, "quarantined");
        ptrs[found++] = cur;
    }
    Rfarm__WorkersReply wr = RFARM__WORKERS_REPLY__INIT;
    wr.n_workers = found;
    wr.workers = ptrs;
    Rfarm__ClientReply r = RFARM__CLIENT_REPLY__INIT;
    r.body_case = RFARM__CLIENT_REPLY__BODY_WORKERS;
    r.workers = &wr;
    reply(c, req, &r);
out:
    for (size_t k = 0; k < found; k++)
        worker_status_free(&ws[k]);
    free(ws);
    free(ptrs);
    free(l.ids);
}

void coord_client_request(coord *c) {
    rf_parts p;
    if (rf_wire_recv(c->csock, &p, ZMQ_DONTWAIT) != 0)
        return;
    /* REQ envelope: routing id, empty delimiter, request. */
    if (p.n != 3 || rf_part_size(&p, 1) != 0) {
        rf_parts_close(&p);
        return;
    }
    Rfarm__ClientRequest *m =
        rfarm__client_request__unpack(NULL, rf_part_size(&p, 2), rf_part_data(&p, 2));
    if (!m) {
        reply_error(c, &p, "request: not a valid ClientRequest message");
    } else if (m->body_case == RFARM__CLIENT_REQUEST__BODY_SUBMIT) {
        submit(c, &p, m->submit);
    } else if (m->body_case == RFARM__CLIENT_REQUEST__BODY_STATUS) {
        status(c, &p, m->status);
    } else if (m->body_case == RFARM__CLIENT_REQUEST__BODY_CANCEL) {
        cancel(c, &p, m->cancel);
    } else if (m->body_case == RFARM__CLIENT_REQUEST__BODY_WORKERS) {
        workers(c, &p);
    } else {
        reply_error(c, &p, "request: unknown request type");
    }
    if (m)
        rfarm__client_request__free_unpacked(m, NULL);
    rf_parts_close(&p);
}
