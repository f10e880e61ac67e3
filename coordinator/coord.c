/* coord — the coordinator's event loop: workers, segments, stitching.
 *
 * Workers pull: each grants credit (Credit messages) and the loop never
 * assigns a worker more segments than it has granted. A segment assignment
 * carries an attempt number; frames and results that name another attempt
 * (a worker presumed lost that comes back) are dropped, never stitched.
 * Frames arrive as [routing id][WorkerMsg{frame}][pixels] and are written
 * straight from ZeroMQ's buffer into the segment's spool file at the
 * frame's offset; when the segment is done its file is renamed into place
 * and the stitcher is told.
 *
 * Redis is written at every state change (assignment, completion, failure,
 * stitch progress) so that dashboards and `rfarm status` see the truth; a
 * failed Redis write is logged and the farm carries on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "coord_internal.h"
#include "engine.h"
#include "rf_util.h"
#include "rf_wire.h"
#include "rfarm.pb-c.h"

#define LOG "coordinator"
#define EVENTS_ENDPOINT_FMT "inproc://stitch-events-%p"

/* ---- Redis writes: log and continue on failure ---- */

static void store_warn(coord *c, int rc, const char *what) {
    if (rc != 0)
        rf_warn(LOG, "redis write failed what=%s error=\"%s\"", what, store_last_error(c->st));
}

/* ---- jobs ---- */

static void seg_spool_part(const coord_job *j, uint32_t k, uint32_t attempt, char *buf, size_t len) {
    rf_fmt(buf, len, "%s/seg-%06u.a%u.part", j->spool, k, attempt);
}

static void seg_close(coord_job *j, uint32_t k, int remove_part) {
    coord_seg *s = &j->segs[k];
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
        if (remove_part) {
            char path[RF_PATH_MAX + 64];
            seg_spool_part(j, k, s->attempt, path, sizeof path);
            unlink(path);
        }
    }
}

static void job_free(coord_job *j) {
    if (!j)
        return;
    stitch_job_free(j->stitch);
    if (j->segs)
        for (size_t k = 0; k < j->plan->n; k++)
            seg_close(j, (uint32_t)k, 1);
    free(j->segs);
    plan_free(j->plan);
    rf_spec_free(j->spec);
    free(j);
}

static void worker_drop_slot(coord_worker *w, const char *job, uint32_t seg) {
    for (unsigned i = 0; i < w->nslots; i++) {
        if (w->slots[i].seg == seg && strcmp(w->slots[i].job, job) == 0) {
            w->slots[i] = w->slots[--w->nslots];
            return;
        }
    }
}

/* A job leaves memory when it ends; Redis keeps its record. */
static void job_finish(coord *c, coord_job *j, const char *state, const char *error) {
    rf_info(LOG, "job %s job=%s frames=%u segments=%zu%s%s%s", state, j->spec->id, j->spec->frames,
            j->plan->n, error ? " error=\"" : "", error ? error : "", error ? "\"" : "");
    store_warn(c, store_job_state(c->st, j->spec->id, state, error), "job state");
    store_warn(c, store_event(c->st, state, j->spec->id, -1, NULL, error), "event");
    sched_remove_job(c->sched, j);
    rf_map_del(c->jobs, j->spec->id);
    /* Workers still rendering its segments are not told; what they send
     * later names a job that is gone and is dropped. Their slots are freed
     * so the credit they hold is not lost. */
    for (size_t k = 0; k < j->plan->n; k++) {
        coord_seg *s = &j->segs[k];
        if (s->state == SEG_RUNNING) {
            coord_worker *w = rf_map_get(c->workers, s->worker);
            if (w)
                worker_drop_slot(w, j->spec->id, (uint32_t)k);
        }
    }
    char spool[RF_PATH_MAX];
    snprintf(spool, sizeof spool, "%s", j->spool);
    job_free(j);
    rf_rmtree(spool);
}

int coord_job_add(coord *c, rf_spec *spec, char *err, size_t errlen) {
    coord_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "coordinator: out of memory");
        rf_spec_free(spec);
        return -1;
    }
    j->spec = spec;
    j->frame_bytes = rf_spec_frame_bytes(spec);
    if (rf_map_get(c->jobs, spec->id)) {
        snprintf(err, errlen, "id: job '%s' already exists", spec->id);
        goto fail;
    }
    if (plan_new(spec->frames, spec->segment_frames, spec->overlap_frames, spec->blend, &j->plan,
                 err, errlen) != 0)
        goto fail;
    j->segs = calloc(j->plan->n, sizeof *j->segs);
    if (!j->segs) {
        snprintf(err, errlen, "coordinator: out of memory for %zu segments", j->plan->n);
        goto fail;
    }
    for (size_t k = 0; k < j->plan->n; k++)
        j->segs[k].fd = -1;
    if (rf_fmt(j->spool, sizeof j->spool, "%s/%s", c->spool, spec->id) != 0) {
        snprintf(err, errlen, "spool: path for job '%s' too long", spec->id);
        goto fail;
    }
    if (rf_mkdirs(j->spool, 0755) != 0) {
        snprintf(err, errlen, "spool: cannot create %s: %s", j->spool, strerror(errno));
        goto fail;
    }
    uint32_t *first = malloc(j->plan->n * sizeof *first);
    uint32_t *frames = malloc(j->plan->n * sizeof *frames);
    if (!first || !frames) {
        free(first);
        free(frames);
        snprintf(err, errlen, "coordinator: out of memory");
        goto fail_spool;
    }
    for (size_t k = 0; k < j->plan->n; k++) {
        first[k] = j->plan->seg[k].first;
        frames[k] = j->plan->seg[k].frames;
    }
    int rc = store_job_create(c->st, spec, (uint32_t)j->plan->n, first, frames, err, errlen);
    free(first);
    free(frames);
    if (rc != 0)
        goto fail_spool;
    if (stitch_job_new(c->pool, spec, j->plan, j->spool, &j->stitch, err, errlen) != 0 ||
        sched_add_job(c->sched, j, spec->priority, ++c->seq, (uint32_t)j->plan->n) != 0 ||
        rf_map_put(c->jobs, spec->id, j) != 0) {
        if (!err[0])
            snprintf(err, errlen, "coordinator: out of memory");
        sched_remove_job(c->sched, j);
        store_job_state(c->st, spec->id, "failed", err);
        goto fail_spool;
    }
    j->seq = c->seq;
    for (size_t k = 0; k < j->plan->n; k++)
        sched_push(c->sched, j, (uint32_t)k, 0);
    rf_info(LOG, "job queued job=%s engine=%s frames=%u segments=%zu size=%ux%u output=%s",
            spec->id, spec->engine, spec->frames, j->plan->n, spec->width, spec->height,
            spec->output_path);
    store_warn(c, store_event(c->st, "queued", spec->id, -1, NULL, NULL), "event");
    return 0;
fail_spool:
    rf_rmtree(j->spool);
fail:
    job_free(j);
    return -1;
}

static void job_fail_segment(coord *c, coord_job *j, uint32_t k, const char *worker,
                             const char *error) {
    coord_seg *s = &j->segs[k];
    s->failures++;
    snprintf(s->last_error, sizeof s->last_error, "%s", error);
    if (worker && !strstr(s->tried, worker)) {
        size_t len = strlen(s->tried);
        snprintf(s->tried + len, sizeof s->tried - len, "%s%s", len ? ", " : "", worker);
    }
    store_warn(c, store_seg_state(c->st, j->spec->id, k, "failed", s->attempt, worker, error, 0),
               "segment state");
    store_warn(c, store_event(c->st, "segment_failed", j->spec->id, (int)k, worker, error), "event");
    rf_warn(LOG, "segment failed job=%s seg=%u attempt=%u worker=%s error=\"%s\"", j->spec->id, k,
            s->attempt, worker ? worker : "-", error);
    if (s->failures >= c->cfg.max_attempts) {
        char reason[1024];
        snprintf(reason, sizeof reason, "segment %u failed after %u attempts (workers: %s): %s", k,
                 s->failures, s->tried[0] ? s->tried : "-", error);
        job_finish(c, j, "failed", reason);
        return;
    }
    s->state = SEG_QUEUED;
    sched_push(c->sched, j, k, 1);
}

/* ---- workers ---- */

static int worker_can_run(void *ctx, void *job) {
    const coord_worker *w = ctx;
    const coord_job *j = job;
    const char *e = j->spec->engine;
    size_t el = strlen(e);
    for (const char *p = w->engines; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == el && strncmp(p, e, el) == 0)
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

static int send_to_worker(coord *c, const char *id, const Rfarm__CoordMsg *m) {
    if (rf_wire_send_bytes(c->wsock, id, strlen(id), 1) != 0 ||
        rf_wire_send_pb(c->wsock, &m->base, 0) != 0) {
        rf_warn(LOG, "send to worker failed worker=%s error=\"%s\"", id, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static int assign(coord *c, coord_worker *w, coord_job *j, uint32_t k) {
    coord_seg *s = &j->segs[k];
    const plan_segment *ps = &j->plan->seg[k];
    s->attempt++;
    char path[RF_PATH_MAX + 64];
    seg_spool_part(j, k, s->attempt, path, sizeof path);
    s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        char err[RF_PATH_MAX + 128];
        snprintf(err, sizeof err, "spool: cannot create %s: %s", path, strerror(errno));
        job_finish(c, j, "failed", err);
        return -1;
    }
    s->state = SEG_RUNNING;
    s->frames_recv = 0;
    s->started_ms = rf_mono_ms();
    snprintf(s->worker, sizeof s->worker, "%s", w->id);

    Rfarm__Assign a = RFARM__ASSIGN__INIT;
    a.job_id = j->spec->id;
    a.segment = k;
    a.attempt = s->attempt;
    a.first_frame = ps->first;
    a.frames = ps->frames;
    a.width = j->spec->width;
    a.height = j->spec->height;
    a.fps_num = j->spec->fps_num;
    a.fps_den = j->spec->fps_den;
    a.seed = j->spec->seed;
    a.prompt = j->spec->prompt;
    a.engine = j->spec->engine;
    a.params_json = j->spec->params_json;
    a.job_frames = j->spec->frames;
    Rfarm__CoordMsg m = RFARM__COORD_MSG__INIT;
    m.body_case = RFARM__COORD_MSG__BODY_ASSIGN;
    m.assign = &a;
    send_to_worker(c, w->id, &m);

    w->credits--;
    coord_slot *slot = &w->slots[w->nslots++];
    snprintf(slot->job, sizeof slot->job, "%s", j->spec->id);
    slot->seg = k;
    slot->attempt = s->attempt;

    rf_info(LOG, "segment assigned job=%s seg=%u attempt=%u worker=%s first=%u frames=%u",
            j->spec->id, k, s->attempt, w->id, ps->first, ps->frames);
    if (!j->started) {
        j->started = 1;
        store_warn(c, store_job_state(c->st, j->spec->id, "running", NULL), "job state");
    }
    store_warn(c, store_seg_state(c->st, j->spec->id, k, "running", s->attempt, w->id, NULL, 0),
               "segment state");
    return 0;
}

typedef struct dispatch_ctx {
    coord *c;
} dispatch_ctx;

static int dispatch_worker(void *ctx, const char *key, void *value) {
    (void)key;
    coord *c = ((dispatch_ctx *)ctx)->c;
    coord_worker *w = value;
    while (w->credits > 0 && w->nslots < COORD_MAX_CAPACITY) {
        void *job;
        uint32_t k;
        if (!sched_pop(c->sched, worker_can_run, w, &job, &k))
            break;
        assign(c, w, job, k);
    }
    return sched_pending(c->sched) == 0;
}

/* Hand pending segments to workers with credit. */
static void dispatch(coord *c) {
    if (sched_pending(c->sched) == 0)
        return;
    dispatch_ctx d = {c};
    rf_map_each(c->workers, dispatch_worker, &d);
}

/* A worker's segments go back to the queue; their next assignment gets a
 * new attempt number, so anything the old one still sends is dropped. */
static void worker_release(coord *c, coord_worker *w, const char *why) {
    for (unsigned i = 0; i < w->nslots; i++) {
        coord_job *j = rf_map_get(c->jobs, w->slots[i].job);
        if (!j)
            continue;
        uint32_t k = w->slots[i].seg;
        coord_seg *s = &j->segs[k];
        if (s->state != SEG_RUNNING || s->attempt != w->slots[i].attempt)
            continue;
        seg_close(j, k, 1);
        s->state = SEG_QUEUED;
        sched_push(c->sched, j, k, 1);
        rf_warn(LOG, "segment requeued job=%s seg=%u attempt=%u worker=%s reason=\"%s\"",
                j->spec->id, k, s->attempt, w->id, why);
        store_warn(c, store_seg_state(c->st, j->spec->id, k, "queued", s->attempt, NULL, why, 0),
                   "segment state");
    }
    w->nslots = 0;
    w->credits = 0;
}

static void worker_gone(coord *c, coord_worker *w, const char *why) {
    rf_warn(LOG, "worker gone worker=%s reason=\"%s\"", w->id, why);
    worker_release(c, w, why);
    store_warn(c, store_worker_seen(c->st, w->id, "gone", w->segments_done), "worker");
    store_warn(c, store_event(c->st, "worker_gone", NULL, -1, w->id, why), "event");
    rf_map_del(c->workers, w->id);
    free(w);
}

static void on_hello(coord *c, const char *id, const Rfarm__Hello *h) {
    coord_worker *w = rf_map_get(c->workers, id);
    if (w) {
        /* The same id says hello again: the process restarted, so whatever
         * it held is lost. */
        worker_release(c, w, "worker restarted");
    } else {
        w = calloc(1, sizeof *w);
        if (!w || rf_map_put(c->workers, id, w) != 0) {
            free(w);
            rf_error(LOG, "out of memory registering worker=%s", id);
            return;
        }
        snprintf(w->id, sizeof w->id, "%s", id);
    }
    w->engines[0] = '\0';
    for (size_t i = 0; i < h->n_engines; i++) {
        size_t len = strlen(w->engines);
        snprintf(w->engines + len, sizeof w->engines - len, "%s%s", i ? "," : "", h->engines[i]);
    }
    w->capacity = h->capacity;
    w->credits = 0;
    w->last_seen_ms = rf_mono_ms();
    rf_info(LOG, "worker joined worker=%s engines=%s gpus=%u capacity=%u compute=%s host=%s pid=%u",
            id, w->engines, h->gpus, h->capacity, h->compute, h->hostname, h->pid);
    store_worker w_rec = {.id = id, .engines = w->engines, .compute = h->compute,
                          .hostname = h->hostname, .state = "idle", .gpus = h->gpus,
                          .capacity = h->capacity, .pid = h->pid};
    store_warn(c, store_worker_hello(c->st, &w_rec), "worker");
    store_warn(c, store_event(c->st, "worker_joined", NULL, -1, id, NULL), "event");
    Rfarm__Welcome wel = RFARM__WELCOME__INIT;
    wel.heartbeat_ms = c->cfg.heartbeat_ms;
    Rfarm__CoordMsg m = RFARM__COORD_MSG__INIT;
    m.body_case = RFARM__COORD_MSG__BODY_WELCOME;
    m.welcome = &wel;
    send_to_worker(c, id, &m);
}

static void ask_hello_again(coord *c, const char *id) {
    Rfarm__Welcome wel = RFARM__WELCOME__INIT;
    wel.heartbeat_ms = c->cfg.heartbeat_ms;
    wel.hello_again = 1;
    Rfarm__CoordMsg m = RFARM__COORD_MSG__INIT;
    m.body_case = RFARM__COORD_MSG__BODY_WELCOME;
    m.welcome = &wel;
    send_to_worker(c, id, &m);
}

/* The segment a message talks about, when it is the current attempt held by
 * this worker; NULL (and the message is stale) otherwise. */
static coord_job *current(coord *c, const coord_worker *w, const char *job, uint32_t k,
                          uint32_t attempt) {
    coord_job *j = rf_map_get(c->jobs, job);
    if (!j || k >= j->plan->n)
        return NULL;
    coord_seg *s = &j->segs[k];
    if (s->state != SEG_RUNNING || s->attempt != attempt || strcmp(s->worker, w->id) != 0)
        return NULL;
    return j;
}

static void on_frame(coord *c, coord_worker *w, const Rfarm__Frame *f, rf_parts *p) {
    coord_job *j = current(c, w, f->job_id, f->segment, f->attempt);
    if (!j) {
        c->stale_frames++;
        rf_debug(LOG, "stale frame dropped job=%s seg=%u attempt=%u worker=%s", f->job_id,
                 f->segment, f->attempt, w->id);
        return;
    }
    coord_seg *s = &j->segs[f->segment];
    const plan_segment *ps = &j->plan->seg[f->segment];
    char err[256] = "";
    if (p->n < 3)
        snprintf(err, sizeof err, "frame %u arrived without pixels", f->frame);
    else if (rf_part_size(p, 2) != j->frame_bytes)
        snprintf(err, sizeof err, "frame %u has %zu bytes, expected %zu for %ux%u I420", f->frame,
                 rf_part_size(p, 2), j->frame_bytes, j->spec->width, j->spec->height);
    else if (f->frame != ps->first + s->frames_recv)
        snprintf(err, sizeof err, "frame %u out of order (expected %u)", f->frame,
                 ps->first + s->frames_recv);
    if (err[0]) {
        seg_close(j, f->segment, 1);
        worker_drop_slot(w, j->spec->id, f->segment);
        job_fail_segment(c, j, f->segment, w->id, err);
        return;
    }
    const uint8_t *px = rf_part_data(p, 2);
    off_t off = (off_t)s->frames_recv * (off_t)j->frame_bytes;
    size_t done = 0;
    while (done < j->frame_bytes) {
        ssize_t r = pwrite(s->fd, px + done, j->frame_bytes - done, off + (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            /* A full or failing spool disk is the coordinator's problem, not
             * the segment's: fail the job with the reason. */
            char reason[512];
            snprintf(reason, sizeof reason, "spool: write failed for segment %u: %s", f->segment,
                     r < 0 ? strerror(errno) : "no progress");
            job_finish(c, j, "failed", reason);
            return;
        }
        done += (size_t)r;
    }
    s->frames_recv++;
}

static void on_done(coord *c, coord_worker *w, const Rfarm__SegmentDone *d) {
    coord_job *j = current(c, w, d->job_id, d->segment, d->attempt);
    if (!j) {
        rf_info(LOG, "stale result dropped job=%s seg=%u attempt=%u worker=%s", d->job_id,
                d->segment, d->attempt, w->id);
        return;
    }
    uint32_t k = d->segment;
    coord_seg *s = &j->segs[k];
    worker_drop_slot(w, j->spec->id, k);
    if (s->frames_recv != j->plan->seg[k].frames) {
        char err[128];
        snprintf(err, sizeof err, "worker delivered %u of %u frames", s->frames_recv,
                 j->plan->seg[k].frames);
        seg_close(j, k, 1);
        job_fail_segment(c, j, k, w->id, err);
        return;
    }
    char part[RF_PATH_MAX + 64], final[RF_PATH_MAX + 64];
    seg_spool_part(j, k, s->attempt, part, sizeof part);
    stitch_spool_path(j->spool, k, final, sizeof final);
    close(s->fd);
    s->fd = -1;
    if (rename(part, final) != 0) {
        char reason[RF_PATH_MAX + 128];
        snprintf(reason, sizeof reason, "spool: cannot rename %s: %s", part, strerror(errno));
        unlink(part);
        job_finish(c, j, "failed", reason);
        return;
    }
    s->state = SEG_DONE;
    j->segments_done++;
    w->segments_done++;
    rf_info(LOG, "segment done job=%s seg=%u attempt=%u worker=%s frames=%u ms=%llu", j->spec->id,
            k, s->attempt, w->id, d->frames, (unsigned long long)d->render_ms);
    store_warn(c, store_seg_state(c->st, j->spec->id, k, "done", s->attempt, w->id, NULL,
                                  d->render_ms), "segment state");
    store_warn(c, store_worker_seen(c->st, w->id, w->nslots ? "busy" : "idle", w->segments_done),
               "worker");
    store_warn(c, store_event(c->st, "segment_done", j->spec->id, (int)k, w->id, NULL), "event");
    stitch_job_ready(j->stitch, k);
}

static void on_failed(coord *c, coord_worker *w, const Rfarm__SegmentFailed *f) {
    coord_job *j = current(c, w, f->job_id, f->segment, f->attempt);
    if (!j)
        return;
    seg_close(j, f->segment, 1);
    worker_drop_slot(w, j->spec->id, f->segment);
    job_fail_segment(c, j, f->segment, w->id, f->error);
}

static void on_worker_message(coord *c) {
    rf_parts p;
    if (rf_wire_recv(c->wsock, &p, ZMQ_DONTWAIT) != 0)
        return;
    if (p.n < 2 || rf_part_size(&p, 0) == 0 || rf_part_size(&p, 0) > RF_ID_MAX) {
        rf_parts_close(&p);
        return;
    }
    char id[RF_ID_MAX + 1];
    memcpy(id, rf_part_data(&p, 0), rf_part_size(&p, 0));
    id[rf_part_size(&p, 0)] = '\0';
    Rfarm__WorkerMsg *m = rfarm__worker_msg__unpack(NULL, rf_part_size(&p, 1), rf_part_data(&p, 1));
    if (!m) {
        rf_warn(LOG, "malformed message from worker=%s bytes=%zu", id, rf_part_size(&p, 1));
        rf_parts_close(&p);
        return;
    }
    coord_worker *w = rf_map_get(c->workers, id);
    if (m->body_case == RFARM__WORKER_MSG__BODY_HELLO) {
        on_hello(c, id, m->hello);
    } else if (!w) {
        /* A worker we do not know (we restarted, or declared it lost). */
        if (m->body_case != RFARM__WORKER_MSG__BODY_FRAME &&
            m->body_case != RFARM__WORKER_MSG__BODY_BYE)
            ask_hello_again(c, id);
        if (m->body_case == RFARM__WORKER_MSG__BODY_FRAME)
            c->stale_frames++;
    } else {
        w->last_seen_ms = rf_mono_ms();
        switch (m->body_case) {
        case RFARM__WORKER_MSG__BODY_CREDIT:
            w->credits += m->credit->n;
            if (w->credits > COORD_MAX_CAPACITY)
                w->credits = COORD_MAX_CAPACITY;
            break;
        case RFARM__WORKER_MSG__BODY_HEARTBEAT:
            break;
        case RFARM__WORKER_MSG__BODY_FRAME:
            on_frame(c, w, m->frame, &p);
            break;
        case RFARM__WORKER_MSG__BODY_DONE:
            on_done(c, w, m->done);
            break;
        case RFARM__WORKER_MSG__BODY_FAILED:
            on_failed(c, w, m->failed);
            break;
        case RFARM__WORKER_MSG__BODY_BYE:
            worker_gone(c, w, m->bye->reason[0] ? m->bye->reason : "said bye");
            break;
        default:
            break;
        }
    }
    rfarm__worker_msg__free_unpacked(m, NULL);
    rf_parts_close(&p);
}

/* ---- stitch events ---- */

static void on_stitch_event(coord *c) {
    stitch_event ev;
    int n = zmq_recv(c->events, &ev, sizeof ev, ZMQ_DONTWAIT);
    if (n != (int)sizeof ev)
        return;
    ev.job[sizeof ev.job - 1] = '\0';
    ev.msg[sizeof ev.msg - 1] = '\0';
    coord_job *j = rf_map_get(c->jobs, ev.job);
    if (!j)
        return;
    switch (ev.kind) {
    case STITCH_PROGRESS:
        store_warn(c, store_job_progress(c->st, ev.job, j->segments_done, ev.frames), "progress");
        break;
    case STITCH_DONE:
        store_warn(c, store_job_progress(c->st, ev.job, j->segments_done, ev.frames), "progress");
        store_warn(c, store_job_output(c->st, ev.job, j->spec->output_path, ev.bytes), "output");
        rf_info(LOG, "video written job=%s path=%s frames=%u bytes=%llu", ev.job,
                j->spec->output_path, ev.frames, (unsigned long long)ev.bytes);
        job_finish(c, j, "done", NULL);
        break;
    case STITCH_FAILED:
        job_finish(c, j, "failed", ev.msg);
        break;
    }
}

/* ---- leases ---- */

typedef struct lease_ctx {
    uint64_t now;
    unsigned lease_ms;
    coord_worker *expired;
} lease_ctx;

static int find_expired(void *ctx, const char *key, void *value) {
    (void)key;
    lease_ctx *l = ctx;
    coord_worker *w = value;
    if (l->now - w->last_seen_ms > l->lease_ms) {
        l->expired = w;
        return 1;
    }
    return 0;
}

static void check_leases(coord *c) {
    for (;;) {
        lease_ctx l = {.now = rf_mono_ms(), .lease_ms = c->cfg.lease_ms, .expired = NULL};
        rf_map_each(c->workers, find_expired, &l);
        if (!l.expired)
            return;
        char why[96];
        snprintf(why, sizeof why, "silent for more than %u ms", c->cfg.lease_ms);
        worker_gone(c, l.expired, why);
    }
}

/* ---- life cycle ---- */

int coord_new(const coord_config *cfg, coord **out, char *err, size_t errlen) {
    *out = NULL;
    coord *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "coordinator: out of memory");
        return -1;
    }
    c->cfg = *cfg;
    if (rf_fmt(c->spool, sizeof c->spool, "%s", cfg->spool) != 0) {
        snprintf(err, errlen, "spool: path too long");
        free(c);
        return -1;
    }
    c->cfg.spool = c->spool;
    if (rf_mkdirs(c->spool, 0755) != 0) {
        snprintf(err, errlen, "spool: cannot create %s: %s", c->spool, strerror(errno));
        free(c);
        return -1;
    }
    c->jobs = rf_map_new();
    c->workers = rf_map_new();
    c->sched = sched_new();
    c->zctx = zmq_ctx_new();
    if (!c->jobs || !c->workers || !c->sched || !c->zctx) {
        snprintf(err, errlen, "coordinator: out of memory");
        goto fail;
    }
    store_opts so = {.addr = cfg->redis, .prefix = cfg->prefix};
    if (store_new(&so, &c->st, err, errlen) != 0)
        goto fail;
    char ep[64];
    snprintf(ep, sizeof ep, EVENTS_ENDPOINT_FMT, (void *)c);
    if (!(c->events = rf_wire_socket(c->zctx, ZMQ_PULL, 0, err, errlen)))
        goto fail;
    if (zmq_bind(c->events, ep) != 0) {
        snprintf(err, errlen, "coordinator: bind %s: %s", ep, zmq_strerror(errno));
        goto fail;
    }
    if (stitch_pool_new(c->zctx, ep, cfg->stitch_threads, cfg->kernels, &c->pool, err, errlen) != 0)
        goto fail;
    if (!(c->wsock = rf_wire_socket(c->zctx, ZMQ_ROUTER, 0, err, errlen)) ||
        !(c->csock = rf_wire_socket(c->zctx, ZMQ_ROUTER, 0, err, errlen)))
        goto fail;
    /* A worker that reconnects under the same id takes its routing id back
     * from the dead connection instead of being refused. */
    int one = 1;
    zmq_setsockopt(c->wsock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    if (zmq_bind(c->wsock, cfg->worker_bind) != 0) {
        snprintf(err, errlen, "worker-bind: cannot bind %s: %s", cfg->worker_bind,
                 zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(c->csock, cfg->client_bind) != 0) {
        snprintf(err, errlen, "client-bind: cannot bind %s: %s", cfg->client_bind,
                 zmq_strerror(errno));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    coord_free(c);
    return -1;
}

static int free_job_entry(void *ctx, const char *key, void *value) {
    (void)ctx;
    (void)key;
    job_free(value);
    return 0;
}

static int free_worker_entry(void *ctx, const char *key, void *value) {
    (void)ctx;
    (void)key;
    free(value);
    return 0;
}

void coord_free(coord *c) {
    if (!c)
        return;
    if (c->jobs) {
        /* Jobs stay "running" in Redis: they were accepted and are not
         * finished; a restarted coordinator is where they continue. */
        rf_map_each(c->jobs, free_job_entry, NULL);
        rf_map_free(c->jobs);
    }
    if (c->workers) {
        rf_map_each(c->workers, free_worker_entry, NULL);
        rf_map_free(c->workers);
    }
    stitch_pool_free(c->pool);
    sched_free(c->sched);
    if (c->wsock)
        zmq_close(c->wsock);
    if (c->csock)
        zmq_close(c->csock);
    if (c->events)
        zmq_close(c->events);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    store_free(c->st);
    free(c);
}

int coord_run(coord *c, volatile sig_atomic_t *stop) {
    rf_info(LOG, "coordinator ready workers=%s clients=%s redis=%s prefix=%s spool=%s blend=%s "
                 "reason=\"%s\"",
            c->cfg.worker_bind, c->cfg.client_bind, c->cfg.redis, c->cfg.prefix, c->spool,
            stitch_pool_backend(c->pool), stitch_pool_backend_reason(c->pool));
    uint64_t next_lease_check = rf_mono_ms() + 250;
    while (!*stop) {
        zmq_pollitem_t items[3] = {
            {c->wsock, 0, ZMQ_POLLIN, 0},
            {c->csock, 0, ZMQ_POLLIN, 0},
            {c->events, 0, ZMQ_POLLIN, 0},
        };
        int n = zmq_poll(items, 3, 250);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rf_error(LOG, "poll failed error=\"%s\"", zmq_strerror(errno));
            return -1;
        }
        /* Bounded batches per socket keep one busy peer from starving the
         * others. */
        if (items[0].revents & ZMQ_POLLIN)
            for (int i = 0; i < 256; i++) {
                int ev = 0;
                size_t sz = sizeof ev;
                on_worker_message(c);
                zmq_getsockopt(c->wsock, ZMQ_EVENTS, &ev, &sz);
                if (!(ev & ZMQ_POLLIN))
                    break;
            }
        if (items[1].revents & ZMQ_POLLIN)
            coord_client_request(c);
        if (items[2].revents & ZMQ_POLLIN)
            for (int i = 0; i < 64; i++) {
                int ev = 0;
                size_t sz = sizeof ev;
                on_stitch_event(c);
                zmq_getsockopt(c->events, ZMQ_EVENTS, &ev, &sz);
                if (!(ev & ZMQ_POLLIN))
                    break;
            }
        uint64_t now = rf_mono_ms();
        if (now >= next_lease_check) {
            check_leases(c);
            next_lease_check = now + 250;
        }
        dispatch(c);
    }
    rf_info(LOG, "coordinator stopping jobs_unfinished=%zu stale_frames=%llu",
            rf_map_len(c->jobs), (unsigned long long)c->stale_frames);
    return 0;
}
