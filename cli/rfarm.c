/* rfarm — the operator's command line: submit jobs and batches, see their
 * state, wait for them, pause, resume or cancel them, see the workers.
 *
 *   rfarm [--endpoint EP] submit FILE.json | BATCH.jsonl [--name N] [--skip-invalid]
 *   rfarm [--endpoint EP] status [JOB|BATCH] [--json]
 *   rfarm [--endpoint EP] watch [JOB|BATCH] [--interval S]
 *   rfarm [--endpoint EP] wait JOB [--timeout SECONDS]
 *   rfarm [--endpoint EP] pause|resume|cancel JOB|BATCH
 *   rfarm [--endpoint EP] workers [--json]
 *   rfarm [--endpoint EP] logs JOB
 *
 * The CLI talks to the coordinator's client endpoint (REQ, protobuf). It
 * resolves a relative output path against the directory it runs in, since
 * that is what the operator means; every other check happens in the
 * coordinator, which answers with all problems at once.
 *
 * A batch is named by its content: the same file submitted again is the
 * same batch, and its jobs are not created twice.
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

#include "cli.h"
#include "rf_spec.h"
#include "rf_util.h"
#include "rf_wire.h"

static void usage(FILE *f) {
    fprintf(f, "usage: rfarm [--endpoint EP] COMMAND ...\n"
               "  submit FILE.json               submit a job; prints its id\n"
               "  submit FILE.jsonl [--name N] [--skip-invalid]\n"
               "                                 submit a batch (a job per line); prints its id\n"
               "  status [JOB|BATCH] [--json]    state, progress, rate and ETA\n"
               "  watch [JOB|BATCH] [--interval S]  live progress until it ends\n"
               "  wait JOB [--timeout SECONDS]   wait until the job ends; exit 0 if it is done\n"
               "  pause|resume|cancel JOB|BATCH  stop handing out its segments / go on / stop it\n"
               "  workers [--json]               the workers, what they do, their health\n"
               "  logs JOB                       a job's events and its engine's stderr\n"
               "The endpoint defaults to $RFARM_ENDPOINT, else tcp://127.0.0.1:5556.\n");
}

Rfarm__ClientReply *cli_request(cli *c, const Rfarm__ClientRequest *req, int tmo) {
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

/* A name for content: FNV-1a, 64 bits, as 16 hex digits. Not a security
 * measure; it only has to tell different batch files apart. */
static void content_id(const char *const *lines, size_t n, char out[18]) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)lines[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ '\n') * 1099511628211ull;
    }
    snprintf(out, 18, "b%016llx", (unsigned long long)h);
}

static const char *base_name(const char *path, char *buf, size_t len) {
    const char *b = strrchr(path, '/');
    snprintf(buf, len, "%s", b ? b + 1 : path);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = '\0';
    return buf;
}

static int submit_batch(cli *c, const char *path, char *text, size_t len, const char *name,
                        int skip_invalid) {
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    char **lines = calloc(n, sizeof *lines);
    if (!lines) {
        fprintf(stderr, "rfarm: out of memory\n");
        return EXIT_USAGE;
    }
    size_t nl = 0;
    int rc = EXIT_USAGE;
    for (char *p = text, *end = text + len; p <= end && nl < n;) {
        char *nlc = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nlc ? (size_t)(nlc - p) : (size_t)(end - p);
        if (!nlc && ll == 0)
            break; /* the file ends with a newline */
        lines[nl] = resolve_output(p, ll);
        if (!lines[nl++]) {
            fprintf(stderr, "rfarm: out of memory\n");
            goto out;
        }
        p += ll + 1;
    }
    char id[18], nb[RF_ID_MAX + 1];
    content_id((const char *const *)lines, nl, id);
    Rfarm__SubmitBatchRequest br = RFARM__SUBMIT_BATCH_REQUEST__INIT;
    br.batch_id = id;
    br.name = (char *)(name ? name : base_name(path, nb, sizeof nb));
    br.lines = lines;
    br.n_lines = nl;
    br.skip_invalid = skip_invalid;
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_SUBMIT_BATCH;
    req.submit_batch = &br;
    Rfarm__ClientReply *r = cli_request(c, &req, 60000);
    if (!r)
        goto out;
    if (r->body_case == RFARM__CLIENT_REPLY__BODY_SUBMIT_BATCH) {
        const Rfarm__SubmitBatchReply *b = r->submit_batch;
        if (b->ok) {
            printf("%s\n", b->batch_id);
            fprintf(stderr, "rfarm: batch %s (%s): %zu jobs created, %u already there, %u invalid "
                    "lines skipped\n", b->batch_id, br.name, b->n_job_ids, b->existing,
                    b->invalid_lines);
            rc = 0;
        } else {
            fprintf(stderr, "rfarm: %s was rejected (%u invalid lines; nothing was queued%s):\n",
                    path, b->invalid_lines, skip_invalid ? "" : "; --skip-invalid accepts the rest");
            rc = EXIT_FAILED;
        }
        for (size_t i = 0; i < b->n_errors; i++)
            fprintf(stderr, "  %s\n", b->errors[i]);
    } else if (r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR) {
        fprintf(stderr, "rfarm: %s\n", r->error->error);
    }
    rfarm__client_reply__free_unpacked(r, NULL);
out:
    for (size_t i = 0; i < nl; i++)
        free(lines[i]);
    free(lines);
    return rc;
}

static int cmd_submit(cli *c, int argc, char **argv) {
    const char *file = NULL, *name = NULL;
    int skip_invalid = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--skip-invalid") == 0)
            skip_invalid = 1;
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (!file && argv[i][0] != '-')
            file = argv[i];
        else {
            fprintf(stderr, "rfarm submit: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!file) {
        fprintf(stderr, "rfarm submit: expected one FILE.json or FILE.jsonl\n");
        return EXIT_USAGE;
    }
    size_t flen = strlen(file);
    int batch = flen > 6 && strcmp(file + flen - 6, ".jsonl") == 0;
    if (!batch && (name || skip_invalid)) {
        fprintf(stderr, "rfarm submit: --name and --skip-invalid are for batches (FILE.jsonl)\n");
        return EXIT_USAGE;
    }
    size_t len;
    char *text = read_file(file, &len);
    if (!text)
        return EXIT_USAGE;
    if (batch) {
        int rc = submit_batch(c, file, text, len, name, skip_invalid);
        free(text);
        return rc;
    }
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
    Rfarm__ClientReply *r = cli_request(c, &req, CLI_REPLY_TIMEOUT_MS);
    free(spec);
    if (!r)
        return EXIT_USAGE;
    int rc = EXIT_USAGE;
    if (r->body_case == RFARM__CLIENT_REPLY__BODY_SUBMIT && r->submit->ok) {
        printf("%s\n", r->submit->job_id);
        rc = 0;
    } else if (r->body_case == RFARM__CLIENT_REPLY__BODY_SUBMIT) {
        fprintf(stderr, "rfarm: %s was rejected:\n", file);
        for (size_t i = 0; i < r->submit->n_errors; i++)
            fprintf(stderr, "  %s\n", r->submit->errors[i]);
        rc = EXIT_FAILED;
    } else if (r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR) {
        fprintf(stderr, "rfarm: %s\n", r->error->error);
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return rc;
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
        Rfarm__ClientReply *r = cli_get_status(c, job, &transient);
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

static int cmd_control(cli *c, const char *action, int argc, char **argv) {
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "rfarm %s: expected one JOB or BATCH id\n", action);
        return EXIT_USAGE;
    }
    Rfarm__ControlRequest cr = RFARM__CONTROL_REQUEST__INIT;
    cr.target = argv[0];
    cr.action = (char *)action;
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_CONTROL;
    req.control = &cr;
    Rfarm__ClientReply *r = cli_request(c, &req, CLI_REPLY_TIMEOUT_MS);
    if (!r)
        return EXIT_USAGE;
    int rc = EXIT_USAGE;
    if (r->body_case == RFARM__CLIENT_REPLY__BODY_CONTROL) {
        const Rfarm__ControlReply *k = r->control;
        const char *done = strcmp(action, "cancel") == 0  ? "cancelled"
                           : strcmp(action, "pause") == 0 ? "paused"
                                                          : "resumed";
        printf("%s %s %s jobs=%u segments_stopped=%u\n", k->kind, k->target, done, k->jobs,
               k->segments_stopped);
        rc = 0;
    } else if (r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR) {
        fprintf(stderr, "rfarm: %s\n", r->error->error);
    } else {
        fprintf(stderr, "rfarm: unexpected reply to a %s request\n", action);
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return rc;
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
    int control = strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0 ||
                  strcmp(cmd, "cancel") == 0;
    if (strcmp(cmd, "submit") == 0)
        fn = cmd_submit;
    else if (strcmp(cmd, "status") == 0)
        fn = cli_status;
    else if (strcmp(cmd, "watch") == 0)
        fn = cli_watch;
    else if (strcmp(cmd, "wait") == 0)
        fn = cmd_wait;
    else if (strcmp(cmd, "workers") == 0)
        fn = cli_workers;
    else if (strcmp(cmd, "logs") == 0)
        fn = cli_logs;
    if (!fn && !control) {
        fprintf(stderr, "rfarm: unknown command '%s'\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    c.zctx = zmq_ctx_new();
    int rc = control ? cmd_control(&c, cmd, argc - i, argv + i) : fn(&c, argc - i, argv + i);
    zmq_ctx_term(c.zctx);
    return rc;
}
