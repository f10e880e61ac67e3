/* coord_workers — the coordinator's side of the conversation with workers:
 * hellos, credit, frames, results, leases, and which worker gets what
 * (among those coord_health.c lets run a job).
 *
 * Workers pull: each grants credit (Credit messages) and the loop never
 * assigns a worker more segments than it has granted. A segment assignment
 * carries an attempt number; frames and results that name another attempt
 * (a worker presumed lost that comes back) are dropped and counted, never
 * stitched. Frames arrive as [routing id][WorkerMsg{frame}][pixels] and are
 * written straight from ZeroMQ's buffer into the segment's spool file at
 * the frame's offset, or, a small segment's, gathered in memory; when the
 * segment is done the commit thread renames its file into place or appends
 * it to a pack (spool.h), and then the stitcher is told.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "coord_internal.h"
#include "rf_util.h"
#include "rf_wire.h"


void coord_worker_drop_slot(coord_worker *w, const char *job, uint32_t seg) {
    for (unsigned i = 0; i < w->nslots; i++) {
        if (w->slots[i].seg == seg && strcmp(w->slots[i].job, job) == 0) {
            w->slots[i] = w->slots[--w->nslots];
            return;
        }
    }
}

void coord_cancel_attempt(coord *c, coord_worker *w, const coord_job *j, uint32_t k) {
    Rfarm__Cancel cn = RFARM__CANCEL__INIT;
    cn.job_id = j->spec->id;
    cn.segment = k;
    cn.attempt = j->segs[k].attempt;
    cn.epoch = c->epoch;
    Rfarm__CoordMsg m = RFARM__COORD_MSG__INIT;
    m.body_case = RFARM__COORD_MSG__BODY_CANCEL;
    m.cancel = &cn;
    coord_send_to_worker(c, w->id, &m);
}

/* ---- assignment ---- */

/* The worker's record: what it renders now ("job:seg,..."), whether busy,
 * its segments done. */
static int worker_write(coord *c, const coord_worker *w) {
    char cur[1024];
    size_t len = 0;
    cur[0] = '\0';
    for (unsigned i = 0; i < w->nslots && len + RF_ID_MAX + 16 < sizeof cur; i++)
        len += (size_t)snprintf(cur + len, sizeof cur - len, "%s%s:%u", len ? "," : "",
                                w->slots[i].job, w->slots[i].seg);
    return store_worker_seen(c->st, w->id, w->nslots ? "busy" : "idle", w->segments_done, cur);
}

/* A worker's record changes with every segment it takes or finishes: it is
 * written once per turn of the loop (coord_workers_flush), not each time. */
static void worker_changed(coord *c, coord_worker *w) {
    w->dirty = 1;
    c->workers_dirty = 1;
}

static int flush_worker(void *ctx, const char *key, void *value) {
    (void)key;
    coord *c = ctx;
    coord_worker *w = value;
    if (w->dirty) {
        w->dirty = 0;
        coord_store_warn(c, worker_write(c, w), "worker");
    }
    return 0;
}

void coord_workers_flush(coord *c) {
    if (!c->workers_dirty)
        return;
    c->workers_dirty = 0;
    rf_map_each(c->workers, flush_worker, c);
}

typedef struct accept_ctx {
    coord *c;
    coord_worker *w;
} accept_ctx;

static int accept_job(void *ctx, void *job) {
    accept_ctx *a = ctx;
    return coord_worker_may_run(a->c, a->w, job);
}

static void assign(coord *c, coord_worker *w, coord_job *j, uint32_t k) {
    coord_seg *s = &j->segs[k];
    const plan_segment *ps = &j->plan->seg[k];
    s->attempt++;
    char path[RF_PATH_MAX + 64];
    coord_seg_part_path(j, k, s->attempt, path, sizeof path);
    size_t bytes = (size_t)ps->frames * j->frame_bytes;
    if (bytes <= COORD_MEM_SEGMENT_MAX) {
        s->fd = -1; /* the commit thread writes it into a pack */
        if (!(s->mem = malloc(bytes ? bytes : 1))) {
            coord_job_finish(c, j, "failed", "coordinator: out of memory for a segment", 0);
            return;
        }
    } else {
        s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s->fd < 0 && errno == ENOENT && rf_mkdirs(j->spool, 0755) == 0)
            s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s->fd < 0) {
            char err[RF_PATH_MAX + 128];
            snprintf(err, sizeof err, "spool: cannot create %s: %s", path, strerror(errno));
            coord_job_finish(c, j, "failed", err, 0);
            return;
        }
    }
    s->state = SEG_RUNNING;
    s->frames_recv = 0;
    s->in_spool = w->spool_shared && !s->mem; /* small ones come over the socket */
    s->started_ms = rf_mono_ms();
    s->started_wall_ms = rf_wall_ms();
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
    a.epoch = c->epoch;
    if (s->in_spool)
        a.spool_part = path;
    Rfarm__CoordMsg m = RFARM__COORD_MSG__INIT;
    m.body_case = RFARM__COORD_MSG__BODY_ASSIGN;
    m.assign = &a;
    coord_send_to_worker(c, w->id, &m);

    w->credits--;
    coord_slot *slot = &w->slots[w->nslots++];
    snprintf(slot->job, sizeof slot->job, "%s", j->spec->id);
    slot->seg = k;
    slot->attempt = s->attempt;
    slot->assigned_ms = rf_mono_ms();

    rf_info(LOG, "segment assigned job=%s seg=%u attempt=%u worker=%s first=%u frames=%u",
            j->spec->id, k, s->attempt, w->id, ps->first, ps->frames);
    if (!j->started) {
        j->started = 1;
        if (!j->started_wall_ms) /* else it started before a restart */
            j->started_wall_ms = s->started_wall_ms;
        coord_store_warn(c,
                         store_job_state_at(c->st, j->spec->id, "running", NULL,
                                            j->started_wall_ms, 0),
                         "job state");
    }
    coord_store_warn(c,
                     store_seg_running(c->st, j->spec->id, k, s->attempt, w->id,
                                       s->started_wall_ms),
                     "segment state");
    coord_job_log(c, j, "segment %u attempt %u started on %s (frames %u-%u)", k, s->attempt,
                  w->id, ps->first, ps->first + ps->frames - 1);
    worker_changed(c, w);
}

static int dispatch_worker(void *ctx, const char *key, void *value) {
    (void)key;
    coord *c = ctx;
    coord_worker *w = value;
    accept_ctx a = {c, w};
    while (!w->draining && w->credits > 0 && w->nslots < COORD_MAX_CAPACITY) {
        void *job;
        uint32_t k;
        if (!sched_pop(c->sched, accept_job, &a, &job, &k))
            break;
        assign(c, w, job, k);
    }
    return sched_pending(c->sched) == 0;
}

void coord_dispatch(coord *c) {
    if (sched_pending(c->sched) == 0)
        return;
    rf_map_each(c->workers, dispatch_worker, c);
}

/* ---- workers coming and going ---- */

/* The segment a slot names goes back to the front of the queue, not counted
 * as a failure; its next assignment gets a new attempt number, so anything
 * the old one still sends is dropped. */
static void requeue_slot(coord *c, const coord_worker *w, const coord_slot *sl, const char *why) {
    coord_job *j = rf_map_get(c->jobs, sl->job);
    if (!j)
        return;
    uint32_t k = sl->seg;
    coord_seg *s = &j->segs[k];
    if (s->state != SEG_RUNNING || s->attempt != sl->attempt)
        return;
    coord_seg_close(j, k, 1);
    s->state = SEG_QUEUED;
    sched_stopped(c->sched, j);
    sched_push(c->sched, j, k, j->plan->seg[k].frames, 1);
    coord_job_log(c, j, "segment %u attempt %u taken back from %s: %s", k, s->attempt,
                  w->id, why);
    c->stats.segments_lost++;
    c->stats_dirty = 1;
    rf_warn(LOG, "segment requeued job=%s seg=%u attempt=%u worker=%s reason=\"%s\"", j->spec->id,
            k, s->attempt, w->id, why);
    coord_store_warn(c, store_seg_state(c->st, j->spec->id, k, "queued", s->attempt, NULL, why),
                     "segment state");
}

/* A worker's segments all go back to the queue (it is gone or restarted). */
static void worker_release(coord *c, coord_worker *w, const char *why) {
    for (unsigned i = 0; i < w->nslots; i++)
        requeue_slot(c, w, &w->slots[i], why);
    w->nslots = 0;
    w->credits = 0;
}

static int hb_lists(const Rfarm__Heartbeat *hb, const coord_slot *sl, uint32_t epoch) {
    for (size_t h = 0; h < hb->n_held; h++)
        if (hb->held[h]->segment == sl->seg && hb->held[h]->attempt == sl->attempt &&
            hb->held[h]->epoch == epoch && strcmp(hb->held[h]->job_id, sl->job) == 0)
            return 1;
    return 0;
}

/* A heartbeat lists what the worker holds. A slot we think it holds, that
 * it does not list although it was assigned long enough ago for the Assign
 * to have arrived, was lost on the way (the Assign, or the worker's result,
 * dropped with a broken connection): its segment goes back to the queue.
 * Everything the worker sent before the heartbeat has been read by now, so
 * its credit is exactly its free room (which also counts slots still busy
 * with stale work) less the assignments still on their way to it. */
static void on_heartbeat(coord *c, coord_worker *w, const Rfarm__Heartbeat *hb) {
    uint64_t now = rf_mono_ms(), grace = 2ull * c->cfg.heartbeat_ms + 1000;
    uint32_t in_flight = 0;
    for (unsigned i = 0; i < w->nslots;) {
        const coord_slot *sl = &w->slots[i];
        if (hb_lists(hb, sl, c->epoch)) {
            i++;
        } else if (now - sl->assigned_ms < grace) {
            in_flight++;
            i++;
        } else {
            requeue_slot(c, w, sl, "the worker does not hold it (a message was lost)");
            w->slots[i] = w->slots[--w->nslots];
        }
    }
    if (hb->draining && !w->draining)
        rf_info(LOG, "worker draining worker=%s segments_in_hand=%u", w->id, w->nslots);
    w->draining = hb->draining;
    if (w->spool_shared != hb->spool_shared)
        rf_info(LOG, "worker %s the spool worker=%s", hb->spool_shared ? "shares" : "no longer shares",
                w->id);
    w->spool_shared = hb->spool_shared;
    uint32_t used = hb->busy + in_flight;
    w->credits = w->draining || used >= w->capacity ? 0 : w->capacity - used;
}

static void worker_gone(coord *c, coord_worker *w, const char *why) {
    rf_warn(LOG, "worker gone worker=%s reason=\"%s\"", w->id, why);
    worker_release(c, w, why);
    coord_store_warn(c, store_worker_seen(c->st, w->id, "gone", w->segments_done, ""), "worker");
    coord_store_warn(c, store_event(c->st, "worker_gone", NULL, -1, w->id, why), "event");
    rf_map_del(c->workers, w->id);
    free(w);
}

static void send_welcome(coord *c, const char *id, int hello_again) {
    Rfarm__Welcome wel = RFARM__WELCOME__INIT;
    wel.heartbeat_ms = c->cfg.heartbeat_ms;
    wel.hello_again = hello_again;
    wel.spool = c->spool;
    wel.spool_key = c->spool_key;
    Rfarm__CoordMsg m = RFARM__COORD_MSG__INIT;
    m.body_case = RFARM__COORD_MSG__BODY_WELCOME;
    m.welcome = &wel;
    coord_send_to_worker(c, id, &m);
}

static void on_hello(coord *c, const char *id, const Rfarm__Hello *h) {
    coord_worker *w = rf_map_get(c->workers, id);
    if (w && w->pid != h->pid) {
        /* The same id from another process: it restarted, so whatever it
         * held is lost. */
        worker_release(c, w, "worker restarted");
    } else if (w) {
        /* The same process again: one hello per "hello again" we sent while
         * it was unknown. What it holds is still its own. */
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
    w->pid = h->pid;
    w->credits = 0; /* a Credit follows every Hello */
    w->last_seen_ms = rf_mono_ms();
    rf_info(LOG, "worker joined worker=%s engines=%s gpus=%u capacity=%u compute=%s host=%s pid=%u",
            id, w->engines, h->gpus, h->capacity, h->compute, h->hostname, h->pid);
    store_worker w_rec = {.id = id, .engines = w->engines, .compute = h->compute,
                          .hostname = h->hostname, .state = "idle", .gpus = h->gpus,
                          .capacity = h->capacity, .pid = h->pid};
    coord_store_warn(c, store_worker_hello(c->st, &w_rec), "worker");
    coord_store_warn(c, store_event(c->st, "worker_joined", NULL, -1, id, NULL), "event");
    send_welcome(c, id, 0);
}

static int resync_worker(void *ctx, const char *key, void *value) {
    (void)key;
    coord *c = ctx;
    coord_worker *w = value;
    w->dirty = 0;
    return worker_write(c, w) != 0;
}

void coord_workers_resync(coord *c) {
    rf_map_each(c->workers, resync_worker, c);
}

/* ---- what workers send ---- */

static void record_rendered(coord *c, coord_job *j, uint32_t k, coord_worker *w,
                            uint64_t render_ms);

/* The segment a message talks about, when it is the current attempt held by
 * this worker; NULL (and the message is stale) otherwise. */
static coord_job *current(coord *c, const coord_worker *w, const char *job, uint32_t k,
                          uint32_t attempt, uint32_t epoch) {
    if (epoch != c->epoch)
        return NULL;
    coord_job *j = rf_map_get(c->jobs, job);
    if (!j || k >= j->plan->n)
        return NULL;
    coord_seg *s = &j->segs[k];
    if (s->state != SEG_RUNNING || s->attempt != attempt || strcmp(s->worker, w->id) != 0)
        return NULL;
    return j;
}

static void count_stale(coord *c, int frame) {
    if (frame)
        c->stats.stale_frames++;
    else
        c->stats.stale_results++;
    c->stats_dirty = 1;
}

static void on_frame(coord *c, coord_worker *w, const Rfarm__Frame *f, rf_parts *p) {
    coord_job *j = current(c, w, f->job_id, f->segment, f->attempt, f->epoch);
    if (!j) {
        count_stale(c, 1);
        rf_debug(LOG, "stale frame dropped job=%s seg=%u attempt=%u worker=%s", f->job_id,
                 f->segment, f->attempt, w->id);
        return;
    }
    coord_seg *s = &j->segs[f->segment];
    const plan_segment *ps = &j->plan->seg[f->segment];
    char err[256] = "";
    int in_spool = f->in_spool && p->n == 2;
    if (f->in_spool && !s->in_spool)
        snprintf(err, sizeof err, "frame %u said it is in the spool, but the assignment named no "
                 "spool file", f->frame);
    else if (p->n < 3 && !in_spool)
        snprintf(err, sizeof err, "frame %u arrived without pixels", f->frame);
    else if (!in_spool && rf_part_size(p, 2) != j->frame_bytes)
        snprintf(err, sizeof err, "frame %u has %zu bytes, expected %zu for %ux%u I420", f->frame,
                 rf_part_size(p, 2), j->frame_bytes, j->spec->width, j->spec->height);
    else if (s->frames_recv >= ps->frames)
        snprintf(err, sizeof err, "frame %u is past the segment's %u frames", f->frame, ps->frames);
    else if (f->frame != ps->first + s->frames_recv)
        snprintf(err, sizeof err, "frame %u out of order (expected %u)", f->frame,
                 ps->first + s->frames_recv);
    if (err[0]) {
        /* The worker renders on unless told: stop it, then retry. */
        coord_cancel_attempt(c, w, j, f->segment);
        coord_seg_close(j, f->segment, 1);
        coord_worker_drop_slot(w, j->spec->id, f->segment);
        coord_job_fail_segment(c, j, f->segment, w->id, err);
        return;
    }
    const uint8_t *px = in_spool ? NULL : rf_part_data(p, 2);
    off_t off = (off_t)s->frames_recv * (off_t)j->frame_bytes;
    size_t done = in_spool ? j->frame_bytes : 0; /* the worker wrote it there */
    if (s->mem) {
        memcpy(s->mem + off, px, j->frame_bytes);
        done = j->frame_bytes;
    }
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
            coord_job_finish(c, j, "failed", reason, 0);
            return;
        }
        done += (size_t)r;
    }
    s->frames_recv++;
    w->frames_received++;
    c->stats.frames_received++;
    c->stats.bytes_received += j->frame_bytes;
}

/* A pack that filled up after all its jobs ended: the commit thread
 * deletes it after the commits queued before. */
static void remove_pack(coord *c, uint32_t pack) {
    char path[RF_PATH_MAX + 64];
    if (spool_pack_path(spool_packs_dir(c->packs), pack, path, sizeof path) == 0 &&
        (!c->commits || commit_remove(c->commits, path) != 0))
        unlink(path);
}

static void on_done(coord *c, coord_worker *w, const Rfarm__SegmentDone *d) {
    coord_job *j = current(c, w, d->job_id, d->segment, d->attempt, d->epoch);
    if (!j) {
        count_stale(c, 0);
        rf_info(LOG, "stale result dropped job=%s seg=%u attempt=%u worker=%s", d->job_id,
                d->segment, d->attempt, w->id);
        return;
    }
    uint32_t k = d->segment;
    coord_seg *s = &j->segs[k];
    coord_worker_drop_slot(w, j->spec->id, k);
    if (s->frames_recv != j->plan->seg[k].frames) {
        char err[128];
        snprintf(err, sizeof err, "worker delivered %u of %u frames", s->frames_recv,
                 j->plan->seg[k].frames);
        coord_seg_close(j, k, 1);
        coord_job_fail_segment(c, j, k, w->id, err);
        return;
    }
    struct stat st = {0};
    off_t want = (off_t)s->frames_recv * (off_t)j->frame_bytes;
    if (s->in_spool && (fstat(s->fd, &st) != 0 || st.st_size != want)) {
        /* The worker wrote the file: its size is the check that it all got
         * there (frames sent over the socket were written here). */
        char err[160];
        snprintf(err, sizeof err, "spool file of the segment has %lld bytes, expected %lld",
                 (long long)st.st_size, (long long)want);
        coord_seg_close(j, k, 1);
        coord_job_fail_segment(c, j, k, w->id, err);
        return;
    }
    char part[RF_PATH_MAX + 64], final[RF_PATH_MAX + 64];
    coord_seg_part_path(j, k, s->attempt, part, sizeof part);
    size_t len = (size_t)s->frames_recv * j->frame_bytes;
    const char *dir = j->spool;
    s->loc = (spool_loc){0};
    if (s->mem) {
        /* Into the current pack (spool.h), referenced until the job ends. */
        int64_t retired = spool_packs_place(c->packs, len, &s->loc);
        if (retired < 0) {
            coord_seg_close(j, k, 1);
            coord_job_finish(c, j, "failed",
                             "spool: no place for the segment in a pack (out of memory, or of "
                             "pack numbers: restart the coordinator on an empty spool)", 0);
            return;
        }
        if (retired)
            remove_pack(c, (uint32_t)retired);
        dir = spool_packs_dir(c->packs);
    }
    spool_loc_path(j->spool, spool_packs_dir(c->packs), k, s->loc, final, sizeof final);
    /* On disk before Redis says done (commit.h), without the loop waiting
     * for the disk; it no longer counts against the job's cap. */
    s->state = SEG_COMMITTING;
    s->render_ms = d->render_ms;
    sched_stopped(c->sched, j);
    commit_data data = {.fd = s->fd,
                        .mem = s->mem,
                        .len = len,
                        .packed = s->loc.pack != 0,
                        .pack_off = s->loc.off};
    s->fd = -1;
    s->mem = NULL;
    if (commit_submit(c->commits, j->spec->id, k, s->attempt, &data, part, final, dir) != 0) {
        commit_result res;
        commit_now(j->spec->id, k, s->attempt, &data, part, final, dir, &res);
        coord_on_commit(c, &res);
    }
}

void coord_on_commit(coord *c, const commit_result *res) {
    coord_job *j = rf_map_get(c->jobs, res->job);
    coord_seg *s = j && res->seg < j->plan->n ? &j->segs[res->seg] : NULL;
    if (!s || s->state != SEG_COMMITTING || s->attempt != res->attempt) {
        /* Its job ended meanwhile and took its spool directory: what the
         * commit put there goes too. */
        if (res->ok && !j) {
            /* (A segment put in a pack has nothing to remove: the pack goes
             * with the last of its jobs.) */
            char dir[RF_PATH_MAX + 2], final[RF_PATH_MAX + 64];
            snprintf(dir, sizeof dir, "%s/%s", c->spool, res->job);
            spool_seg_path(dir, res->seg, final, sizeof final);
            unlink(final);
            rmdir(dir);
        }
        return;
    }
    uint32_t k = res->seg;
    if (!res->ok) {
        coord_job_finish(c, j, "failed", res->msg, 0);
        return;
    }
    s->state = SEG_DONE;
    s->finished_ms = rf_wall_ms();
    j->segments_done++;
    j->frames_rendered += j->plan->seg[k].frames;
    j->render_ms += s->render_ms;
    coord_worker *w = rf_map_get(c->workers, s->worker);
    if (w)
        w->segments_done++;
    c->stats.segments_rendered++;
    c->stats_dirty = 1;
    rf_info(LOG, "segment done job=%s seg=%u attempt=%u worker=%s frames=%u ms=%llu", j->spec->id,
            k, s->attempt, s->worker, j->plan->seg[k].frames, (unsigned long long)s->render_ms);
    coord_store_warn(c, coord_seg_store_done(c, j, k), "segment state");
    coord_store_warn(c, store_event(c->st, "segment_done", j->spec->id, (int)k, s->worker, NULL),
                     "event");
    coord_health_rendered(c, j, k, s->worker);
    record_rendered(c, j, k, w, s->render_ms);
    stitch_job_ready(j->stitch, k, s->loc);
}

/* A rendered segment in the job's record (progress, render time), its
 * batch's totals and its log; and what the worker does now. */
static void record_rendered(coord *c, coord_job *j, uint32_t k, coord_worker *w,
                            uint64_t render_ms) {
    const plan_segment *ps = &j->plan->seg[k];
    coord_job_progressed(c, j);
    if (j->batch[0])
        coord_batch_rendered(c, j->batch, ps->frames);
    coord_job_log(c, j, "segment %u done by %s in %llu ms (frames %u-%u)", k, j->segs[k].worker,
                  (unsigned long long)render_ms, ps->first, ps->first + ps->frames - 1);
    if (w)
        worker_changed(c, w);
}

static void on_engine_log(coord *c, coord_worker *w, const Rfarm__EngineLog *l) {
    coord_job *j = rf_map_get(c->jobs, l->job_id);
    if (!j)
        return;
    coord_job_log(c, j, "engine seg %u attempt %u on %s: %s", l->segment, l->attempt,
                  w->id, l->line);
}

static void on_failed(coord *c, coord_worker *w, const Rfarm__SegmentFailed *f) {
    coord_job *j = current(c, w, f->job_id, f->segment, f->attempt, f->epoch);
    if (!j) {
        count_stale(c, 0);
        return;
    }
    if (f->handed_back) {
        for (unsigned i = 0; i < w->nslots; i++)
            if (w->slots[i].seg == f->segment && strcmp(w->slots[i].job, f->job_id) == 0) {
                requeue_slot(c, w, &w->slots[i], f->error);
                break;
            }
        coord_worker_drop_slot(w, j->spec->id, f->segment);
        return;
    }
    coord_seg_close(j, f->segment, 1);
    coord_worker_drop_slot(w, j->spec->id, f->segment);
    coord_job_fail_segment(c, j, f->segment, w->id, f->error);
}

/* Saturating: a worker's word is not trusted to stay in range. */
static void add_credit(coord_worker *w, uint32_t n) {
    w->credits = n >= COORD_MAX_CAPACITY - w->credits ? COORD_MAX_CAPACITY : w->credits + n;
}

void coord_on_worker_message(coord *c) {
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
        /* A worker we do not know (we restarted, or declared it lost): what
         * it sends about segments is stale; it must introduce itself. */
        if (m->body_case == RFARM__WORKER_MSG__BODY_FRAME)
            count_stale(c, 1);
        else if (m->body_case == RFARM__WORKER_MSG__BODY_DONE ||
                 m->body_case == RFARM__WORKER_MSG__BODY_FAILED)
            count_stale(c, 0);
        if (m->body_case != RFARM__WORKER_MSG__BODY_FRAME &&
            m->body_case != RFARM__WORKER_MSG__BODY_BYE)
            send_welcome(c, id, 1);
    } else {
        w->last_seen_ms = rf_mono_ms();
        switch (m->body_case) {
        case RFARM__WORKER_MSG__BODY_CREDIT:
            add_credit(w, m->credit->n);
            break;
        case RFARM__WORKER_MSG__BODY_HEARTBEAT:
            on_heartbeat(c, w, m->heartbeat);
            break;
        case RFARM__WORKER_MSG__BODY_FRAME:
            on_frame(c, w, m->frame, &p);
            break;
        case RFARM__WORKER_MSG__BODY_DONE:
            add_credit(w, m->done->credit);
            on_done(c, w, m->done);
            break;
        case RFARM__WORKER_MSG__BODY_FAILED:
            add_credit(w, m->failed->credit);
            on_failed(c, w, m->failed);
            break;
        case RFARM__WORKER_MSG__BODY_BYE:
            worker_gone(c, w, m->bye->reason[0] ? m->bye->reason : "said bye");
            break;
        case RFARM__WORKER_MSG__BODY_LOG:
            on_engine_log(c, w, m->log);
            break;
        default:
            break;
        }
    }
    rfarm__worker_msg__free_unpacked(m, NULL);
    rf_parts_close(&p);
}

/* ---- leases ---- */

typedef struct forgive_ctx {
    uint64_t stall_ms, now;
} forgive_ctx;

static int forgive(void *ctx, const char *key, void *value) {
    (void)key;
    const forgive_ctx *f = ctx;
    coord_worker *w = value;
    /* Never into the future: a worker heard from during the stall is
     * already up to date. */
    w->last_seen_ms = w->last_seen_ms + f->stall_ms > f->now ? f->now : w->last_seen_ms + f->stall_ms;
    return 0;
}

void coord_workers_forgive(coord *c, uint64_t stall_ms) {
    rf_warn(LOG, "event loop stalled ms=%llu; leases extended", (unsigned long long)stall_ms);
    forgive_ctx f = {stall_ms, rf_mono_ms()};
    rf_map_each(c->workers, forgive, &f);
}

typedef struct lease_ctx {
    uint64_t now;
    unsigned lease_ms;
    coord_worker *expired;
} lease_ctx;

static int find_expired(void *ctx, const char *key, void *value) {
    (void)key;
    lease_ctx *l = ctx;
    coord_worker *w = value;
    if (l->now > w->last_seen_ms && l->now - w->last_seen_ms > l->lease_ms) {
        l->expired = w;
        return 1;
    }
    return 0;
}

void coord_check_leases(coord *c) {
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
