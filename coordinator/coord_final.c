/* coord_final — a finished job's final record on its way to Redis.
 *
 * When a job ends, its final record (state, sums, output) is queued with
 * the loop's other writes and sent by the flush at the end of the turn,
 * not flushed on its own: a round trip per finished job held the loop up
 * for as long as Redis took to answer. The job's spool directory is
 * removed only once its record is known written, so a crash never leaves
 * a job Redis thinks unfinished without the spool it would continue from.
 *
 * A record Redis did not take is kept as a small JSON file in the spool
 * (.final/<id>), which outlives the process: neither a Redis outage nor a
 * crash during one turns an ended job back into a running one. Kept
 * records are written when Redis is back, and at start-up.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord_internal.h"
#include "rf_util.h"

#define LOG "coordinator"

/* <spool>/.final/<id>: job ids never start with '.', so this directory
 * cannot be a job's spool directory. */
#define FINALS_DIR ".final"

/* A record queued this turn: coord_final's strings, owned. */
struct coord_final_q {
    char *job, *state, *error, *output, *spool, *segment_workers;
    uint32_t *packs;
    size_t npacks;
    uint64_t output_bytes;
    uint32_t segments_done, frames_stitched;
    uint64_t frames_rendered, render_ms;
    double duration_s;
    uint64_t started_ms, finished_ms;
    uint64_t failures; /* store_failures when it was queued */
};

void coord_final_path(const coord *c, const char *job, char *buf, size_t len) {
    rf_fmt(buf, len, "%s/" FINALS_DIR "/%s", c->spool, job);
}

int coord_final_store(coord *c, const coord_final *f) {
    int rc = store_job_progress(c->st, f->job, f->segments_done, f->frames_stitched);
    if (rc == 0)
        rc = store_job_rendered(c->st, f->job, f->frames_rendered, f->render_ms);
    if (rc == 0 && f->output_bytes)
        rc = store_job_output(c->st, f->job, f->output, f->output_bytes);
    if (rc == 0 && f->segment_workers) {
        char dur[32];
        snprintf(dur, sizeof dur, "%.3f", f->duration_s);
        rc = store_hset(c->st, "job", f->job, "segment_workers", f->segment_workers);
        if (rc == 0)
            rc = store_hset(c->st, "job", f->job, "duration_s", dur);
    }
    /* When it ended, not when this is written: a record kept through an
     * outage is written at the catch-up, or by the next coordinator. */
    if (rc == 0)
        rc = store_job_state_at(c->st, f->job, f->state, f->error && f->error[0] ? f->error : NULL,
                                f->finished_ms, f->started_ms);
    return rc;
}

/* 0, or -1 when the record could not be kept either. */
static int keep_final(coord *c, const coord_final *f) {
    char path[RF_PATH_MAX + 96], tmp[RF_PATH_MAX + 128];
    coord_final_path(c, f->job, path, sizeof path);
    char dir[RF_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/" FINALS_DIR, c->spool);
    /* A leading '.' is never an id: a temporary left by a crash is skipped. */
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, f->job);
    rf_mkdirs(dir, 0755);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s?, s:f, s:I, s:I}", "state",
                          f->state, "error", f->error ? f->error : "", "output", f->output,
                          "output_bytes", (json_int_t)f->output_bytes, "segments_done",
                          (json_int_t)f->segments_done, "frames_stitched",
                          (json_int_t)f->frames_stitched, "frames_rendered",
                          (json_int_t)f->frames_rendered, "render_ms", (json_int_t)f->render_ms,
                          "segment_workers", f->segment_workers, "duration_s", f->duration_s,
                          "started_ms", (json_int_t)f->started_ms, "finished_ms",
                          (json_int_t)f->finished_ms);
    int rc = 0;
    if (!o || json_dump_file(o, tmp, JSON_COMPACT) != 0 || rename(tmp, path) != 0) {
        rf_error(LOG, "cannot keep the final state for Redis job=%s state=%s path=%s; its spool "
                      "stays, and a restarted coordinator takes the job up again",
                 f->job, f->state, path);
        unlink(tmp);
        rc = -1;
    } else {
        rf_warn(LOG, "final state kept until Redis is back job=%s state=%s", f->job, f->state);
    }
    json_decref(o);
    return rc;
}

/* The commit thread removes the files, after any commit of the job still
 * queued there: the job's directory, and the packs that held its last
 * segments still needed. */
static void remove_spool(coord *c, const char *spool, const uint32_t *packs, size_t npacks) {
    if (!c->commits || commit_remove(c->commits, spool) != 0)
        rf_rmtree(spool);
    for (size_t i = 0; i < npacks; i++) {
        char path[RF_PATH_MAX + 64];
        if (spool_packs_unref(c->packs, packs[i]) != 1 ||
            spool_pack_path(spool_packs_dir(c->packs), packs[i], path, sizeof path) != 0)
            continue;
        if (!c->commits || commit_remove(c->commits, path) != 0)
            unlink(path);
    }
}

static void q_free(struct coord_final_q *q) {
    free(q->job);
    free(q->state);
    free(q->error);
    free(q->output);
    free(q->spool);
    free(q->segment_workers);
    free(q->packs);
}

/* Hold f until the turn's flush. 0, or -1 when out of memory. */
static int hold(coord *c, const coord_final *f) {
    if (c->nfinals == c->capfinals) {
        size_t cap = c->capfinals ? 2 * c->capfinals : 64;
        struct coord_final_q *v = realloc(c->finals, cap * sizeof *v);
        if (!v)
            return -1;
        c->finals = v;
        c->capfinals = cap;
    }
    struct coord_final_q *q = &c->finals[c->nfinals];
    *q = (struct coord_final_q){.job = strdup(f->job),
                                .state = strdup(f->state),
                                .error = f->error ? strdup(f->error) : NULL,
                                .output = strdup(f->output),
                                .spool = strdup(f->spool),
                                .output_bytes = f->output_bytes,
                                .segments_done = f->segments_done,
                                .frames_stitched = f->frames_stitched,
                                .frames_rendered = f->frames_rendered,
                                .render_ms = f->render_ms,
                                .segment_workers =
                                    f->segment_workers ? strdup(f->segment_workers) : NULL,
                                .duration_s = f->duration_s,
                                .started_ms = f->started_ms,
                                .finished_ms = f->finished_ms,
                                .failures = store_failures(c->st),
                                .npacks = f->npacks};
    if (f->npacks && (q->packs = malloc(f->npacks * sizeof *q->packs)))
        memcpy(q->packs, f->packs, f->npacks * sizeof *q->packs);
    if (!q->job || !q->state || (f->error && !q->error) || !q->output || !q->spool ||
        (f->npacks && !q->packs) || (f->segment_workers && !q->segment_workers)) {
        q_free(q);
        return -1;
    }
    c->nfinals++;
    return 0;
}

void coord_finals_add(coord *c, const coord_final *f, int queued) {
    if (queued && hold(c, f) == 0)
        return;
    /* Not queued, or no memory to wait for the turn's flush: settle now. */
    if (!queued || store_flush(c->st) != 0) {
        coord_store_warn(c, -1, "job state");
        if (keep_final(c, f) != 0)
            return; /* the record is nowhere: keep what the job can start again from */
    }
    remove_spool(c, f->spool, f->packs, f->npacks);
}

void coord_finals_settle(coord *c, int flushed) {
    uint64_t failures = store_failures(c->st);
    for (size_t i = 0; i < c->nfinals; i++) {
        struct coord_final_q *q = &c->finals[i];
        /* A failure since it was queued may have been its own (a flush in
         * between read the replies): keeping a record that was written
         * costs only a second, identical write later. */
        int kept = 1;
        if (flushed != 0 || failures != q->failures) {
            coord_final f = {.job = q->job,
                             .state = q->state,
                             .error = q->error,
                             .output = q->output,
                             .output_bytes = q->output_bytes,
                             .segments_done = q->segments_done,
                             .frames_stitched = q->frames_stitched,
                             .frames_rendered = q->frames_rendered,
                             .render_ms = q->render_ms,
                             .segment_workers = q->segment_workers,
                             .duration_s = q->duration_s,
                             .started_ms = q->started_ms,
                             .finished_ms = q->finished_ms,
                             .spool = q->spool};
            kept = keep_final(c, &f) == 0;
        }
        if (kept)
            remove_spool(c, q->spool, q->packs, q->npacks);
        q_free(q);
    }
    c->nfinals = 0;
}

void coord_finals_free(coord *c) {
    for (size_t i = 0; i < c->nfinals; i++)
        q_free(&c->finals[i]);
    free(c->finals);
    c->finals = NULL;
    c->nfinals = c->capfinals = 0;
}

/* Write one kept final record to Redis; 0 when written (the file is gone). */
static int write_final(coord *c, const char *job, const char *path) {
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    const char *state = json_string_value(json_object_get(o, "state"));
    if (!o || !state) {
        rf_error(LOG, "unreadable final state file path=%s error=\"%s\"", path, jerr.text);
        json_decref(o);
        return -1;
    }
    const char *output = json_string_value(json_object_get(o, "output"));
    coord_final f = {
        .job = job,
        .state = state,
        .error = json_string_value(json_object_get(o, "error")),
        .output = output ? output : "",
        .output_bytes = (uint64_t)json_integer_value(json_object_get(o, "output_bytes")),
        .segments_done = (uint32_t)json_integer_value(json_object_get(o, "segments_done")),
        .frames_stitched = (uint32_t)json_integer_value(json_object_get(o, "frames_stitched")),
        .frames_rendered = (uint64_t)json_integer_value(json_object_get(o, "frames_rendered")),
        .render_ms = (uint64_t)json_integer_value(json_object_get(o, "render_ms")),
        .segment_workers = json_string_value(json_object_get(o, "segment_workers")),
        .duration_s = json_number_value(json_object_get(o, "duration_s")),
        /* 0 (a record kept by an older coordinator): the time it is written */
        .started_ms = (uint64_t)json_integer_value(json_object_get(o, "started_ms")),
        .finished_ms = (uint64_t)json_integer_value(json_object_get(o, "finished_ms")),
    };
    int rc = coord_final_store(c, &f);
    if (rc == 0)
        rc = store_flush(c->st);
    if (rc == 0) {
        rf_info(LOG, "final state written job=%s state=%s", job, state);
        unlink(path);
    }
    json_decref(o);
    return rc;
}

void coord_finals_write_kept(coord *c) {
    char dir[RF_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/" FINALS_DIR, c->spool);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!rf_id_valid(e->d_name))
            continue; /* ".", "..", and ".<id>.tmp" temporaries */
        char path[RF_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (write_final(c, e->d_name, path) != 0 && !store_available(c->st))
            break;
    }
    closedir(d);
}
