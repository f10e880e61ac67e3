/* coord_jobs — a job's life in the coordinator: created from a spec or
 * reloaded after a restart, its segments queued, retried after failures
 * with backoff, and ended (done, failed or cancelled).
 *
 * Restart. A segment's frames go to a spool file named for its attempt
 * (seg-K.aN.part) and are renamed to seg-K.yuv when the worker says it is
 * done, or, a small one, are appended to a pack (spool.h), before Redis
 * records it done with where it is; so a segment Redis calls done has its
 * whole bytes in the spool. Spool files stay until the job's video is
 * complete: a coordinator started again on the same spool and Redis
 * reloads every unfinished job, keeps every done segment whose bytes are
 * whole, queues the rest, and stitches from the first frame again, giving
 * the same bytes. The price is disk: a job's raw frames until it is done.
 *
 * Retries. A failed attempt is queued again after a backoff that doubles
 * with each failure of that segment (--retry-backoff-ms, at most 30 s),
 * until --max-attempts failures fail the job with a reason naming the
 * segment, the workers that tried it and the last error. Segments already
 * done are never rendered again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coord_internal.h"
#include "engine.h"
#include "rf_util.h"

#define RETRY_BACKOFF_MAX_MS 30000

void coord_seg_part_path(const coord_job *j, uint32_t k, uint32_t attempt, char *buf, size_t len) {
    rf_fmt(buf, len, "%s/seg-%06u.a%u.part", j->spool, k, attempt);
}

int coord_seg_store_done(coord *c, const coord_job *j, uint32_t k) {
    const coord_seg *s = &j->segs[k];
    char pack[48];
    snprintf(pack, sizeof pack, "%" PRIu32 ":%" PRId64, s->loc.pack, s->loc.off);
    return store_seg_done(c->st, j->spec->id, k, s->attempt, s->worker[0] ? s->worker : NULL,
                          s->render_ms, s->started_wall_ms, s->finished_ms,
                          s->loc.pack ? pack : NULL);
}

void coord_seg_close(coord_job *j, uint32_t k, int remove_part) {
    coord_seg *s = &j->segs[k];
    free(s->mem);
    s->mem = NULL;
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
        if (remove_part) {
            char path[RF_PATH_MAX + 64];
            coord_seg_part_path(j, k, s->attempt, path, sizeof path);
            unlink(path);
        }
    }
}

void coord_job_free(coord_job *j) {
    if (!j)
        return;
    stitch_job_free(j->stitch);
    if (j->segs)
        for (size_t k = 0; k < j->plan->n; k++)
            coord_seg_close(j, (uint32_t)k, 1);
    free(j->segs);
    plan_free(j->plan);
    rf_spec_free(j->spec);
    rf_map_free(j->worker_failures);
    free(j->log_buf);
    free(j);
}

/* j on the list of jobs with something to write at the end of the turn. */
static void job_listed(coord *c, coord_job *j) {
    if (j->log_listed)
        return;
    j->log_listed = 1;
    j->log_prev = NULL;
    j->log_next = c->log_jobs;
    if (c->log_jobs)
        c->log_jobs->log_prev = j;
    c->log_jobs = j;
}

void coord_job_log(coord *c, coord_job *j, const char *fmt, ...) {
    if (!store_available(c->st))
        return;
    char line[1100];
    int at = snprintf(line, sizeof line, "%llu ", (unsigned long long)rf_wall_ms());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + at, sizeof line - (size_t)at, fmt, ap);
    va_end(ap);
    size_t len = strlen(line) + 1;
    if (j->log_len + len > j->log_cap) {
        size_t cap = j->log_cap ? 2 * j->log_cap : 1024;
        while (cap < j->log_len + len)
            cap *= 2;
        char *b = realloc(j->log_buf, cap);
        if (!b)
            return; /* a log line is not worth failing for */
        j->log_buf = b;
        j->log_cap = cap;
    }
    memcpy(j->log_buf + j->log_len, line, len);
    j->log_len += len;
    j->log_n++;
    job_listed(c, j);
}

void coord_job_progressed(coord *c, coord_job *j) {
    if (!store_available(c->st))
        return; /* the catch-up after the outage writes it (resync_job) */
    j->progress_dirty = 1;
    job_listed(c, j);
}

/* Write j's pending progress and log lines and take it off the list. */
static void job_log_flush(coord *c, coord_job *j) {
    if (!j->log_listed)
        return;
    if (j->log_prev)
        j->log_prev->log_next = j->log_next;
    else
        c->log_jobs = j->log_next;
    if (j->log_next)
        j->log_next->log_prev = j->log_prev;
    j->log_listed = 0;
    if (j->progress_dirty)
        coord_store_warn(c, store_job_rendered(c->st, j->spec->id, j->frames_rendered,
                                               j->render_ms), "progress");
    j->progress_dirty = 0;
    const char **lines = j->log_n ? malloc(j->log_n * sizeof *lines) : NULL;
    if (lines) {
        const char *p = j->log_buf;
        for (uint32_t i = 0; i < j->log_n; i++, p += strlen(p) + 1)
            lines[i] = p;
        /* Until the list can have reached its cap, no trim is needed. */
        int trim = j->log_lines + j->log_n > STORE_JOB_LOG_MAX;
        j->log_lines = trim ? STORE_JOB_LOG_MAX : j->log_lines + j->log_n;
        coord_store_warn(c, store_job_log(c->st, j->spec->id, lines, j->log_n, trim), "job log");
        free(lines);
    }
    j->log_len = 0;
    j->log_n = 0;
}

void coord_jobs_flush(coord *c) {
    while (c->log_jobs)
        job_log_flush(c, c->log_jobs);
}

/* Tell the worker holding segment k to stop, and free its slot (the worker
 * grants the credit again once its thread has ended). */
static void stop_running(coord *c, coord_job *j, uint32_t k) {
    coord_seg *s = &j->segs[k];
    if (s->state != SEG_RUNNING)
        return;
    coord_worker *w = rf_map_get(c->workers, s->worker);
    if (!w)
        return;
    coord_worker_drop_slot(w, j->spec->id, k);
    coord_cancel_attempt(c, w, j, k);
}

/* What a finished job's record adds for people and scripts: who rendered
 * which segment ("k:worker,..."; caller frees). NULL when out of memory: a
 * convenience field, the segment records hold it too. */
static char *segment_workers(const coord_job *j) {
    size_t cap = j->plan->n * (RF_ID_MAX + 12) + 1;
    char *sw = malloc(cap);
    if (!sw)
        return NULL;
    size_t len = 0;
    sw[0] = '\0';
    for (size_t k = 0; k < j->plan->n; k++)
        len += (size_t)snprintf(sw + len, cap - len, "%s%zu:%s", len ? "," : "", k,
                                j->segs[k].worker);
    return sw;
}

void coord_job_finish(coord *c, coord_job *j, const char *state, const char *error,
                      uint64_t output_bytes) {
    rf_info(LOG, "job %s job=%s frames=%u segments=%zu%s%s%s", state, j->spec->id, j->spec->frames,
            j->plan->n, error ? " error=\"" : "", error ? error : "", error ? "\"" : "");
    char *sw = strcmp(state, "done") == 0 ? segment_workers(j) : NULL;
    /* Its spool directory and its references to packs go once the record
     * is known written (or kept in the spool): at the end of this turn,
     * after the loop's flush. (Out of memory for their list, the packs
     * stay until the next start's sweep.) */
    uint32_t *packs = malloc(j->plan->n * sizeof *packs);
    size_t npacks = 0;
    for (size_t k = 0; packs && k < j->plan->n; k++)
        if (j->segs[k].loc.pack)
            packs[npacks++] = j->segs[k].loc.pack;
    coord_final f = {.job = j->spec->id,
                     .state = state,
                     .error = error,
                     .output = j->spec->output_path,
                     .output_bytes = output_bytes,
                     .segments_done = j->segments_done,
                     .frames_stitched = j->frames_stitched,
                     .spool = j->spool,
                     .packs = packs,
                     .npacks = npacks,
                     .frames_rendered = j->frames_rendered,
                     .render_ms = j->render_ms,
                     .segment_workers = sw,
                     .duration_s = (double)j->spec->frames * j->spec->fps_den /
                                   (double)j->spec->fps_num,
                     .started_ms = j->started_wall_ms,
                     .finished_ms = rf_wall_ms()};
    /* Progress goes with the final record, before the state, not after it
     * with the turn's other progress writes. */
    j->progress_dirty = 0;
    int rc = coord_final_store(c, &f);
    coord_store_warn(c, rc, "job state");
    coord_finals_add(c, &f, rc == 0);
    free(sw);
    free(packs);
    coord_store_warn(c, store_event(c->st, state, j->spec->id, -1, NULL, error), "event");
    coord_job_log(c, j, "job %s%s%s", state, error ? ": " : "", error ? error : "");
    coord_batch_job_ended(c, j, state);
    if (strcmp(state, "done") == 0)
        c->stats.jobs_done++;
    else if (strcmp(state, "cancelled") == 0)
        c->stats.jobs_cancelled++;
    else
        c->stats.jobs_failed++;
    sched_remove_job(c->sched, j);
    c->delayed -= j->delayed;
    rf_map_del(c->jobs, j->spec->id);
    for (size_t k = 0; k < j->plan->n; k++)
        stop_running(c, j, (uint32_t)k);
    job_log_flush(c, j);
    coord_job_free(j);
}

/* The in-memory side of a job: plan, segments, spool directory, stitcher,
 * scheduler entry. Takes spec; on failure frees everything it made. */
static int job_build(coord *c, rf_spec *spec, const char *batch, coord_job **out, char *err,
                     size_t errlen) {
    *out = NULL;
    coord_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "coordinator: out of memory");
        rf_spec_free(spec);
        return -1;
    }
    j->spec = spec;
    j->frame_bytes = rf_spec_frame_bytes(spec);
    snprintf(j->batch, sizeof j->batch, "%s", batch ? batch : "");
    if (rf_map_get(c->jobs, spec->id)) {
        snprintf(err, errlen, "id: job '%s' already exists", spec->id);
        goto fail;
    }
    if (plan_new(spec->frames, spec->segment_frames, spec->overlap_frames, spec->blend, &j->plan,
                 err, errlen) != 0)
        goto fail;
    j->segs = calloc(j->plan->n, sizeof *j->segs);
    j->worker_failures = rf_map_new();
    if (!j->segs || !j->worker_failures) {
        snprintf(err, errlen, "coordinator: out of memory for %zu segments", j->plan->n);
        goto fail;
    }
    for (size_t k = 0; k < j->plan->n; k++) {
        j->segs[k].fd = -1;
        j->frames_to_render += j->plan->seg[k].frames;
    }
    if (rf_fmt(j->spool, sizeof j->spool, "%s/%s", c->spool, spec->id) != 0) {
        snprintf(err, errlen, "spool: path for job '%s' too long", spec->id);
        goto fail;
    }
    /* The spool directory itself is made when the first segment is
     * assigned: a batch of thousands of jobs is taken in without
     * thousands of mkdirs. */
    if (stitch_job_new(c->pool, spec, j->plan, j->spool, spool_packs_dir(c->packs), &j->stitch,
                       err, errlen) != 0)
        goto fail;
    sched_job_opts so = {.group = j->batch, .priority = spec->priority, .seq = ++c->seq,
                         .nseg = (uint32_t)j->plan->n, .max_running = spec->max_running_segments};
    if (sched_add_job(c->sched, j, &so) != 0 || rf_map_put(c->jobs, spec->id, j) != 0) {
        sched_remove_job(c->sched, j);
        snprintf(err, errlen, "coordinator: out of memory");
        goto fail;
    }
    j->seq = c->seq;
    *out = j;
    return 0;
fail:
    coord_job_free(j);
    return -1;
}

int coord_job_add(coord *c, rf_spec *spec, const char *batch, uint32_t line, char *err,
                  size_t errlen) {
    if (!store_available(c->st)) {
        snprintf(err, errlen, "redis: the farm's Redis is unavailable (%s); the job was not "
                 "accepted, submit it again later", store_last_error(c->st));
        rf_spec_free(spec);
        return -1;
    }
    if (rf_map_get(c->jobs, spec->id)) {
        snprintf(err, errlen, "id: job '%s' already exists", spec->id);
        rf_spec_free(spec);
        return 1;
    }
    plan *p;
    if (plan_new(spec->frames, spec->segment_frames, spec->overlap_frames, spec->blend, &p, err,
                 errlen) != 0) {
        rf_spec_free(spec);
        return -1;
    }
    uint32_t *first = malloc(p->n * sizeof *first);
    uint32_t *frames = malloc(p->n * sizeof *frames);
    int rc = -1;
    if (!first || !frames) {
        snprintf(err, errlen, "coordinator: out of memory");
    } else {
        store_job_meta meta = {.batch = batch, .line = line};
        for (size_t k = 0; k < p->n; k++) {
            first[k] = p->seg[k].first;
            frames[k] = p->seg[k].frames;
            meta.frames_to_render += frames[k];
        }
        /* Redis first: it refuses an id it already holds (a finished job). */
        rc = store_job_create(c->st, spec, &meta, (uint32_t)p->n, first, frames, err, errlen);
        if (rc < 0 && !store_available(c->st))
            snprintf(err, errlen, "redis: the farm's Redis is unavailable (%s); the job was not "
                     "accepted, submit it again later", store_last_error(c->st));
    }
    free(first);
    free(frames);
    plan_free(p);
    if (rc != 0) {
        rf_spec_free(spec);
        return rc;
    }
    return coord_job_admit(c, spec, batch, err, errlen);
}

int coord_job_admit(coord *c, rf_spec *spec, const char *batch, char *err, size_t errlen) {
    char id[RF_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", spec->id);
    coord_job *j;
    c->stats.jobs_submitted++;
    if (job_build(c, spec, batch, &j, err, errlen) != 0) {
        store_job_state(c->st, id, "failed", err);
        c->stats.jobs_failed++;
        return -1;
    }
    for (size_t k = 0; k < j->plan->n; k++)
        sched_push(c->sched, j, (uint32_t)k, j->plan->seg[k].frames, 0);
    if (j->batch[0] && coord_batch_job_added(c, j->batch))
        coord_job_pause(c, j, 1);
    rf_info(LOG, "job queued job=%s engine=%s frames=%u segments=%zu size=%ux%u batch=%s output=%s",
            j->spec->id, j->spec->engine, j->spec->frames, j->plan->n, j->spec->width,
            j->spec->height, j->batch[0] ? j->batch : "-", j->spec->output_path);
    coord_store_warn(c, store_event(c->st, "queued", id, -1, NULL, NULL), "event");
    coord_job_log(c, j, "job queued: %zu segments of up to %u frames", j->plan->n,
                  j->spec->segment_frames);
    return 0;
}

void coord_job_pause(coord *c, coord_job *j, int paused) {
    if (j->paused == !!paused)
        return;
    j->paused = !!paused;
    sched_pause(c->sched, j, j->paused);
    const char *state = paused ? "paused" : j->started ? "running" : "queued";
    rf_info(LOG, "job %s job=%s", paused ? "paused" : "resumed", j->spec->id);
    coord_store_warn(c, store_hset(c->st, "job", j->spec->id, "state", state), "job state");
    coord_job_log(c, j, "job %s", paused ? "paused" : "resumed");
}

/* ---- retries ---- */

void coord_job_fail_segment(coord *c, coord_job *j, uint32_t k, const char *worker,
                            const char *error) {
    coord_seg *s = &j->segs[k];
    if (s->state == SEG_RUNNING)
        sched_stopped(c->sched, j);
    s->failures++;
    s->state = SEG_QUEUED;
    coord_job_log(c, j, "segment %u attempt %u failed on %s: %s", k, s->attempt,
                  worker ? worker : "-", error);
    snprintf(s->last_error, sizeof s->last_error, "%s", error);
    if (worker && !rf_list_has(s->tried, worker)) {
        size_t len = strlen(s->tried);
        snprintf(s->tried + len, sizeof s->tried - len, "%s%s", len ? ", " : "", worker);
    }
    coord_store_warn(c, store_seg_state(c->st, j->spec->id, k, "failed", s->attempt, worker, error),
                     "segment state");
    coord_store_warn(c, store_seg_retry(c->st, j->spec->id, k, s->failures, s->tried), "segment");
    coord_store_warn(c, store_event(c->st, "segment_failed", j->spec->id, (int)k, worker, error),
                     "event");
    rf_warn(LOG, "segment failed job=%s seg=%u attempt=%u worker=%s failures=%u error=\"%s\"",
            j->spec->id, k, s->attempt, worker ? worker : "-", s->failures, error);
    if (worker)
        coord_health_failed(c, j, worker, error);
    if (s->failures >= c->cfg.max_attempts) {
        char reason[1024];
        snprintf(reason, sizeof reason, "segment %u failed after %u attempts (workers: %s): %s", k,
                 s->failures, s->tried[0] ? s->tried : "-", error);
        coord_job_finish(c, j, "failed", reason, 0);
        return;
    }
    uint64_t backoff = c->cfg.retry_backoff_ms;
    for (unsigned i = 1; i < s->failures && backoff < RETRY_BACKOFF_MAX_MS; i++)
        backoff *= 2;
    if (backoff > RETRY_BACKOFF_MAX_MS)
        backoff = RETRY_BACKOFF_MAX_MS;
    s->retry_at_ms = rf_mono_ms() + backoff;
    j->delayed++;
    c->delayed++;
    c->stats.segments_retried++;
    c->stats_dirty = 1;
    rf_info(LOG, "segment retry job=%s seg=%u next_attempt=%u in_ms=%llu", j->spec->id, k,
            s->attempt + 1, (unsigned long long)backoff);
    coord_store_warn(c, store_seg_state(c->st, j->spec->id, k, "queued", s->attempt, NULL, error),
                     "segment state");
}

typedef struct release_ctx {
    coord *c;
    uint64_t now;
} release_ctx;

static int release_job_retries(void *ctx, const char *key, void *value) {
    (void)key;
    release_ctx *r = ctx;
    coord_job *j = value;
    for (size_t k = 0; j->delayed && k < j->plan->n; k++) {
        coord_seg *s = &j->segs[k];
        if (s->state == SEG_QUEUED && s->retry_at_ms && s->retry_at_ms <= r->now) {
            s->retry_at_ms = 0;
            j->delayed--;
            r->c->delayed--;
            sched_push(r->c->sched, j, (uint32_t)k, j->plan->seg[k].frames, 1);
        }
    }
    return 0;
}

void coord_jobs_release_retries(coord *c) {
    if (!c->delayed)
        return;
    release_ctx r = {c, rf_mono_ms()};
    rf_map_each(c->jobs, release_job_retries, &r);
}

/* ---- catching Redis up ---- */

static int resync_job(void *ctx, const char *key, void *value) {
    (void)key;
    coord *c = ctx;
    coord_job *j = value;
    int rc = store_job_progress(c->st, j->spec->id, j->segments_done, j->frames_stitched);
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)j->frames_rendered);
    if (rc == 0) /* counted by increments, which an outage may have lost */
        rc = store_hset(c->st, "job", j->spec->id, "frames_rendered", v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)j->render_ms);
    if (rc == 0)
        rc = store_hset(c->st, "job", j->spec->id, "render_ms", v);
    if (rc == 0)
        /* The state only: store_job_state would restart started_ms. */
        rc = store_hset(c->st, "job", j->spec->id, "state",
                        j->paused ? "paused" : j->started ? "running" : "queued");
    if (rc == 0 && j->started_wall_ms) { /* it may have started during the outage */
        snprintf(v, sizeof v, "%llu", (unsigned long long)j->started_wall_ms);
        rc = store_hset(c->st, "job", j->spec->id, "started_ms", v);
    }
    /* Every time as it was, not the time of the catch-up. */
    for (size_t k = 0; rc == 0 && k < j->plan->n; k++) {
        coord_seg *s = &j->segs[k];
        const char *w = s->worker[0] ? s->worker : NULL;
        if (s->state == SEG_DONE)
            rc = coord_seg_store_done(c, j, (uint32_t)k);
        else if (s->state == SEG_QUEUED)
            rc = store_seg_state(c->st, j->spec->id, (uint32_t)k, "queued", s->attempt, w, NULL);
        else /* running, or committing its frames */
            rc = store_seg_running(c->st, j->spec->id, (uint32_t)k, s->attempt, w,
                                   s->started_wall_ms);
    }
    coord_store_warn(c, rc, "catch-up");
    return rc != 0; /* Redis went away again: stop, the next recovery redoes it */
}

void coord_jobs_resync(coord *c) {
    rf_map_each(c->jobs, resync_job, c);
    coord_finals_write_kept(c);
}

/* ---- recovery after a restart ---- */

typedef struct rec_job {
    char id[RF_ID_MAX + 1];
    uint64_t created_ms;
    char state[16];
    char batch[RF_ID_MAX + 1];
    uint64_t render_ms;
    uint64_t started_ms, finished_ms; /* 0: not in the record */
    char *spec_json;
} rec_job;

typedef struct rec_list {
    rec_job *v;
    size_t n, cap;
    int oom;
} rec_list;

static void collect_id(void *ctx, const char *id) {
    rec_list *l = ctx;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        rec_job *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) {
            l->oom = 1;
            return;
        }
        l->v = nv;
        l->cap = ncap;
    }
    rec_job *r = &l->v[l->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
}

static void job_field(void *ctx, const char *name, const char *value) {
    rec_job *r = ctx;
    if (strcmp(name, "created_ms") == 0)
        r->created_ms = strtoull(value, NULL, 10);
    else if (strcmp(name, "state") == 0)
        snprintf(r->state, sizeof r->state, "%s", value);
    else if (strcmp(name, "spec") == 0 && !r->spec_json)
        r->spec_json = strdup(value);
    else if (strcmp(name, "batch") == 0)
        snprintf(r->batch, sizeof r->batch, "%s", value);
    else if (strcmp(name, "render_ms") == 0)
        r->render_ms = strtoull(value, NULL, 10);
    else if (strcmp(name, "started_ms") == 0)
        r->started_ms = strtoull(value, NULL, 10);
    else if (strcmp(name, "finished_ms") == 0)
        r->finished_ms = strtoull(value, NULL, 10);
}

static int is_terminal(const char *state) {
    return strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "cancelled") == 0;
}

static int by_created(const void *a, const void *b) {
    const rec_job *x = a, *y = b;
    return x->created_ms < y->created_ms ? -1 : x->created_ms > y->created_ms;
}

typedef struct rec_seg {
    char state[16];
    uint32_t attempt, failures;
    char tried[256];
    char worker[RF_ID_MAX + 1]; /* who rendered it, when done */
    uint64_t render_ms, started_ms, finished_ms;
    spool_loc loc; /* pack 0: its own file (or a "pack" field that is no place) */
} rec_seg;

static void seg_field(void *ctx, const char *name, const char *value) {
    rec_seg *r = ctx;
    if (strcmp(name, "state") == 0)
        snprintf(r->state, sizeof r->state, "%s", value);
    else if (strcmp(name, "attempt") == 0)
        r->attempt = (uint32_t)strtoul(value, NULL, 10);
    else if (strcmp(name, "failures") == 0)
        r->failures = (uint32_t)strtoul(value, NULL, 10);
    else if (strcmp(name, "tried") == 0)
        snprintf(r->tried, sizeof r->tried, "%s", value);
    else if (strcmp(name, "worker") == 0)
        snprintf(r->worker, sizeof r->worker, "%s", value);
    else if (strcmp(name, "render_ms") == 0)
        r->render_ms = strtoull(value, NULL, 10);
    else if (strcmp(name, "started_ms") == 0)
        r->started_ms = strtoull(value, NULL, 10);
    else if (strcmp(name, "finished_ms") == 0)
        r->finished_ms = strtoull(value, NULL, 10);
    else if (strcmp(name, "pack") == 0 && spool_loc_parse(value, &r->loc) != 0)
        r->loc.pack = 0;
}

/* Frames of attempts that were in flight when the last coordinator died. */
static void remove_part_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".part") == 0) {
            char path[RF_PATH_MAX + 300];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* One job back from Redis. Returns 0; -1 when it cannot be resumed (the
 * caller marks its record failed with the reason); -2 when Redis failed
 * (the caller gives up the start-up: nothing is lost by trying again). */
static int recover_job(coord *c, const rec_job *r, char *err, size_t errlen) {
    rf_spec_opts opts = {.engines = engine_names(), .check_output_dir = 0, .base_dir = NULL,
                         .check_params = engine_check_params};
    rf_spec *spec;
    char errs[2048] = "";
    if (!r->spec_json ||
        rf_spec_parse(r->spec_json, strlen(r->spec_json), &opts, &spec, errs, sizeof errs) != 0) {
        snprintf(err, errlen, "recovery: the stored spec cannot be used: %s",
                 r->spec_json ? errs : "no spec in the job record");
        return -1;
    }
    coord_job *j;
    if (job_build(c, spec, r->batch, &j, err, errlen) != 0)
        return -1;
    j->render_ms = r->render_ms;
    j->log_lines = STORE_JOB_LOG_MAX; /* its log's length is not known: trim */
    remove_part_files(j->spool);
    uint32_t requeued = 0;
    for (size_t k = 0; k < j->plan->n; k++) {
        coord_seg *s = &j->segs[k];
        rec_seg rs;
        memset(&rs, 0, sizeof rs);
        if (store_seg_read(c->st, j->spec->id, (uint32_t)k, seg_field, &rs, err, errlen) < 0)
            return -2; /* Redis broke meanwhile: give up the start, touch nothing */
        s->attempt = rs.attempt;
        s->failures = rs.failures;
        snprintf(s->tried, sizeof s->tried, "%s", rs.tried);
        char path[RF_PATH_MAX + 32];
        uint64_t len = (uint64_t)j->plan->seg[k].frames * j->frame_bytes;
        int packed = rs.loc.pack != 0;
        spool_loc_path(j->spool, spool_packs_dir(c->packs), (uint32_t)k, rs.loc, path,
                       sizeof path);
        struct stat st;
        /* A pack holds others after it: it is whole up to this one's end.
         * (Redis calls a segment done only after its bytes were synced.) */
        int whole = stat(path, &st) == 0 &&
                    (packed ? (uint64_t)st.st_size >= (uint64_t)rs.loc.off + len
                            : (uint64_t)st.st_size == len);
        if (strcmp(rs.state, "done") == 0 && whole) {
            if (packed && spool_packs_ref(c->packs, rs.loc.pack) != 0) {
                snprintf(err, errlen, "out of memory");
                return -2;
            }
            s->loc = rs.loc;
            /* Kept for the job's results and for a catch-up's rewrite of
             * the record after an outage. */
            snprintf(s->worker, sizeof s->worker, "%s", rs.worker);
            s->render_ms = rs.render_ms;
            s->started_wall_ms = rs.started_ms;
            s->finished_ms = rs.finished_ms;
            s->state = SEG_DONE;
            j->segments_done++;
            j->frames_rendered += j->plan->seg[k].frames;
            continue;
        }
        if (!packed) /* a file Redis never called done is not trusted; a pack's */
            unlink(path); /* bytes are someone else's */
        s->state = SEG_QUEUED;
        sched_push(c->sched, j, (uint32_t)k, j->plan->seg[k].frames, 0);
        requeued++;
        coord_store_warn(c, store_seg_state(c->st, j->spec->id, (uint32_t)k, "queued", s->attempt,
                                            NULL, NULL), "segment state");
    }
    /* Running: it was handed out before (its record has started_ms). */
    j->started = j->segments_done > 0 || strcmp(r->state, "running") == 0;
    j->started_wall_ms = r->started_ms; /* kept when its next segment starts */
    if ((j->batch[0] && coord_batch_job_added(c, j->batch)) || strcmp(r->state, "paused") == 0)
        coord_job_pause(c, j, 1);
    for (size_t k = 0; k < j->plan->n; k++)
        if (j->segs[k].state == SEG_DONE)
            stitch_job_ready(j->stitch, (uint32_t)k, j->segs[k].loc);
    c->stats.jobs_recovered++;
    c->stats_dirty = 1;
    rf_info(LOG, "job recovered job=%s segments=%zu segments_done=%u requeued=%u", j->spec->id,
            j->plan->n, j->segments_done, requeued);
    coord_store_warn(c, store_event(c->st, "recovered", j->spec->id, -1, NULL, NULL), "event");
    return 0;
}

/* Remove the spool directories of jobs that are over: a coordinator that
 * died between a job's final record and its directory's removal (queued
 * behind the commit thread's work) left them; nothing else would. */
static void sweep_spool(coord *c) {
    DIR *d = opendir(c->spool);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* ".final", ".packs", ".spool-key", "." and ".." are no job's */
        if (!rf_id_valid(e->d_name) || rf_map_get(c->jobs, e->d_name))
            continue;
        char path[RF_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", c->spool, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        rf_info(LOG, "spool of a job that is over removed job=%s dir=%s", e->d_name, path);
        rf_rmtree(path);
    }
    closedir(d);
}

int coord_jobs_recover(coord *c, char *err, size_t errlen) {
    rec_list l = {0};
    if (store_active_jobs(c->st, collect_id, &l, err, errlen) < 0) {
        free(l.v);
        return -1;
    }
    int rc = 0;
    if (l.oom) {
        snprintf(err, errlen, "recovery: out of memory listing unfinished jobs");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        if (store_job_read(c->st, l.v[i].id, job_field, &l.v[i], err, errlen) < 0)
            rc = -1;
    if (rc == 0) {
        if (l.n)
            qsort(l.v, l.n, sizeof *l.v, by_created);
        for (size_t i = 0; rc == 0 && i < l.n; i++) {
            rec_job *r = &l.v[i];
            char why[2048], fin[RF_PATH_MAX + 96];
            coord_final_path(c, r->id, fin, sizeof fin);
            if (access(fin, F_OK) == 0)
                continue; /* it ended during an outage: its record is written below */
            if (is_terminal(r->state)) {
                /* Ended, but the coordinator died before it left jobs:active:
                 * the state again, with the time it ended. */
                coord_store_warn(
                    c, store_job_state_at(c->st, r->id, r->state, NULL, r->finished_ms, 0),
                    "job state");
                continue;
            }
            int jr = recover_job(c, r, why, sizeof why);
            rf_log_flush(); /* a long recovery shows its progress */
            if (jr == -2) {
                snprintf(err, errlen, "recovery: reading job '%s' from Redis failed: %s", r->id, why);
                rc = -1;
            } else if (jr != 0) {
                rf_error(LOG, "job cannot be resumed job=%s error=\"%s\"", r->id, why);
                coord_store_warn(c, store_job_state(c->st, r->id, "failed", why), "job state");
            }
        }
        if (rc == 0) {
            coord_finals_write_kept(c);
            sweep_spool(c);
            unsigned swept = spool_packs_sweep(c->packs);
            if (swept)
                rf_info(LOG, "spool packs no unfinished job needs removed packs=%u", swept);
        }
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i].spec_json);
    free(l.v);
    return rc;
}
