/* rfarm — the operator's command line: submit jobs, see their state, wait
 * for them, cancel them, see the workers.
 *
 *   rfarm [--endpoint EP] submit FILE.json
 *   rfarm [--endpoint EP] status [JOB] [--json]
 *   rfarm [--endpoint EP] wait JOB [--timeout SECONDS]
 *   rfarm [--endpoint EP] cancel JOB
 *   rfarm [--endpoint EP] workers [--json]
 *
 * The CLI talks to the coordinator's client endpoint (REQ, protobuf). It
 * resolves a relative output path against the directory it runs in, since
 * that is what the operator means; every other check happens in the
 * coordinator, which answers with all problems at once.
 *
 * `wait` outlives a coordinator restart or a Redis outage: while the
 * coordinator cannot answer, it says so once and keeps asking until its
 * timeout.
 *
 * Exit status: 0 success; 1 the job failed, was cancelled or was rejected;
 * 2 usage or connection error (and an unknown job); 3 `wait` timed out.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "rf_util.h"
#include "rf_wire.h"
#include "rfarm.pb-c.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_TIMEOUT 3
#define REPLY_TIMEOUT_MS 10000

typedef struct cli {
    const char *endpoint;
    void *zctx;
} cli;

static void usage(FILE *f) {
    fprintf(f, "usage: rfarm [--endpoint EP] COMMAND ...\n"
               "  submit FILE.json              submit a job; prints its id\n"
               "  status [JOB] [--json]         state of one job, or of recent jobs\n"
               "  wait JOB [--timeout SECONDS]  wait until the job ends; exit 0 if it is done\n"
               "  cancel JOB                    stop a job: nothing more is rendered or written\n"
               "  workers [--json]              the workers the farm has seen, and their health\n"
               "The endpoint defaults to $RFARM_ENDPOINT, else tcp://127.0.0.1:5556.\n");
}

/* One request, one reply, on a fresh REQ socket (a REQ socket whose reply
 * never came cannot be reused). Returns NULL with a message printed. */
static Rfarm__ClientReply *request_within(cli *c, const Rfarm__ClientRequest *req, int tmo) {
    char err[256];
    void *s = rf_wire_socket(c->zctx, ZMQ_REQ, 0, err, sizeof err);
    if (!s) {
        fprintf(stderr, "rfarm: %s\n", err);
        return NULL;
    }
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    Rfarm__ClientReply *r = NULL;
    if (zmq_connect(s, c->endpoint) != 0) {
        fprintf(stderr, "rfarm: cannot connect to %s: %s\n", c->endpoint, zmq_strerror(errno));
    } else if (rf_wire_send_pb(s, &req->base, 0) != 0) {
        fprintf(stderr, "rfarm: cannot send to the coordinator at %s: %s\n", c->endpoint,
                zmq_strerror(errno));
    } else {
        rf_parts p;
        if (rf_wire_recv(s, &p, 0) != 0) {
            fprintf(stderr, "rfarm: no answer from the coordinator at %s within %d s (%s)\n",
                    c->endpoint, tmo / 1000, zmq_strerror(errno));
        } else {
            r = rfarm__client_reply__unpack(NULL, rf_part_size(&p, 0), rf_part_data(&p, 0));
            if (!r)
                fprintf(stderr, "rfarm: the coordinator sent a malformed reply\n");
            rf_parts_close(&p);
        }
    }
    zmq_close(s);
    return r;
}

static Rfarm__ClientReply *request(cli *c, const Rfarm__ClientRequest *req) {
    return request_within(c, req, REPLY_TIMEOUT_MS);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "rfarm: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
        if (!nb) {
            fprintf(stderr, "rfarm: %s is larger than 64 MiB\n", path);
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (buf && bad) {
        fprintf(stderr, "rfarm: cannot read %s\n", path);
        free(buf);
        return NULL;
    }
    if (buf)
        *len = n;
    return buf;
}

/* The spec with output.path made absolute against our cwd; the original
 * text when it is not JSON we can edit (the coordinator then reports why). */
static char *resolve_output(const char *text, size_t len) {
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    json_t *out = root && json_is_object(root) ? json_object_get(root, "output") : NULL;
    json_t *path = out && json_is_object(out) ? json_object_get(out, "path") : NULL;
    char *result = NULL;
    if (path && json_is_string(path) && json_string_value(path)[0] != '/' &&
        json_string_value(path)[0] != '\0') {
        char cwd[PATH_MAX], abs[PATH_MAX + 1024];
        if (getcwd(cwd, sizeof cwd) &&
            rf_fmt(abs, sizeof abs, "%s/%s", cwd, json_string_value(path)) == 0) {
            json_object_set_new(out, "path", json_string(abs));
            result = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        }
    }
    json_decref(root);
    if (!result) {
        result = malloc(len + 1);
        if (result) {
            memcpy(result, text, len);
            result[len] = '\0';
        }
    }
    return result;
}

static int cmd_submit(cli *c, int argc, char **argv) {
    if (argc != 1) {
        fprintf(stderr, "rfarm submit: expected one FILE.json\n");
        return EXIT_USAGE;
    }
    size_t len;
    char *text = read_file(argv[0], &len);
    if (!text)
        return EXIT_USAGE;
    char *spec = resolve_output(text, len);
    free(text);
    if (!spec) {
        fprintf(stderr, "rfarm: out of memory\n");
        return EXIT_USAGE;
    }
    Rfarm__SubmitRequest sr = RFARM__SUBMIT_REQUEST__INIT;
    sr.spec_json = spec;
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_SUBMIT;
    req.submit = &sr;
    Rfarm__ClientReply *r = request(c, &req);
    free(spec);
    if (!r)
        return EXIT_USAGE;
    int rc = EXIT_USAGE;
    if (r->body_case == RFARM__CLIENT_REPLY__BODY_SUBMIT && r->submit->ok) {
        printf("%s\n", r->submit->job_id);
        rc = 0;
    } else if (r->body_case == RFARM__CLIENT_REPLY__BODY_SUBMIT) {
        fprintf(stderr, "rfarm: %s was rejected:\n", argv[0]);
        for (size_t i = 0; i < r->submit->n_errors; i++)
            fprintf(stderr, "  %s\n", r->submit->errors[i]);
        rc = EXIT_FAILED;
    } else if (r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR) {
        fprintf(stderr, "rfarm: %s\n", r->error->error);
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return rc;
}

/* The status reply, or NULL with a message printed. With `transient`,
 * failures a retry may cure (no answer, Redis away) only set *transient and
 * print nothing; an unknown job is never transient. */
static Rfarm__ClientReply *get_status(cli *c, const char *job, int *transient) {
    Rfarm__StatusRequest sr = RFARM__STATUS_REQUEST__INIT;
    sr.job_id = (char *)(job ? job : "");
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_STATUS;
    req.status = &sr;
    Rfarm__ClientReply *r = transient ? request_within(c, &req, 2000) : request(c, &req);
    if (!r && transient)
        *transient = 1;
    if (r && r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR) {
        if (transient && !strstr(r->error->error, "not found"))
            *transient = 1;
        else
            fprintf(stderr, "rfarm: %s\n", r->error->error);
        rfarm__client_reply__free_unpacked(r, NULL);
        return NULL;
    }
    if (r && r->body_case != RFARM__CLIENT_REPLY__BODY_STATUS) {
        fprintf(stderr, "rfarm: unexpected reply to a status request\n");
        rfarm__client_reply__free_unpacked(r, NULL);
        return NULL;
    }
    return r;
}

/* Print {"<key>": arr} for scripts; takes arr. */
static void print_json(const char *key, json_t *arr) {
    json_t *root = json_pack("{s:o}", key, arr);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(root);
}

static json_t *job_json(const Rfarm__JobStatus *j) {
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:I, s:I}", "id", j->id,
                     "state", j->state, "engine", j->engine, "frames", (json_int_t)j->frames,
                     "frames_stitched", (json_int_t)j->frames_stitched, "segments",
                     (json_int_t)j->segments, "segments_done", (json_int_t)j->segments_done,
                     "output", j->output, "error", j->error, "created_ms",
                     (json_int_t)j->created_ms, "finished_ms", (json_int_t)j->finished_ms);
}

static int cmd_status(cli *c, int argc, char **argv) {
    const char *job = NULL;
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (!job && argv[i][0] != '-')
            job = argv[i];
        else {
            fprintf(stderr, "rfarm status: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    Rfarm__ClientReply *r = get_status(c, job, NULL);
    if (!r)
        return EXIT_USAGE;
    Rfarm__StatusReply *s = r->status;
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < s->n_jobs; i++)
            json_array_append_new(arr, job_json(s->jobs[i]));
        print_json("jobs", arr);
    } else {
        printf("%-24s %-10s %-15s %-9s %s\n", "JOB", "STATE", "FRAMES", "SEGMENTS", "OUTPUT / ERROR");
        for (size_t i = 0; i < s->n_jobs; i++) {
            const Rfarm__JobStatus *j = s->jobs[i];
            char frames[32], segs[32];
            snprintf(frames, sizeof frames, "%u/%u", j->frames_stitched, j->frames);
            snprintf(segs, sizeof segs, "%u/%u", j->segments_done, j->segments);
            printf("%-24s %-10s %-15s %-9s %s\n", j->id, j->state, frames, segs,
                   j->error[0] ? j->error : j->output);
        }
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return 0;
}

static int cmd_wait(cli *c, int argc, char **argv) {
    const char *job = NULL;
    double timeout_s = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            timeout_s = strtod(argv[++i], &end);
            if (*end || timeout_s <= 0) {
                fprintf(stderr, "rfarm wait: --timeout: must be a positive number of seconds\n");
                return EXIT_USAGE;
            }
        } else if (!job && argv[i][0] != '-') {
            job = argv[i];
        } else {
            fprintf(stderr, "rfarm wait: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!job) {
        fprintf(stderr, "rfarm wait: expected a JOB id\n");
        return EXIT_USAGE;
    }
    uint64_t deadline = timeout_s > 0 ? rf_mono_ms() + (uint64_t)(timeout_s * 1000) : 0;
    int told = 0;
    for (;;) {
        int transient = 0;
        Rfarm__ClientReply *r = get_status(c, job, &transient);
        if (!r && !transient)
            return EXIT_USAGE;
        if (!r) {
            if (!told)
                fprintf(stderr, "rfarm wait: the coordinator at %s cannot answer now; still "
                        "waiting\n", c->endpoint);
            told = 1;
            if (deadline && rf_mono_ms() >= deadline) {
                fprintf(stderr, "rfarm wait: job %s not finished after %.0f s\n", job, timeout_s);
                return EXIT_TIMEOUT;
            }
            rf_sleep_ms(500);
            continue;
        }
        if (r->status->n_jobs != 1) {
            fprintf(stderr, "rfarm wait: job '%s' not found\n", job);
            rfarm__client_reply__free_unpacked(r, NULL);
            return EXIT_USAGE;
        }
        const Rfarm__JobStatus *j = r->status->jobs[0];
        int rc = -1;
        if (strcmp(j->state, "done") == 0) {
            printf("%s done frames=%u output=%s\n", j->id, j->frames_stitched, j->output);
            rc = 0;
        } else if (strcmp(j->state, "failed") == 0 || strcmp(j->state, "cancelled") == 0) {
            fprintf(stderr, "rfarm: job %s %s: %s\n", j->id, j->state,
                    j->error[0] ? j->error : "(no reason recorded)");
            rc = EXIT_FAILED;
        }
        rfarm__client_reply__free_unpacked(r, NULL);
        if (rc >= 0)
            return rc;
        if (deadline && rf_mono_ms() >= deadline) {
            fprintf(stderr, "rfarm wait: job %s not finished after %.0f s\n", job, timeout_s);
            return EXIT_TIMEOUT;
        }
        rf_sleep_ms(200);
    }
}

static int cmd_cancel(cli *c, int argc, char **argv) {
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "rfarm cancel: expected one JOB id\n");
        return EXIT_USAGE;
    }
    Rfarm__CancelRequest cr = RFARM__CANCEL_REQUEST__INIT;
    cr.job_id = argv[0];
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_CANCEL;
    req.cancel = &cr;
    Rfarm__ClientReply *r = request(c, &req);
    if (!r)
        return EXIT_USAGE;
    int rc = EXIT_USAGE;
    if (r->body_case == RFARM__CLIENT_REPLY__BODY_CANCEL) {
        printf("%s cancelled segments_stopped=%u\n", r->cancel->job_id, r->cancel->segments_stopped);
        rc = 0;
    } else if (r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR) {
        fprintf(stderr, "rfarm: %s\n", r->error->error);
    } else {
        fprintf(stderr, "rfarm: unexpected reply to a cancel request\n");
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return rc;
}

static json_t *worker_json(const Rfarm__WorkerStatus *w) {
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s}", "id",
                     w->id, "state", w->state, "engines", w->engines, "capacity",
                     (json_int_t)w->capacity, "gpus", (json_int_t)w->gpus, "compute", w->compute,
                     "hostname", w->hostname, "last_seen_ms", (json_int_t)w->last_seen_ms,
                     "segments_done", (json_int_t)w->segments_done, "fail_streak",
                     (json_int_t)w->fail_streak, "quarantined_until_ms",
                     (json_int_t)w->quarantined_until_ms, "kept_from_jobs", w->kept_from_jobs,
                     "last_error", w->last_error);
}

static int cmd_workers(cli *c, int argc, char **argv) {
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else {
            fprintf(stderr, "rfarm workers: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    Rfarm__WorkersRequest wr = RFARM__WORKERS_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_WORKERS;
    req.workers = &wr;
    Rfarm__ClientReply *r = request(c, &req);
    if (!r)
        return EXIT_USAGE;
    if (r->body_case != RFARM__CLIENT_REPLY__BODY_WORKERS) {
        fprintf(stderr, "rfarm: %s\n", r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR
                                            ? r->error->error
                                            : "unexpected reply to a workers request");
        rfarm__client_reply__free_unpacked(r, NULL);
        return EXIT_USAGE;
    }
    const Rfarm__WorkersReply *ws = r->workers;
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < ws->n_workers; i++)
            json_array_append_new(arr, worker_json(ws->workers[i]));
        print_json("workers", arr);
    } else {
        uint64_t now = rf_wall_ms();
        printf("%-20s %-12s %-18s %-8s %-6s %-7s %s\n", "WORKER", "STATE", "ENGINES", "SEGMENTS",
               "STREAK", "SEEN", "HEALTH");
        for (size_t i = 0; i < ws->n_workers; i++) {
            const Rfarm__WorkerStatus *w = ws->workers[i];
            char seen[32], health[1200] = "ok";
            if (w->last_seen_ms && now >= w->last_seen_ms)
                snprintf(seen, sizeof seen, "%llus", (unsigned long long)((now - w->last_seen_ms) / 1000));
            else
                snprintf(seen, sizeof seen, "-");
            if (w->quarantined_until_ms > now)
                snprintf(health, sizeof health, "quarantined for %llus more",
                         (unsigned long long)((w->quarantined_until_ms - now + 999) / 1000));
            else if (w->kept_from_jobs[0])
                snprintf(health, sizeof health, "kept from %s", w->kept_from_jobs);
            printf("%-20s %-12s %-18s %-8u %-6u %-7s %s\n", w->id, w->state, w->engines,
                   w->segments_done, w->fail_streak, seen, health);
        }
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return 0;
}

int main(int argc, char **argv) {
    cli c = {.endpoint = getenv("RFARM_ENDPOINT")};
    if (!c.endpoint || !*c.endpoint)
        c.endpoint = "tcp://127.0.0.1:5556";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc) {
            c.endpoint = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "rfarm: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[i++];
    int (*fn)(cli *, int, char **) = NULL;
    if (strcmp(cmd, "submit") == 0)
        fn = cmd_submit;
    else if (strcmp(cmd, "status") == 0)
        fn = cmd_status;
    else if (strcmp(cmd, "wait") == 0)
        fn = cmd_wait;
    else if (strcmp(cmd, "cancel") == 0)
        fn = cmd_cancel;
    else if (strcmp(cmd, "workers") == 0)
        fn = cmd_workers;
    if (!fn) {
        fprintf(stderr, "rfarm: unknown command '%s'\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    c.zctx = zmq_ctx_new();
    int rc = fn(&c, argc - i, argv + i);
    zmq_ctx_term(c.zctx);
    return rc;
}
