/* client_api — the coordinator's side of the `rfarm` CLI.
 *
 * Clients talk REQ to the coordinator's ROUTER: [routing id][empty][request]
 * in, the same envelope with the reply out. Requests are routed here:
 * submit (one job), submit_batch and control (coord_batch.c), status,
 * workers and logs (client_status.c). A submission is validated with the
 * same rules the CLI documents (rf_spec) plus what only the coordinator can
 * check (the engines its workers run, the output directory on its disk); a
 * spec with any problem is answered with every problem and leaves no trace
 * in Redis or on disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "coord_internal.h"
#include "engine.h"
#include "rf_util.h"
#include "rf_wire.h"

#define MAX_ERRORS 64

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
                         .check_params = engine_check_params, .frame_step = engine_frame_step};
    int rc = rf_spec_parse(s->spec_json, strlen(s->spec_json), &opts, &spec, errs, sizeof errs);
    if (rc == 0) {
        char id[RF_ID_MAX + 1];
        snprintf(id, sizeof id, "%s", spec->id);
        rc = coord_job_add(c, spec, NULL, 0, errs, sizeof errs); /* takes spec */
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
    Rfarm__ClientReply r = RFARM__CLIENT_REPLY__INIT;
    coord_scratch sc = {0};
    if (!m) {
        reply_error(c, &p, "request: not a valid ClientRequest message");
    } else if (m->body_case == RFARM__CLIENT_REQUEST__BODY_SUBMIT) {
        submit(c, &p, m->submit);
    } else {
        switch (m->body_case) {
        case RFARM__CLIENT_REQUEST__BODY_SUBMIT_BATCH:
            coord_batch_submit(c, m->submit_batch, &r, &sc);
            break;
        case RFARM__CLIENT_REQUEST__BODY_CONTROL:
            coord_control(c, m->control, &r, &sc);
            /* What the operator asked for is in Redis before they hear it
             * is done: a crash after the reply does not bring a cancelled
             * job back. Rare requests; one round trip. */
            coord_write_turn(c);
            break;
        case RFARM__CLIENT_REQUEST__BODY_STATUS:
            coord_status(c, m->status, &r, &sc);
            break;
        case RFARM__CLIENT_REQUEST__BODY_WORKERS:
            coord_workers_status(c, &r, &sc);
            break;
        case RFARM__CLIENT_REQUEST__BODY_LOGS:
            coord_logs(c, m->logs, &r, &sc);
            break;
        default:
            break;
        }
        if (r.body_case == RFARM__CLIENT_REPLY__BODY__NOT_SET)
            reply_error(c, &p, m->body_case == RFARM__CLIENT_REQUEST__BODY__NOT_SET
                                   ? "request: unknown request type"
                                   : "coordinator: out of memory");
        else
            reply(c, &p, &r);
    }
    coord_scratch_free(&sc);
    if (m)
        rfarm__client_request__free_unpacked(m, NULL);
    rf_parts_close(&p);
}
