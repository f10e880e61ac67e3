/* worker_render — a slot's render thread: runs the engine on the slot's
 * segment and sends what it renders to the main thread (frames, engine
 * log lines, the end message), which forwards them to the coordinator.
 * Frames go into the coordinator's spool when the worker shares it, else
 * over the socket, from buffers lent to the engine when big enough
 * (fpool.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "rf_util.h"
#include "rf_wire.h"
#include "rfarm.pb-c.h"
#include "worker_internal.h"

typedef struct render_ctx {
    slot *s;
    void *push;
    int spool_fd; /* the segment's spool file, -1: send pixels */
    uint8_t *lent; /* a buffer lent to the engine, not yet back in a frame */
    size_t lent_len;
} render_ctx;

/* engine_io.buffer: a pooled buffer for the engine's next frame. */
static uint8_t *on_buffer(void *ctx, size_t len) {
    render_ctx *rc = ctx;
    if (len < FPOOL_MIN_BYTES)
        return NULL;
    if (rc->lent && rc->lent_len == len)
        return rc->lent; /* lent for a frame that never came */
    fpool_put(rc->s->w->frames, rc->lent);
    rc->lent = fpool_get(rc->s->w->frames, len);
    rc->lent_len = len;
    return rc->lent;
}

/* The pixels of a lent buffer, as the message's last part: ZeroMQ gives
 * the buffer back to the pool once it is sent (or dropped). */
static int send_lent(render_ctx *rc, uint8_t *pixels, size_t len) {
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, pixels, len, fpool_zmq_free, rc->s->w->frames) != 0) {
        fpool_put(rc->s->w->frames, pixels);
        return -1;
    }
    if (zmq_msg_send(&m, rc->push, 0) < 0) {
        zmq_msg_close(&m); /* gives the buffer back */
        return -1;
    }
    return 0;
}

/* Write a frame into the spool file at its place. 0, or -1 (errno). */
static int spool_write(int fd, const uint8_t *px, size_t len, off_t off) {
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(fd, px + done, len - done, off + (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

static int send_tag(void *push, unsigned slot_index, char tag) {
    unsigned char t[2] = {(unsigned char)slot_index, (unsigned char)tag};
    return rf_wire_send_bytes(push, t, 2, 1);
}

static int on_frame(void *ctx, uint32_t abs_frame, const uint8_t *pixels, size_t len) {
    render_ctx *rc = ctx;
    slot *s = rc->s;
    /* A frame in the buffer we lent: ours again, to send or give back. */
    uint8_t *lent = pixels && pixels == rc->lent ? rc->lent : NULL;
    if (lent)
        rc->lent = NULL;
    Rfarm__Frame f = RFARM__FRAME__INIT;
    f.job_id = s->job_id;
    f.segment = s->seg.segment;
    f.attempt = s->seg.attempt;
    f.frame = abs_frame;
    f.epoch = s->epoch;
    if (rc->spool_fd >= 0) {
        off_t off = (off_t)(abs_frame - s->seg.first_frame) * (off_t)len;
        if (spool_write(rc->spool_fd, pixels, len, off) == 0) {
            f.in_spool = 1;
            atomic_fetch_add(&s->frames_in_spool, 1);
        } else {
            /* A full or failing disk here need not fail the segment: the
             * coordinator writes what it is sent. */
            rf_warn(LOG, "spool write failed, sending frames instead job=%s seg=%u file=%s "
                         "error=\"%s\"", s->job_id, s->seg.segment, s->spool_part, strerror(errno));
            close(rc->spool_fd);
            rc->spool_fd = -1;
        }
    }
    Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
    m.body_case = RFARM__WORKER_MSG__BODY_FRAME;
    m.frame = &f;
    int sent = send_tag(rc->push, s->index, TAG_FRAME) == 0 &&
               rf_wire_send_pb(rc->push, &m.base, !f.in_spool) == 0;
    if (sent && !f.in_spool)
        sent = lent ? send_lent(rc, lent, len) == 0 : rf_wire_send_bytes(rc->push, pixels, len, 0) == 0;
    else if (lent)
        fpool_put(s->w->frames, lent); /* in the spool already, or not sent */
    if (!sent)
        return -1;
    return atomic_load(&s->stop) ? -1 : 0;
}

static void on_log(void *ctx, const char *line) {
    render_ctx *rc = ctx;
    slot *s = rc->s;
    rf_info(LOG, "engine output job=%s seg=%u line=\"%s\"", s->job_id, s->seg.segment, line);
    if (s->log_lines++ >= LOG_LINES_FORWARDED)
        return;
    Rfarm__EngineLog l = RFARM__ENGINE_LOG__INIT;
    l.job_id = s->job_id;
    l.segment = s->seg.segment;
    l.attempt = s->seg.attempt;
    l.line = (char *)line;
    Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
    m.body_case = RFARM__WORKER_MSG__BODY_LOG;
    m.log = &l;
    if (send_tag(rc->push, s->index, TAG_LOG) == 0)
        rf_wire_send_pb(rc->push, &m.base, 0);
}

/* Render the slot's segment and send its end message: SegmentDone or
 * SegmentFailed. */
static void render_one(slot *s, render_ctx *rc) {
    engine_io io = {.frame = on_frame,
                    .buffer = on_buffer,
                    .log = on_log,
                    .ctx = rc,
                    .stop = &s->stop,
                    .cache = s->w->cache};
    char err[2048] = "";
    rc->spool_fd = -1;
    if (s->spool_part) {
        /* The coordinator made the file; no O_CREAT: a path that is not
         * there is not the spool it means. */
        rc->spool_fd = open(s->spool_part, O_WRONLY | O_CLOEXEC);
        if (rc->spool_fd < 0)
            rf_warn(LOG, "cannot open the spool file, sending frames instead job=%s seg=%u "
                         "file=%s error=\"%s\"", s->job_id, s->seg.segment, s->spool_part,
                    strerror(errno));
    }
    uint64_t t0 = rf_mono_ms();
    int r = engine_render(s->engine, &s->seg, &io, err, sizeof err);
    uint64_t ms = rf_mono_ms() - t0;
    if (rc->spool_fd >= 0)
        close(rc->spool_fd);
    fpool_put(s->w->frames, rc->lent); /* lent for a frame that never came */
    rc->lent = NULL;

    Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
    Rfarm__SegmentDone d = RFARM__SEGMENT_DONE__INIT;
    Rfarm__SegmentFailed f = RFARM__SEGMENT_FAILED__INIT;
    if (r == 0) {
        d.job_id = s->job_id;
        d.segment = s->seg.segment;
        d.attempt = s->seg.attempt;
        d.epoch = s->epoch;
        d.frames = s->seg.frames;
        d.render_ms = ms;
        m.body_case = RFARM__WORKER_MSG__BODY_DONE;
        m.done = &d;
    } else {
        f.job_id = s->job_id;
        f.segment = s->seg.segment;
        f.attempt = s->seg.attempt;
        f.epoch = s->epoch;
        f.error = err;
        m.body_case = RFARM__WORKER_MSG__BODY_FAILED;
        m.failed = &f;
    }
    send_tag(rc->push, s->index, TAG_END);
    rf_wire_send_pb(rc->push, &m.base, 0);
}

static void *render_thread(void *arg) {
    slot *s = arg;
    render_ctx rc = {.s = s, .push = zmq_socket(s->w->zctx, ZMQ_PUSH)};
    int hwm = 4; /* frames in flight between this thread and the main one */
    zmq_setsockopt(rc.push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    int linger = 0;
    zmq_setsockopt(rc.push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(rc.push, s->w->endpoint);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->go && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->go)
            break;
        s->go = 0;
        pthread_mutex_unlock(&s->mu);
        render_one(s, &rc);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    zmq_close(rc.push);
    return NULL;
}

int worker_slot_start(slot *s) {
    if (!s->started) {
        if (pthread_create(&s->thread, NULL, render_thread, s) != 0)
            return -1;
        s->started = 1;
    }
    pthread_mutex_lock(&s->mu);
    s->go = 1;
    pthread_mutex_unlock(&s->mu);
    /* Signalled after the unlock: a thread woken while the mutex is still
     * held only blocks on it again, one more switch per segment. */
    pthread_cond_signal(&s->cv);
    return 0;
}

void worker_slot_quit(slot *s) {
    if (!s->started)
        return;
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->started = 0;
}

