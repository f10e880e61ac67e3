/* coord_batch — batches of jobs, and pausing, resuming and cancelling jobs
 * and batches.
 *
 * A batch is a JSONL file, one job spec per line, submitted at once. The
 * CLI names it by its content (a hash), so the same file submitted again is
 * the same batch; a line without an id becomes job "<batch>-<line>", so it
 * is the same job again. Submitting a batch therefore never creates a job
 * twice: jobs whose id exists are counted as existing and left alone.
 *
 * Every line is checked before anything is created; by default one bad
 * line rejects the batch, with one message per problem, "line N: field:
 * reason". With skip_invalid the good lines are accepted and the bad ones
 * listed. Output paths may use {batch}, {name}, {id} and {line}; a missing
 * directory that a template names is created once the batch is accepted
 * (its nearest existing ancestor must be writable).
 *
 * Jobs of a batch share the farm with other batches of the same priority
 * by rendered frames (sched.h). Pausing a batch pauses its unfinished jobs
 * and the jobs added to it later; cancelling it cancels them all.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_internal.h"
#include "engine.h"
#include "rf_util.h"

#define MAX_REPLY_ERRORS 1000

void *coord_scratch_add(coord_scratch *sc, void *p) {
    if (!p)
        return NULL;
    if (sc->n == sc->cap) {
        size_t ncap = sc->cap ? sc->cap * 2 : 16;
        void **np = realloc(sc->ptrs, ncap * sizeof *np);
        if (!np) {
            free(p);
            return NULL;
        }
        sc->ptrs = np;
        sc->cap = ncap;
    }
    sc->ptrs[sc->n++] = p;
    return p;
}

void coord_scratch_free(coord_scratch *sc) {
    for (size_t i = 0; i < sc->n; i++)
        free(sc->ptrs[i]);
    free(sc->ptrs);
    sc->ptrs = NULL;
    sc->n = sc->cap = 0;
}

/* ---- batches in memory ---- */

static void state_field(void *ctx, const char *name, const char *value) {
    if (strcmp(name, "state") == 0)
        snprintf(ctx, 16, "%s", value);
}

coord_batch *coord_batch_get(coord *c, const char *id) {
    coord_batch *b = rf_map_get(c->batches, id);
    if (b)
        return b;
    b = calloc(1, sizeof *b);
    if (!b || rf_map_put(c->batches, id, b) != 0) {
        free(b);
        return NULL;
    }
    snprintf(b->id, sizeof b->id, "%s", id);
    char state[16] = "", err[256];
    if (store_batch_read(c->st, id, state_field, state, err, sizeof err) == 0)
        b->paused = strcmp(state, "paused") == 0;
    return b;
}

int coord_batch_job_added(coord *c, const char *id) {
    coord_batch *b = coord_batch_get(c, id);
    if (!b)
        return 0;
    b->open_jobs++;
    b->ended = 0;
    return b->paused;
}

void coord_batch_rendered(coord *c, const char *id, uint32_t frames) {
    coord_batch *b = rf_map_get(c->batches, id);
    if (!b) {
        coord_store_warn(c, store_batch_incr(c->st, id, "frames_rendered", frames), "batch");
        return;
    }
    b->frames_unsent += frames;
    c->batches_dirty = 1;
}

static int flush_batch(void *ctx, const char *key, void *value) {
    coord *c = ctx;
    coord_batch *b = value;
    if (b->frames_unsent) {
        coord_store_warn(c, store_batch_incr(c->st, key, "frames_rendered",
                                             (int64_t)b->frames_unsent), "batch");
        b->frames_unsent = 0;
    }
    return 0;
}

void coord_batches_flush(coord *c) {
    if (!c->batches_dirty)
        return;
    c->batches_dirty = 0;
    rf_map_each(c->batches, flush_batch, c);
}

static const char *batch_state(const coord_batch *b) {
    return b->ended ? (b->cancelled ? "cancelled" : "done") : b->paused ? "paused" : "active";
}

void coord_batch_job_ended(coord *c, const coord_job *j, const char *state) {
    if (!j->batch[0])
        return;
    char field[32];
    snprintf(field, sizeof field, "jobs_%s", state);
    coord_store_warn(c, store_batch_incr(c->st, j->batch, field, 1), "batch");
    coord_batch *b = rf_map_get(c->batches, j->batch);
    if (!b || --b->open_jobs > 0)
        return;
    b->ended = 1;
    coord_store_warn(c, store_hset(c->st, "batch", b->id, "state", batch_state(b)), "batch");
    rf_info(LOG, "batch %s batch=%s", batch_state(b), b->id);
}

typedef struct batch_walk {
    coord *c;
    char (*ids)[RF_ID_MAX + 1];
    size_t n, cap;
    int ended_only;
} batch_walk;

static int collect_batch(void *ctx, const char *key, void *value) {
    batch_walk *w = ctx;
    const coord_batch *b = value;
    if (w->ended_only && !b->ended)
        return 0;
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 16;
        char(*nids)[RF_ID_MAX + 1] = realloc(w->ids, ncap * sizeof *nids);
        if (!nids)
            return 1;
        w->ids = nids;
        w->cap = ncap;
    }
    snprintf(w->ids[w->n++], RF_ID_MAX + 1, "%s", key);
    return 0;
}

void coord_batches_reap(coord *c) {
    batch_walk w = {.c = c, .ended_only = 1};
    rf_map_each(c->batches, collect_batch, &w);
    for (size_t i = 0; i < w.n; i++)
        free(rf_map_del(c->batches, w.ids[i]));
    free(w.ids);
}

void coord_batches_resync(coord *c) {
    batch_walk w = {.c = c};
    rf_map_each(c->batches, collect_batch, &w);
    for (size_t i = 0; i < w.n; i++) {
        coord_batch *b = rf_map_get(c->batches, w.ids[i]);
        store_batch_totals t;
        if (b && store_batch_recount(c->st, b->id, batch_state(b), &t) != 0) {
            coord_store_warn(c, -1, "batch totals");
            break;
        }
        if (b)
            b->frames_unsent = 0; /* the recount has them */
        if (b)
            rf_info(LOG, "batch recounted batch=%s state=%s jobs=%u done=%u failed=%u cancelled=%u",
                    b->id, batch_state(b), t.jobs, t.jobs_done, t.jobs_failed, t.jobs_cancelled);
    }
    free(w.ids);
}

static int free_batch(void *ctx, const char *key, void *value) {
    (void)ctx;
    (void)key;
    free(value);
    return 0;
}

void coord_batches_free(coord *c) {
    if (c->batches) {
        rf_map_each(c->batches, free_batch, NULL);
        rf_map_free(c->batches);
        c->batches = NULL;
    }
}

/* ---- submission ---- */

/* out = tmpl with {batch} {name} {id} {line} replaced. 0, or -1 when it does
 * not fit or names an unknown variable (msg set). */
static int expand(const char *tmpl, const char *batch, const char *name, const char *id,
                  uint32_t line, char *out, size_t outlen, char *msg, size_t msglen) {
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        const char *val = NULL;
        char num[16];
        size_t skip = 0;
        if (*p == '{') {
            const char *end = strchr(p, '}');
            size_t n = end ? (size_t)(end - p - 1) : 0;
            if (end && n == 5 && strncmp(p + 1, "batch", 5) == 0)
                val = batch;
            else if (end && n == 4 && strncmp(p + 1, "name", 4) == 0)
                val = name;
            else if (end && n == 2 && strncmp(p + 1, "id", 2) == 0)
                val = id;
            else if (end && n == 4 && strncmp(p + 1, "line", 4) == 0) {
                snprintf(num, sizeof num, "%u", line);
                val = num;
            } else {
                snprintf(msg, msglen, "output.path: unknown template variable %.*s (use {batch}, "
                         "{name}, {id} or {line})", end ? (int)(n + 2) : 1, p);
                return -1;
            }
            skip = n + 2;
        }
        size_t vl = val ? strlen(val) : 1;
        if (o + vl + 1 > outlen) {
            snprintf(msg, msglen, "output.path: longer than %zu bytes once expanded", outlen - 1);
            return -1;
        }
        memcpy(out + o, val ? val : p, vl);
        o += vl;
        p += val ? skip : 1;
    }
    out[o] = '\0';
    return 0;
}

/* A batch name becomes part of paths and ids: keep it to [A-Za-z0-9._-]. */
static void safe_name(const char *in, char *out, size_t outlen) {
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < outlen; p++)
        out[o++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                           (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'
                       ? *p
                       : '_';
    out[o] = '\0';
}

typedef struct parsed {
    rf_spec *spec;
    uint32_t line;
    int result;                /* store_jobs_create's: 0 new, 1 existed */
    uint64_t frames_to_render; /* sum of its segments' frames */
} parsed;

/* Record the parsed jobs in Redis together; fills each result. */
static int record_all(coord *c, const char *batch, parsed *ok, size_t n, char *err,
                      size_t errlen) {
    store_new_job *nj = calloc(n, sizeof *nj);
    plan **plans = calloc(n, sizeof *plans);
    uint32_t **bufs = calloc(2 * n, sizeof *bufs);
    int rc = -1;
    if (!nj || !plans || !bufs) {
        snprintf(err, errlen, "coordinator: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const rf_spec *sp = ok[i].spec;
        if (plan_new(sp->frames, sp->segment_frames, sp->overlap_frames, sp->blend, &plans[i], err,
                     errlen) != 0)
            goto out;
        uint32_t *first = bufs[2 * i] = malloc(plans[i]->n * sizeof *first);
        uint32_t *frames = bufs[2 * i + 1] = malloc(plans[i]->n * sizeof *frames);
        if (!first || !frames) {
            snprintf(err, errlen, "coordinator: out of memory");
            goto out;
        }
        ok[i].frames_to_render = 0;
        for (size_t k = 0; k < plans[i]->n; k++) {
            first[k] = plans[i]->seg[k].first;
            frames[k] = plans[i]->seg[k].frames;
            ok[i].frames_to_render += frames[k];
        }
        nj[i] = (store_new_job){.spec = sp,
                                .meta = {.batch = batch, .line = ok[i].line,
                                         .frames_to_render = ok[i].frames_to_render},
                                .nseg = (uint32_t)plans[i]->n,
                                .seg_first = first,
                                .seg_frames = frames,
                                .result = &ok[i].result};
    }
    rc = store_jobs_create(c->st, nj, n, err, errlen);
    if (rc != 0 && !store_available(c->st))
        snprintf(err, errlen, "redis: the farm's Redis is unavailable (%s)",
                 store_last_error(c->st));
out:
    for (size_t i = 0; plans && i < n; i++)
        plan_free(plans[i]);
    for (size_t i = 0; bufs && i < 2 * n; i++)
        free(bufs[i]);
    free(nj);
    free(plans);
    free(bufs);
    return rc;
}

/* Line `line` of batch `b` as a spec: the id filled in when absent, output
 * templates expanded, everything validated. NULL with problems appended to
 * errs ("line N: ..."). */
static rf_spec *parse_line(const char *text, const char *batch, const char *name, uint32_t line,
                           char *errs, size_t errlen, unsigned *nerr) {
    char msg[8192] = "";
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    rf_spec *spec = NULL;
    if (!root || !json_is_object(root)) {
        snprintf(msg, sizeof msg, "not a JSON object%s%s", root ? "" : ": ", root ? "" : jerr.text);
    } else {
        char id[RF_ID_MAX + 1];
        json_t *jid = json_object_get(root, "id");
        if (!jid) {
            snprintf(id, sizeof id, "%.40s-%u", batch, line);
            json_object_set_new(root, "id", json_string(id));
        } else {
            snprintf(id, sizeof id, "%s", json_is_string(jid) ? json_string_value(jid) : "");
        }
        json_t *out = json_object_get(root, "output");
        json_t *path = json_is_object(out) ? json_object_get(out, "path") : NULL;
        int templated = path && json_is_string(path) && strchr(json_string_value(path), '{');
        if (templated) {
            char expanded[RF_PATH_MAX];
            if (expand(json_string_value(path), batch, name, id, line, expanded, sizeof expanded,
                       msg, sizeof msg) == 0)
                json_object_set_new(out, "path", json_string(expanded));
        }
        if (!msg[0]) {
            char *canon = json_dumps(root, JSON_COMPACT);
            rf_spec_opts opts = {.engines = engine_names(), .check_output_dir = templated ? 2 : 1,
                                 .base_dir = NULL, .check_params = engine_check_params,
                                 .frame_step = engine_frame_step};
            if (!canon)
                snprintf(msg, sizeof msg, "out of memory");
            else if (rf_spec_parse(canon, strlen(canon), &opts, &spec, msg, sizeof msg) != 0)
                spec = NULL;
            free(canon);
        }
    }
    json_decref(root);
    if (!spec) {
        /* The first MAX_REPLY_ERRORS lines are kept; the rest only counted,
         * so a file of a million bad lines costs no more than its parse. */
        for (char *save = NULL, *l = strtok_r(msg, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            if (*nerr < MAX_REPLY_ERRORS) {
                size_t used = strlen(errs);
                snprintf(errs + used, errlen - used, "line %u: %s\n", line, l);
            }
            (*nerr)++;
        }
    }
    return spec;
}

static void split_errors(char *errs, Rfarm__SubmitBatchReply *r, coord_scratch *sc) {
    size_t n = 0;
    for (const char *p = errs; *p; p++)
        n += *p == '\n';
    char **lines = coord_scratch_add(sc, calloc(n ? n : 1, sizeof *lines));
    if (!lines)
        return;
    size_t i = 0;
    for (char *save = NULL, *l = strtok_r(errs, "\n", &save); l && i < n;
         l = strtok_r(NULL, "\n", &save))
        lines[i++] = l;
    r->errors = lines;
    r->n_errors = i;
}

void coord_batch_submit(coord *c, const Rfarm__SubmitBatchRequest *q, Rfarm__ClientReply *reply,
                        coord_scratch *sc) {
    Rfarm__SubmitBatchReply *r = coord_scratch_add(sc, malloc(sizeof *r));
    char *errs = coord_scratch_add(sc, calloc(1, 256 * 1024));
    parsed *ok = coord_scratch_add(sc, calloc(q->n_lines ? q->n_lines : 1, sizeof *ok));
    char **ids = coord_scratch_add(sc, calloc(q->n_lines ? q->n_lines : 1, sizeof *ids));
    if (!r || !errs || !ok || !ids) {
        coord_scratch_free(sc);
        return;
    }
    rfarm__submit_batch_reply__init(r);
    reply->body_case = RFARM__CLIENT_REPLY__BODY_SUBMIT_BATCH;
    reply->submit_batch = r;
    r->batch_id = q->batch_id;
    char name[RF_ID_MAX + 1];
    safe_name(q->name[0] ? q->name : q->batch_id, name, sizeof name);
    unsigned nerr = 0, bad = 0;
    size_t nok = 0;
    if (!q->batch_id[0] || strlen(q->batch_id) > 32 || strspn(q->batch_id, "0123456789abcdefghijklmnopqrstuvwxyz-") != strlen(q->batch_id)) {
        snprintf(errs, 256 * 1024, "batch: id must be 1 to 32 characters of a-z 0-9 -\n");
        split_errors(errs, r, sc);
        return;
    }
    for (size_t i = 0; i < q->n_lines; i++) {
        const char *text = q->lines[i];
        if (strspn(text, " \t\r") == strlen(text))
            continue; /* blank lines are allowed */
        unsigned before = nerr;
        rf_spec *spec = parse_line(text, q->batch_id, name, (uint32_t)(i + 1), errs, 256 * 1024, &nerr);
        if (spec)
            ok[nok++] = (parsed){.spec = spec, .line = (uint32_t)(i + 1), .result = -1};
        else
            bad += nerr > before;
    }
    if (nerr > MAX_REPLY_ERRORS) {
        size_t used = strlen(errs);
        snprintf(errs + used, 256 * 1024 - used, "...: %u more problems not shown\n",
                 nerr - MAX_REPLY_ERRORS);
    }
    r->invalid_lines = bad;
    if (nok == 0 && bad == 0)
        snprintf(errs + strlen(errs), 256 * 1024 - strlen(errs), "batch: no job in it\n");
    if ((bad && !q->skip_invalid) || nok == 0) {
        for (size_t i = 0; i < nok; i++)
            rf_spec_free(ok[i].spec);
        rf_info(LOG, "batch rejected batch=%s lines=%zu invalid=%u", q->batch_id, q->n_lines, bad);
        split_errors(errs, r, sc);
        return;
    }
    /* Accepted: record every job in Redis at once (pipelined), then take
     * the new ones in. A job whose id exists is left alone. */
    uint32_t created = 0, existing = 0;
    uint64_t frames = 0;
    int failed = 0;
    char err[2048] = "";
    if (record_all(c, q->batch_id, ok, nok, err, sizeof err) != 0) {
        failed = 1;
        snprintf(errs + strlen(errs), 256 * 1024 - strlen(errs),
                 "%s; nothing of the batch was queued, submit it again\n", err);
    }
    char made_dir[RF_PATH_MAX] = "";
    for (size_t i = 0; i < nok; i++) {
        rf_spec *spec = ok[i].spec;
        if (failed || ok[i].result != 0) {
            existing += !failed && ok[i].result == 1;
            rf_spec_free(spec);
            continue;
        }
        /* Directories a template names; consecutive jobs mostly share one. */
        char dir[RF_PATH_MAX], id[RF_ID_MAX + 1];
        snprintf(dir, sizeof dir, "%s", spec->output_path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = '\0';
        if (strcmp(dir, made_dir) != 0) {
            if (rf_mkdirs(dir, 0755) != 0)
                rf_warn(LOG, "cannot create output directory dir=%s", dir);
            snprintf(made_dir, sizeof made_dir, "%s", dir);
        }
        snprintf(id, sizeof id, "%s", spec->id);
        uint64_t f = ok[i].frames_to_render;
        if (coord_job_admit(c, spec, q->batch_id, err, sizeof err) != 0) {
            snprintf(errs + strlen(errs), 256 * 1024 - strlen(errs), "line %u: %s\n", ok[i].line,
                     err);
            continue;
        }
        char *kept = coord_scratch_add(sc, strdup(id));
        ids[created++] = kept ? kept : (char *)"";
        frames += f;
    }
    if (created)
        coord_store_warn(c, store_batch_create(c->st, q->batch_id, name, created, frames), "batch");
    r->ok = !failed;
    r->job_ids = ids;
    r->n_job_ids = created;
    r->existing = existing;
    split_errors(errs, r, sc);
    rf_info(LOG, "batch %s batch=%s name=%s created=%u existing=%u invalid=%u",
            failed ? "rejected" : "accepted", q->batch_id, name, created, existing, bad);
}

/* ---- pause, resume, cancel ---- */

typedef struct collect_ctx {
    const char *batch;
    char (*ids)[RF_ID_MAX + 1];
    size_t n, cap;
} collect_ctx;

static int collect_batch_job(void *ctx, const char *key, void *value) {
    collect_ctx *cc = ctx;
    const coord_job *j = value;
    if (strcmp(j->batch, cc->batch) != 0)
        return 0;
    if (cc->n == cc->cap) {
        size_t ncap = cc->cap ? cc->cap * 2 : 64;
        char(*nids)[RF_ID_MAX + 1] = realloc(cc->ids, ncap * sizeof *nids);
        if (!nids)
            return 1;
        cc->ids = nids;
        cc->cap = ncap;
    }
    snprintf(cc->ids[cc->n++], RF_ID_MAX + 1, "%s", key);
    return 0;
}

static uint32_t running_segments(const coord_job *j) {
    uint32_t n = 0;
    for (size_t k = 0; k < j->plan->n; k++)
        n += j->segs[k].state == SEG_RUNNING;
    return n;
}

/* One job; returns the running segments it stopped (cancel). */
static uint32_t control_job(coord *c, coord_job *j, const char *action) {
    if (strcmp(action, "pause") == 0) {
        coord_job_pause(c, j, 1);
        return 0;
    }
    if (strcmp(action, "resume") == 0) {
        coord_job_pause(c, j, 0);
        return 0;
    }
    uint32_t running = running_segments(j);
    coord_job_finish(c, j, "cancelled", "cancelled by the operator", 0);
    return running;
}

static void control_error(Rfarm__ClientReply *reply, coord_scratch *sc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void control_error(Rfarm__ClientReply *reply, coord_scratch *sc, const char *fmt, ...) {
    Rfarm__ErrorReply *e = coord_scratch_add(sc, malloc(sizeof *e));
    char *msg = coord_scratch_add(sc, malloc(1024));
    if (!e || !msg)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, 1024, fmt, ap);
    va_end(ap);
    rfarm__error_reply__init(e);
    e->error = msg;
    reply->body_case = RFARM__CLIENT_REPLY__BODY_ERROR;
    reply->error = e;
}

void coord_control(coord *c, const Rfarm__ControlRequest *q, Rfarm__ClientReply *reply,
                   coord_scratch *sc) {
    const char *a = q->action;
    if (strcmp(a, "pause") != 0 && strcmp(a, "resume") != 0 && strcmp(a, "cancel") != 0) {
        control_error(reply, sc, "%s: unknown action (pause, resume or cancel)", a);
        return;
    }
    if (!rf_id_valid(q->target)) {
        control_error(reply, sc, "%s: no job or batch '%.80s' (not a valid id)", a, q->target);
        return;
    }
    Rfarm__ControlReply *r = coord_scratch_add(sc, malloc(sizeof *r));
    if (!r)
        return;
    rfarm__control_reply__init(r);
    r->target = q->target;
    coord_job *j = rf_map_get(c->jobs, q->target);
    if (j) {
        r->kind = "job";
        r->jobs = 1;
        r->segments_stopped = control_job(c, j, a);
    } else {
        char state[16] = "", err[512] = "";
        coord_batch *b = rf_map_get(c->batches, q->target);
        int brc = b ? 0 : store_batch_read(c->st, q->target, state_field, state, err, sizeof err);
        if (brc != 0) {
            int jrc = store_job_read(c->st, q->target, state_field, state, err, sizeof err);
            if (brc < 0 || jrc < 0)
                control_error(reply, sc, "%s: cannot look it up: %s", a, err);
            else if (jrc == 0)
                control_error(reply, sc, "%s: job '%s' has already ended (%s)", a, q->target,
                              state[0] ? state : "unknown state");
            else
                control_error(reply, sc, "%s: no job or batch '%s'", a, q->target);
            return;
        }
        if (!b) {
            control_error(reply, sc, "%s: batch '%s' has no unfinished job (%s)", a, q->target,
                          state[0] ? state : "done");
            return;
        }
        r->kind = "batch";
        b->paused = strcmp(a, "pause") == 0 ? 1 : strcmp(a, "resume") == 0 ? 0 : b->paused;
        if (strcmp(a, "cancel") == 0)
            b->cancelled = 1;
        else
            coord_store_warn(c, store_hset(c->st, "batch", b->id, "state",
                                           b->paused ? "paused" : "active"), "batch");
        collect_ctx cc = {.batch = q->target};
        rf_map_each(c->jobs, collect_batch_job, &cc);
        char id[RF_ID_MAX + 1];
        snprintf(id, sizeof id, "%s", q->target); /* the batch may go with its last job */
        for (size_t i = 0; i < cc.n; i++) {
            coord_job *bj = rf_map_get(c->jobs, cc.ids[i]);
            if (!bj)
                continue;
            r->jobs++;
            r->segments_stopped += control_job(c, bj, a);
        }
        free(cc.ids);
        rf_info(LOG, "batch %s batch=%s jobs=%u", a, id, r->jobs);
    }
    reply->body_case = RFARM__CLIENT_REPLY__BODY_CONTROL;
    reply->control = r;
}
