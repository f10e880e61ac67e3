/* worker — the render worker's main thread: its conversation with the
 * coordinator, and the slots it gives segments to (their render threads
 * are in worker_render.c). See worker.h for the design. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "rf_util.h"
#include "rf_wire.h"
#include "rfarm.pb-c.h"
#include "worker_internal.h"

/* The dealer never blocks (ZMQ_SNDTIMEO 0): a coordinator that is away
 * must not freeze the loop that watches signals and render threads.
 * Returns 0, or -1 with errno EAGAIN when the queue to it is full. */
static int send_msg(worker *w, Rfarm__WorkerMsg *m) {
    if (rf_wire_send_pb(w->dealer, &m->base, 0) != 0) {
        if (errno != EAGAIN)
            rf_warn(LOG, "send to coordinator failed error=\"%s\"", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static int send_hello_now(worker *w) {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char engines[256];
    snprintf(engines, sizeof engines, "%s", w->engines);
    char *list[32];
    size_t n = 0;
    for (char *save = NULL, *e = strtok_r(engines, ",", &save); e && n < 32;
         e = strtok_r(NULL, ",", &save))
        list[n++] = e;
    Rfarm__Hello h = RFARM__HELLO__INIT;
    h.worker_id = w->id;
    h.n_engines = n;
    h.engines = list;
    h.gpus = (uint32_t)kn_gpu_count(w->kn);
    h.capacity = w->cfg.capacity;
    h.compute = (char *)kn_backend(w->kn);
    h.hostname = host;
    h.pid = (uint32_t)getpid();
    Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
    m.body_case = RFARM__WORKER_MSG__BODY_HELLO;
    m.hello = &h;
    return send_msg(w, &m);
}

/* Hello and credit must reach the coordinator eventually, in that order:
 * what could not be sent is owed and retried on every turn of the loop. */
static void flush_control(worker *w) {
    if (w->hello_owed) {
        if (send_hello_now(w) != 0)
            return;
        w->hello_owed = 0;
    }
    if (w->credit_owed) {
        Rfarm__Credit c = RFARM__CREDIT__INIT;
        c.n = w->credit_owed;
        Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
        m.body_case = RFARM__WORKER_MSG__BODY_CREDIT;
        m.credit = &c;
        if (send_msg(w, &m) == 0)
            w->credit_owed = 0;
    }
}

static void send_credit(worker *w, unsigned n) {
    w->credit_owed += n;
    flush_control(w);
}

static void send_hello(worker *w) {
    w->hello_owed = 1;
    w->credit_owed = 0; /* a new hello starts the coordinator's count at zero */
    flush_control(w);
}

/* Refuse an assignment: a failure, or with handed_back a segment given
 * back untouched (the worker is stopping). */
static void send_refusal(worker *w, const Rfarm__Assign *a, const char *why, int handed_back) {
    Rfarm__SegmentFailed f = RFARM__SEGMENT_FAILED__INIT;
    f.job_id = a->job_id;
    f.segment = a->segment;
    f.attempt = a->attempt;
    f.epoch = a->epoch;
    f.handed_back = handed_back;
    f.error = (char *)why;
    Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
    m.body_case = RFARM__WORKER_MSG__BODY_FAILED;
    m.failed = &f;
    send_msg(w, &m);
}

static void slot_clear(slot *s) {
    free(s->job_id);
    free(s->prompt);
    free(s->engine);
    free(s->params);
    free(s->spool_part);
    s->job_id = s->prompt = s->engine = s->params = s->spool_part = NULL;
    s->in_use = 0;
    s->finished = 0;
    s->credited = 0;
}

static void send_failed(worker *w, const Rfarm__Assign *a, const char *why) {
    send_refusal(w, a, why, 0);
}

static void on_assign(worker *w, const Rfarm__Assign *a) {
    if (w->draining) {
        /* Sent before the coordinator heard we are draining. */
        rf_info(LOG, "segment handed back job=%s seg=%u attempt=%u reason=draining", a->job_id,
                a->segment, a->attempt);
        send_refusal(w, a, "worker is draining", 1);
        return;
    }
    slot *s = NULL;
    for (unsigned i = 0; i < w->cfg.capacity; i++)
        if (!w->slots[i].in_use) {
            s = &w->slots[i];
            break;
        }
    if (!s) {
        /* Not the segment's fault: give it back untouched. */
        send_refusal(w, a, "worker has no free slot (more assignments than credit granted)", 1);
        return;
    }
    if (!rf_list_has(w->engines, a->engine)) {
        char why[128];
        snprintf(why, sizeof why, "worker does not run engine '%s'", a->engine);
        send_failed(w, a, why);
        send_credit(w, 1);
        return;
    }
    s->job_id = strdup(a->job_id);
    s->prompt = strdup(a->prompt);
    s->engine = strdup(a->engine);
    s->params = strdup(a->params_json[0] ? a->params_json : "{}");
    if (a->spool_part[0] && w->spool_shared)
        s->spool_part = strdup(a->spool_part);
    if (!s->job_id || !s->prompt || !s->engine || !s->params ||
        (a->spool_part[0] && w->spool_shared && !s->spool_part)) {
        slot_clear(s);
        send_failed(w, a, "worker out of memory");
        send_credit(w, 1);
        return;
    }
    s->seg = (engine_segment){
        .job_id = s->job_id,
        .segment = a->segment,
        .attempt = a->attempt,
        .first_frame = a->first_frame,
        .frames = a->frames,
        .job_frames = a->job_frames,
        .width = a->width,
        .height = a->height,
        .fps_num = a->fps_num,
        .fps_den = a->fps_den,
        .seed = a->seed,
        .prompt = s->prompt,
        .params_json = s->params,
    };
    s->epoch = a->epoch;
    s->log_lines = 0;
    atomic_store(&s->frames_in_spool, 0);
    atomic_store(&s->stop, 0);
    s->in_use = 1;
    s->finished = 0;
    s->started_ms = rf_mono_ms();
    if (worker_slot_start(s) != 0) {
        slot_clear(s);
        send_failed(w, a, "worker cannot start a render thread");
        send_credit(w, 1);
        return;
    }
    w->busy++;
    rf_info(LOG, "segment started job=%s seg=%u attempt=%u first=%u frames=%u engine=%s",
            a->job_id, a->segment, a->attempt, a->first_frame, a->frames, a->engine);
}

/* The coordinator no longer wants this attempt (its job was cancelled or
 * failed): stop it; the render thread ends and the slot is reaped as
 * usual, which grants the credit back. */
static void on_cancel(worker *w, const Rfarm__Cancel *c) {
    for (unsigned i = 0; i < w->cfg.capacity; i++) {
        slot *s = &w->slots[i];
        if (s->in_use && s->seg.segment == c->segment && s->seg.attempt == c->attempt &&
            s->epoch == c->epoch && strcmp(s->job_id, c->job_id) == 0) {
            atomic_store(&s->stop, 1);
            rf_info(LOG, "segment cancelled job=%s seg=%u attempt=%u", c->job_id, c->segment,
                    c->attempt);
            return;
        }
    }
}

/* Whether the spool the Welcome names is one this worker can write into:
 * its key file there must hold the Welcome's key. */
static void check_spool(worker *w, const Rfarm__Welcome *wel) {
    int shared = 0;
    if (w->cfg.share_spool && wel->spool[0] == '/' && wel->spool_key[0]) {
        char path[4096], key[64] = "";
        snprintf(path, sizeof path, "%s/.spool-key", wel->spool);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(key, sizeof key, f))
                key[strcspn(key, "\n")] = '\0';
            fclose(f);
        }
        shared = strcmp(key, wel->spool_key) == 0;
    }
    if (shared != w->spool_shared || !w->spool_checked) {
        rf_info(LOG, "%s the coordinator's spool dir=%s", shared ? "sharing" : "not sharing",
                wel->spool[0] ? wel->spool : "-");
        w->spool_checked = 1;
        w->spool_shared = shared;
        w->beat_now = 1; /* the coordinator learns it from a heartbeat */
    }
}

static void on_coordinator_message(worker *w, int *welcomed) {
    rf_parts p;
    if (rf_wire_recv(w->dealer, &p, ZMQ_DONTWAIT) != 0)
        return;
    Rfarm__CoordMsg *m =
        p.n >= 1 ? rfarm__coord_msg__unpack(NULL, rf_part_size(&p, 0), rf_part_data(&p, 0)) : NULL;
    if (!m) {
        rf_warn(LOG, "malformed message from coordinator");
    } else if (m->body_case == RFARM__COORD_MSG__BODY_WELCOME) {
        if (m->welcome->heartbeat_ms)
            w->heartbeat_ms = m->welcome->heartbeat_ms;
        if (m->welcome->hello_again) {
            /* The coordinator lost track of us (it restarted): introduce
             * ourselves again and re-grant the credit we have free. What we
             * are rendering now it has re-queued; finish it anyway, its
             * result will be recognised as stale. */
            rf_info(LOG, "coordinator asked for hello again");
            send_hello(w);
            send_credit(w, w->cfg.capacity - w->busy);
        } else if (!*welcomed) {
            rf_info(LOG, "worker connected id=%s coordinator=%s", w->id, w->cfg.connect);
        }
        *welcomed = 1;
        check_spool(w, m->welcome);
    } else if (m->body_case == RFARM__COORD_MSG__BODY_ASSIGN) {
        on_assign(w, m->assign);
    } else if (m->body_case == RFARM__COORD_MSG__BODY_CANCEL) {
        on_cancel(w, m->cancel);
    }
    if (m)
        rfarm__coord_msg__free_unpacked(m, NULL);
    rf_parts_close(&p);
}

/* Forward one message from a render thread. Returns 1 when it was the end
 * of a segment (the slot can be reaped). */
static int on_render_message(worker *w, int forward) {
    rf_parts p;
    if (rf_wire_recv(w->pull, &p, ZMQ_DONTWAIT) != 0)
        return 0;
    if (p.n < 2 || rf_part_size(&p, 0) != 2) {
        rf_parts_close(&p);
        return 0;
    }
    const unsigned char *tag = rf_part_data(&p, 0);
    unsigned idx = tag[0];
    int end = tag[1] == TAG_END && idx < w->cfg.capacity;
    Rfarm__WorkerMsg *m = NULL;
    if (end) {
        w->slots[idx].finished = 1;
        m = rfarm__worker_msg__unpack(NULL, rf_part_size(&p, 1), rf_part_data(&p, 1));
        if (m && m->body_case == RFARM__WORKER_MSG__BODY_DONE)
            w->segments_done++;
    }
    if (forward && m && !w->draining &&
        (m->body_case == RFARM__WORKER_MSG__BODY_DONE ||
         m->body_case == RFARM__WORKER_MSG__BODY_FAILED)) {
        /* The result carries the slot's credit back. */
        if (m->body_case == RFARM__WORKER_MSG__BODY_DONE)
            m->done->credit = 1;
        else
            m->failed->credit = 1;
        if (send_msg(w, m) == 0)
            w->slots[idx].credited = 1;
    } else if (forward) {
        for (int i = 1; i < p.n; i++) {
            zmq_msg_t out;
            zmq_msg_init(&out);
            zmq_msg_move(&out, &p.part[i]); /* hands the buffer over without a copy */
            if (zmq_msg_send(&out, w->dealer, i + 1 < p.n ? ZMQ_SNDMORE : 0) < 0) {
                zmq_msg_close(&out);
                break;
            }
        }
    }
    if (m)
        rfarm__worker_msg__free_unpacked(m, NULL);
    rf_parts_close(&p);
    return end;
}

/* A heartbeat lists the segments in hand: the coordinator re-queues any it
 * thinks we hold but we do not (an Assign or a result lost on the way). */
static void send_heartbeat(worker *w) {
    Rfarm__Held held[MAX_SLOTS];
    Rfarm__Held *ptrs[MAX_SLOTS];
    size_t n = 0;
    for (unsigned i = 0; i < w->cfg.capacity; i++) {
        slot *s = &w->slots[i];
        if (!s->in_use || s->finished)
            continue;
        rfarm__held__init(&held[n]);
        held[n].job_id = s->job_id;
        held[n].segment = s->seg.segment;
        held[n].attempt = s->seg.attempt;
        held[n].epoch = s->epoch;
        ptrs[n] = &held[n];
        n++;
    }
    Rfarm__Heartbeat hb = RFARM__HEARTBEAT__INIT;
    hb.busy = w->busy;
    hb.n_held = n;
    hb.held = ptrs;
    hb.draining = w->draining;
    hb.spool_shared = w->spool_shared;
    Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
    m.body_case = RFARM__WORKER_MSG__BODY_HEARTBEAT;
    m.heartbeat = &hb;
    send_msg(w, &m);
}

static void reap(worker *w, int grant) {
    for (unsigned i = 0; i < w->cfg.capacity; i++) {
        slot *s = &w->slots[i];
        if (!s->in_use || !s->finished)
            continue;
        rf_info(LOG, "segment finished job=%s seg=%u attempt=%u ms=%llu frames_in_spool=%u",
                s->job_id, s->seg.segment, s->seg.attempt,
                (unsigned long long)(rf_mono_ms() - s->started_ms),
                atomic_load(&s->frames_in_spool));
        int credited = s->credited;
        slot_clear(s);
        w->busy--;
        if (grant && !credited)
            send_credit(w, 1);
    }
}

int worker_run(worker *w, volatile sig_atomic_t *signals) {
    rf_info(LOG, "worker ready id=%s coordinator=%s engines=%s capacity=%u compute=%s reason=\"%s\"",
            w->id, w->cfg.connect, w->engines, w->cfg.capacity, kn_backend(w->kn), kn_reason(w->kn));
    send_hello(w);
    send_credit(w, w->cfg.capacity);
    int welcomed = 0;
    int draining = 0, abandoning = 0;
    uint64_t drain_deadline = 0;
    uint64_t next_beat = rf_mono_ms() + w->heartbeat_ms;
    for (;;) {
        if (*signals && !draining) {
            draining = 1;
            w->draining = 1;
            next_beat = 0; /* tell the coordinator now: it stops assigning */
            drain_deadline = rf_mono_ms() + w->cfg.drain_ms;
            rf_info(LOG, "draining segments_in_hand=%u deadline_ms=%u", w->busy, w->cfg.drain_ms);
        }
        if (draining && !abandoning && (*signals > 1 || rf_mono_ms() >= drain_deadline)) {
            abandoning = 1;
            rf_warn(LOG, "handing back segments_in_hand=%u", w->busy);
            for (unsigned i = 0; i < w->cfg.capacity; i++)
                atomic_store(&w->slots[i].stop, 1);
        }
        if (draining && w->busy == 0)
            break;

        int dealer_ev = 0;
        size_t sz = sizeof dealer_ev;
        zmq_getsockopt(w->dealer, ZMQ_EVENTS, &dealer_ev, &sz);
        zmq_pollitem_t items[2] = {
            {w->dealer, 0, ZMQ_POLLIN, 0},
            /* Take frames from render threads only while the coordinator
             * socket can take them: that is the back-pressure. Abandoned
             * segments' frames are thrown away, so they are always taken:
             * a render thread blocked on a full queue could not stop. */
            {w->pull, 0, (abandoning || (dealer_ev & ZMQ_POLLOUT)) ? ZMQ_POLLIN : 0, 0},
        };
        rf_log_flush(); /* the last turn's lines, in one write */
        int n = zmq_poll(items, 2, 100);
        if (n < 0 && errno != EINTR) {
            rf_error(LOG, "poll failed error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            on_coordinator_message(w, &welcomed);
        if (n > 0 && (items[1].revents & ZMQ_POLLIN)) {
            for (int i = 0; i < 32; i++) {
                on_render_message(w, !abandoning);
                int ev = 0;
                sz = sizeof ev;
                zmq_getsockopt(w->pull, ZMQ_EVENTS, &ev, &sz);
                if (!(ev & ZMQ_POLLIN))
                    break;
                zmq_getsockopt(w->dealer, ZMQ_EVENTS, &ev, &sz);
                if (!abandoning && !(ev & ZMQ_POLLOUT))
                    break;
            }
            reap(w, !draining);
        }
        flush_control(w);
        uint64_t now = rf_mono_ms();
        if (now >= next_beat || w->beat_now) {
            w->beat_now = 0;
            send_heartbeat(w);
            next_beat = now + w->heartbeat_ms;
        }
    }
    Rfarm__Bye bye = RFARM__BYE__INIT;
    bye.reason = abandoning ? "worker stopped; segments in hand handed back" : "worker drained";
    Rfarm__WorkerMsg m = RFARM__WORKER_MSG__INIT;
    m.body_case = RFARM__WORKER_MSG__BODY_BYE;
    m.bye = &bye;
    send_msg(w, &m);
    rf_info(LOG, "worker stopped id=%s segments_done=%llu", w->id,
            (unsigned long long)w->segments_done);
    return 0;
}

int worker_new(const worker_config *cfg, worker **out, char *err, size_t errlen) {
    *out = NULL;
    if (!rf_id_valid(cfg->id)) {
        snprintf(err, errlen, "id: '%s' must be 1 to 64 characters of A-Z a-z 0-9 . _ -, not "
                 "starting with '.'", cfg->id);
        return -1;
    }
    if (cfg->capacity < 1 || cfg->capacity > MAX_SLOTS) {
        snprintf(err, errlen, "capacity: must be between 1 and %d", MAX_SLOTS);
        return -1;
    }
    worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "worker: out of memory");
        return -1;
    }
    w->cfg = *cfg;
    snprintf(w->id, sizeof w->id, "%s", cfg->id);
    w->heartbeat_ms = 1000;
    /* Engines: the requested ones, each checked against this build's. */
    const char *const *known = engine_names();
    if (cfg->engines) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", cfg->engines);
        for (char *save = NULL, *e = strtok_r(tmp, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
            int ok = 0;
            for (size_t i = 0; known[i]; i++)
                ok |= strcmp(known[i], e) == 0;
            if (!ok) {
                snprintf(err, errlen, "engines: unknown engine '%s'", e);
                free(w);
                return -1;
            }
            size_t len = strlen(w->engines);
            snprintf(w->engines + len, sizeof w->engines - len, "%s%s", len ? "," : "", e);
        }
    } else {
        for (size_t i = 0; known[i]; i++) {
            size_t len = strlen(w->engines);
            snprintf(w->engines + len, sizeof w->engines - len, "%s%s", i ? "," : "", known[i]);
        }
    }
    for (unsigned i = 0; i < MAX_SLOTS; i++) {
        w->slots[i].w = w;
        w->slots[i].index = i;
        pthread_mutex_init(&w->slots[i].mu, NULL);
        pthread_cond_init(&w->slots[i].cv, NULL);
    }
    if (kn_new(cfg->kernels, &w->kn, err, errlen) != 0) {
        free(w);
        return -1;
    }
    /* Enough for every frame that can be on its way at once (4 queued
     * per render thread, 16 in the coordinator's socket), so that steady
     * sending allocates nothing; at most 64. */
    unsigned keep = 4 * cfg->capacity + 20;
    if (engine_cache_new(&w->cache, err, errlen) != 0) {
        kn_free(w->kn);
        free(w);
        return -1;
    }
    if (!(w->frames = fpool_new(keep < 64 ? keep : 64))) {
        snprintf(err, errlen, "worker: out of memory");
        engine_cache_free(w->cache);
        kn_free(w->kn);
        free(w);
        return -1;
    }
    snprintf(w->endpoint, sizeof w->endpoint, "inproc://worker-frames-%p", (void *)w);
    w->zctx = zmq_ctx_new();
    if (!w->zctx || !(w->dealer = rf_wire_socket(w->zctx, ZMQ_DEALER, 2000, err, errlen)) ||
        !(w->pull = rf_wire_socket(w->zctx, ZMQ_PULL, 0, err, errlen))) {
        worker_free(w);
        return -1;
    }
    int hwm = 16, no_wait = 0;
    zmq_setsockopt(w->dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->dealer, ZMQ_SNDTIMEO, &no_wait, sizeof no_wait);
    zmq_setsockopt(w->pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->dealer, ZMQ_ROUTING_ID, w->id, strlen(w->id));
    int ivl = 100, ivl_max = 2000;
    /* ZeroMQ's own heartbeats: a coordinator whose machine vanished without
     * closing the connection is noticed within seconds, not after TCP's
     * minutes, and the worker reconnects to its replacement. */
    int hb_ivl = 1000, hb_timeout = 5000;
    zmq_setsockopt(w->dealer, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl);
    zmq_setsockopt(w->dealer, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    zmq_setsockopt(w->dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(w->dealer, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    if (zmq_bind(w->pull, w->endpoint) != 0 || zmq_connect(w->dealer, cfg->connect) != 0) {
        snprintf(err, errlen, "connect: cannot connect to %s: %s", cfg->connect,
                 zmq_strerror(errno));
        worker_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void worker_free(worker *w) {
    if (!w)
        return;
    for (unsigned i = 0; i < MAX_SLOTS; i++) {
        slot *s = &w->slots[i];
        if (!s->in_use)
            continue;
        atomic_store(&s->stop, 1);
        /* Drain its queue so a thread blocked on a full socket can finish. */
        while (!s->finished) {
            zmq_pollitem_t it = {w->pull, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, 100) > 0)
                on_render_message(w, 0);
        }
        slot_clear(s);
    }
    for (unsigned i = 0; i < MAX_SLOTS; i++) {
        worker_slot_quit(&w->slots[i]);
        pthread_mutex_destroy(&w->slots[i].mu);
        pthread_cond_destroy(&w->slots[i].cv);
    }
    if (w->dealer)
        zmq_close(w->dealer);
    if (w->pull)
        zmq_close(w->pull);
    if (w->zctx)
        zmq_ctx_term(w->zctx);
    /* After every render thread is joined: nothing leases from it now. */
    engine_cache_free(w->cache);
    /* After the context: ZeroMQ has given back every buffer it held. */
    fpool_free(w->frames);
    kn_free(w->kn);
    free(w);
}
