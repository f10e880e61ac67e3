/* cli_show — `rfarm status`, `watch`, `workers` and `logs`: the farm as
 * people and scripts read it.
 *
 * Tables for people, `--json` for scripts (the same fields, unrounded).
 * `watch` redraws progress bars in place on a terminal; when its output is
 * not a terminal (a file, a pipe, CI) it prints plain lines instead, one
 * per job or batch per interval, with no escape codes.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "rf_util.h"

static Rfarm__ClientReply *status_request(cli *c, const char *job, const char *batch,
                                          int *transient) {
    Rfarm__StatusRequest sr = RFARM__STATUS_REQUEST__INIT;
    sr.job_id = (char *)(job ? job : "");
    sr.batch_id = (char *)(batch ? batch : "");
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_STATUS;
    req.status = &sr;
    Rfarm__ClientReply *r = cli_request(c, &req, transient ? 2000 : CLI_REPLY_TIMEOUT_MS);
    if (!r && transient)
        *transient = 1;
    return r;
}

Rfarm__ClientReply *cli_get_status(cli *c, const char *id, int *transient) {
    Rfarm__ClientReply *r = status_request(c, id, NULL, transient);
    /* Not a job: perhaps a batch. */
    if (id && r && r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR &&
        strstr(r->error->error, "not found")) {
        rfarm__client_reply__free_unpacked(r, NULL);
        r = status_request(c, NULL, id, transient);
        if (r && r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR &&
            strstr(r->error->error, "not found")) {
            fprintf(stderr, "rfarm: no job or batch '%s'\n", id);
            rfarm__client_reply__free_unpacked(r, NULL);
            return NULL;
        }
    }
    if (r && r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR) {
        if (transient)
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

/* ---- JSON ---- */

/* Print {"<key>": arr, ...} for scripts; takes arr (and more, when not NULL). */
static void print_json(const char *key, json_t *arr, const char *key2, json_t *arr2) {
    json_t *root = json_pack("{s:o}", key, arr);
    if (root && key2)
        json_object_set_new(root, key2, arr2);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(root);
}

static json_t *job_json(const Rfarm__JobStatus *j) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "id", j->id,
                          "batch", j->batch, "state", j->state, "engine", j->engine, "priority",
                          j->priority, "frames", (json_int_t)j->frames, "frames_stitched",
                          (json_int_t)j->frames_stitched, "frames_to_render",
                          (json_int_t)j->frames_to_render, "frames_rendered",
                          (json_int_t)j->frames_rendered, "segments", (json_int_t)j->segments,
                          "segments_done", (json_int_t)j->segments_done);
    if (!o)
        return NULL;
    json_object_set_new(o, "rate_fps", json_real(j->rate_fps));
    json_object_set_new(o, "eta_s", json_real(j->eta_s));
    json_object_set_new(o, "output", json_string(j->output));
    json_object_set_new(o, "output_bytes", json_integer((json_int_t)j->output_bytes));
    json_object_set_new(o, "duration_s", json_real(j->duration_s));
    json_object_set_new(o, "render_ms", json_integer((json_int_t)j->render_ms));
    json_object_set_new(o, "segment_workers", json_string(j->segment_workers));
    json_object_set_new(o, "error", json_string(j->error));
    json_object_set_new(o, "created_ms", json_integer((json_int_t)j->created_ms));
    json_object_set_new(o, "started_ms", json_integer((json_int_t)j->started_ms));
    json_object_set_new(o, "finished_ms", json_integer((json_int_t)j->finished_ms));
    return o;
}

static json_t *batch_json(const Rfarm__BatchStatus *b) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "id", b->id,
                          "name", b->name, "state", b->state, "jobs", (json_int_t)b->jobs,
                          "jobs_done", (json_int_t)b->jobs_done, "jobs_failed",
                          (json_int_t)b->jobs_failed, "jobs_cancelled",
                          (json_int_t)b->jobs_cancelled, "frames_to_render",
                          (json_int_t)b->frames, "frames_rendered",
                          (json_int_t)b->frames_rendered, "created_ms",
                          (json_int_t)b->created_ms);
    if (o) {
        json_object_set_new(o, "rate_fps", json_real(b->rate_fps));
        json_object_set_new(o, "eta_s", json_real(b->eta_s));
    }
    return o;
}

/* ---- tables ---- */

/* Text that came from an engine's stderr (job errors, logs) printed for a
 * person: control characters would be read by the terminal, so they show
 * as '?'. */
static void put_clean(const char *text) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
}

static void fmt_eta(double eta, char *buf, size_t len) {
    if (eta < 0)
        snprintf(buf, len, "-");
    else if (eta < 90)
        snprintf(buf, len, "%.0fs", eta);
    else if (eta < 5400)
        snprintf(buf, len, "%.0fm", eta / 60);
    else
        snprintf(buf, len, "%.1fh", eta / 3600);
}

static int job_ended(const char *state) {
    return strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "cancelled") == 0;
}

static void print_tables(const Rfarm__StatusReply *s) {
    char eta[16];
    if (s->n_batches) {
        printf("%-20s %-16s %-9s %-17s %-21s %-9s %s\n", "BATCH", "NAME", "STATE",
               "JOBS done/fail/all", "FRAMES rendered", "RATE", "ETA");
        for (size_t i = 0; i < s->n_batches; i++) {
            const Rfarm__BatchStatus *b = s->batches[i];
            char jobs[40], frames[48], rate[24];
            snprintf(jobs, sizeof jobs, "%u/%u/%u", b->jobs_done, b->jobs_failed, b->jobs);
            snprintf(frames, sizeof frames, "%llu/%llu", (unsigned long long)b->frames_rendered,
                     (unsigned long long)b->frames);
            snprintf(rate, sizeof rate, "%.1f/s", b->rate_fps);
            fmt_eta(b->eta_s, eta, sizeof eta);
            printf("%-20s %-16s %-9s %-17s %-21s %-9s %s\n", b->id, b->name, b->state, jobs,
                   frames, rate, eta);
        }
        printf("\n");
    }
    printf("%-24s %-10s %-15s %-9s %-9s %-6s %s\n", "JOB", "STATE", "FRAMES", "SEGMENTS", "RATE",
           "ETA", "OUTPUT / ERROR");
    for (size_t i = 0; i < s->n_jobs; i++) {
        const Rfarm__JobStatus *j = s->jobs[i];
        char frames[32], segs[32], rate[24];
        snprintf(frames, sizeof frames, "%u/%u", j->frames_stitched, j->frames);
        snprintf(segs, sizeof segs, "%u/%u", j->segments_done, j->segments);
        snprintf(rate, sizeof rate, "%.1f/s", j->rate_fps);
        fmt_eta(j->eta_s, eta, sizeof eta);
        printf("%-24s %-10s %-15s %-9s %-9s %-6s ", j->id, j->state, frames, segs, rate, eta);
        put_clean(j->error[0] ? j->error : j->output);
        putchar('\n');
    }
}

static int parse_id_json(const char *cmd, int argc, char **argv, const char **id, int *as_json) {
    for (int i = 0; i < argc; i++) {
        if (as_json && strcmp(argv[i], "--json") == 0)
            *as_json = 1;
        else if (!*id && argv[i][0] != '-')
            *id = argv[i];
        else {
            fprintf(stderr, "rfarm %s: unexpected argument '%s'\n", cmd, argv[i]);
            return -1;
        }
    }
    return 0;
}

int cli_status(cli *c, int argc, char **argv) {
    const char *id = NULL;
    int as_json = 0;
    if (parse_id_json("status", argc, argv, &id, &as_json) != 0)
        return EXIT_USAGE;
    Rfarm__ClientReply *r = cli_get_status(c, id, NULL);
    if (!r)
        return EXIT_USAGE;
    const Rfarm__StatusReply *s = r->status;
    if (as_json) {
        json_t *jobs = json_array(), *batches = json_array();
        for (size_t i = 0; i < s->n_jobs; i++)
            json_array_append_new(jobs, job_json(s->jobs[i]));
        for (size_t i = 0; i < s->n_batches; i++)
            json_array_append_new(batches, batch_json(s->batches[i]));
        print_json("jobs", jobs, "batches", batches);
    } else {
        print_tables(s);
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return 0;
}

/* ---- watch ---- */

static void bar(double frac, char *buf, size_t width) {
    size_t fill = frac <= 0 ? 0 : frac >= 1 ? width : (size_t)(frac * (double)width);
    for (size_t i = 0; i < width; i++)
        buf[i] = i < fill ? '#' : '.';
    buf[width] = '\0';
}

typedef struct screen {
    int tty;
    size_t cols, rows; /* of the terminal; lines are cut to fit */
    int lines;         /* printed this frame */
} screen;

/* One line of a frame: on a terminal cut to its width (a wrapped line
 * would break the redraw) and only while rows are left; otherwise whole. */
static void put_line(screen *sc, const char *text) {
    if (!sc->tty) {
        printf("%s\n", text);
        sc->lines++;
        return;
    }
    if ((size_t)sc->lines + 1 >= sc->rows)
        return;
    printf("\033[2K%.*s\n", (int)(sc->cols > 1 ? sc->cols - 1 : 1), text);
    sc->lines++;
}

/* One line per batch and per job: on a terminal with a bar, otherwise
 * plain key=value. Sets whether everything shown has ended. */
static void draw(const Rfarm__StatusReply *s, screen *sc, int *all_ended) {
    char eta[16], b[41], line[512];
    const size_t width = 20; /* of a bar: a line fits in 80 columns */
    *all_ended = 1;
    for (size_t i = 0; i < s->n_batches; i++) {
        const Rfarm__BatchStatus *x = s->batches[i];
        double frac = x->frames ? (double)x->frames_rendered / (double)x->frames : 0;
        uint32_t ended = x->jobs_done + x->jobs_failed + x->jobs_cancelled;
        *all_ended &= ended >= x->jobs;
        fmt_eta(x->eta_s, eta, sizeof eta);
        bar(frac, b, width);
        if (sc->tty)
            snprintf(line, sizeof line, "%-18s [%s] %5.1f%% jobs %u/%u %.1f f/s eta %s", x->id, b,
                     frac * 100, ended, x->jobs, x->rate_fps, eta);
        else
            snprintf(line, sizeof line,
                     "batch=%s state=%s jobs_done=%u jobs_failed=%u jobs=%u frames_rendered=%llu "
                     "frames_to_render=%llu rate_fps=%.1f eta=%s", x->id, x->state, x->jobs_done,
                     x->jobs_failed, x->jobs, (unsigned long long)x->frames_rendered,
                     (unsigned long long)x->frames, x->rate_fps, eta);
        put_line(sc, line);
    }
    for (size_t i = 0; i < s->n_jobs; i++) {
        const Rfarm__JobStatus *j = s->jobs[i];
        double frac = j->frames_to_render ? (double)j->frames_rendered / (double)j->frames_to_render
                                          : 0;
        *all_ended &= job_ended(j->state);
        fmt_eta(j->eta_s, eta, sizeof eta);
        bar(frac, b, width);
        if (sc->tty)
            snprintf(line, sizeof line, "%-18.18s [%s] %5.1f%% %-9s %.1f f/s eta %s", j->id, b,
                     frac * 100, j->state, j->rate_fps, eta);
        else
            snprintf(line, sizeof line,
                     "job=%s state=%s frames_rendered=%llu frames_to_render=%llu "
                     "frames_stitched=%u frames=%u rate_fps=%.1f eta=%s", j->id, j->state,
                     (unsigned long long)j->frames_rendered,
                     (unsigned long long)j->frames_to_render, j->frames_stitched, j->frames,
                     j->rate_fps, eta);
        put_line(sc, line);
    }
    if (sc->tty)
        printf("\033[J"); /* what a longer previous frame left below */
    fflush(stdout);
}

int cli_watch(cli *c, int argc, char **argv) {
    const char *id = NULL;
    double interval = 1.0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            char *end;
            interval = strtod(argv[++i], &end);
            if (*end || interval < 0.1 || interval > 3600) {
                fprintf(stderr, "rfarm watch: --interval: must be 0.1 to 3600 seconds\n");
                return EXIT_USAGE;
            }
        } else if (!id && argv[i][0] != '-') {
            id = argv[i];
        } else {
            fprintf(stderr, "rfarm watch: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    screen sc = {.tty = isatty(STDOUT_FILENO), .cols = 80, .rows = 24};
    for (;;) {
        int transient = 0;
        Rfarm__ClientReply *r = cli_get_status(c, id, &transient);
        if (!r && !transient)
            return EXIT_USAGE;
        int all_ended = 0;
        if (r) {
            struct winsize ws;
            if (sc.tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
                sc.cols = ws.ws_col;
                sc.rows = ws.ws_row;
            }
            if (sc.tty && sc.lines)
                printf("\033[%dA", sc.lines); /* back to the first line of the last frame */
            sc.lines = 0;
            draw(r->status, &sc, &all_ended);
            /* An unnamed watch lists recent work: it ends when all of it has. */
            rfarm__client_reply__free_unpacked(r, NULL);
            if (all_ended)
                return 0;
        } else if (!sc.tty) {
            printf("coordinator unavailable; still watching\n");
            fflush(stdout);
        }
        rf_sleep_ms((unsigned)(interval * 1000));
    }
}

/* ---- workers ---- */

static json_t *worker_json(const Rfarm__WorkerStatus *w) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s}",
                          "id", w->id, "state", w->state, "engines", w->engines, "capacity",
                          (json_int_t)w->capacity, "gpus", (json_int_t)w->gpus, "compute",
                          w->compute, "hostname", w->hostname, "last_seen_ms",
                          (json_int_t)w->last_seen_ms, "segments_done",
                          (json_int_t)w->segments_done, "fail_streak", (json_int_t)w->fail_streak,
                          "quarantined_until_ms", (json_int_t)w->quarantined_until_ms,
                          "kept_from_jobs", w->kept_from_jobs, "last_error", w->last_error);
    if (o)
        json_object_set_new(o, "current", json_string(w->current));
    return o;
}

int cli_workers(cli *c, int argc, char **argv) {
    const char *none = NULL;
    int as_json = 0;
    if (parse_id_json("workers", argc, argv, &none, &as_json) != 0 || none) {
        if (none)
            fprintf(stderr, "rfarm workers: unexpected argument '%s'\n", none);
        return EXIT_USAGE;
    }
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    Rfarm__WorkersRequest wr = RFARM__WORKERS_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_WORKERS;
    req.workers = &wr;
    Rfarm__ClientReply *r = cli_request(c, &req, CLI_REPLY_TIMEOUT_MS);
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
        print_json("workers", arr, NULL, NULL);
    } else {
        uint64_t now = rf_wall_ms();
        printf("%-20s %-12s %-18s %-8s %-6s %-7s %-28s %s\n", "WORKER", "STATE", "ENGINES",
               "SEGMENTS", "STREAK", "SEEN", "DOING", "HEALTH");
        for (size_t i = 0; i < ws->n_workers; i++) {
            const Rfarm__WorkerStatus *w = ws->workers[i];
            char seen[32], health[1200] = "ok";
            if (w->last_seen_ms && now >= w->last_seen_ms)
                snprintf(seen, sizeof seen, "%llus",
                         (unsigned long long)((now - w->last_seen_ms) / 1000));
            else
                snprintf(seen, sizeof seen, "-");
            if (w->quarantined_until_ms > now)
                snprintf(health, sizeof health, "quarantined for %llus more",
                         (unsigned long long)((w->quarantined_until_ms - now + 999) / 1000));
            else if (w->kept_from_jobs[0])
                snprintf(health, sizeof health, "kept from %s", w->kept_from_jobs);
            printf("%-20s %-12s %-18s %-8u %-6u %-7s %-28s %s\n", w->id, w->state, w->engines,
                   w->segments_done, w->fail_streak, seen, w->current[0] ? w->current : "-",
                   health);
        }
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return 0;
}

/* ---- logs ---- */

int cli_logs(cli *c, int argc, char **argv) {
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "rfarm logs: expected one JOB id\n");
        return EXIT_USAGE;
    }
    Rfarm__LogsRequest lr = RFARM__LOGS_REQUEST__INIT;
    lr.job_id = argv[0];
    Rfarm__ClientRequest req = RFARM__CLIENT_REQUEST__INIT;
    req.body_case = RFARM__CLIENT_REQUEST__BODY_LOGS;
    req.logs = &lr;
    Rfarm__ClientReply *r = cli_request(c, &req, CLI_REPLY_TIMEOUT_MS);
    if (!r)
        return EXIT_USAGE;
    int rc = EXIT_USAGE;
    if (r->body_case == RFARM__CLIENT_REPLY__BODY_LOGS) {
        for (size_t i = 0; i < r->logs->n_lines; i++) {
            /* "<ts_ms> <text>" -> an ISO time a person can read */
            const char *line = r->logs->lines[i];
            char *rest;
            unsigned long long ms = strtoull(line, &rest, 10);
            time_t t = (time_t)(ms / 1000);
            struct tm tm;
            char when[32] = "";
            if (gmtime_r(&t, &tm))
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
            printf("%s.%03lluZ", when, ms % 1000);
            put_clean(rest);
            putchar('\n');
        }
        rc = 0;
    } else if (r->body_case == RFARM__CLIENT_REPLY__BODY_ERROR) {
        fprintf(stderr, "rfarm: %s\n", r->error->error);
    }
    rfarm__client_reply__free_unpacked(r, NULL);
    return rc;
}
