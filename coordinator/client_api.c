/* client_api — the coordinator's answers to `rfarm` (submit, status).
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

#define LOG "coordinator"
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
        *str = strdup(value);
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
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strs[i] != protobuf_c_empty_string)
            free(strs[i]);
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
    } else {
        reply_error(c, &p, "request: unknown request type");
    }
    if (m)
        rfarm__client_request__free_unpacked(m, NULL);
    rf_parts_close(&p);
}
