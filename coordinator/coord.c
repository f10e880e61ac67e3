/* coord — the coordinator's event loop and life cycle.
 *
 * One thread owns the sockets (workers, clients, stitch events), the
 * in-memory cache of jobs and workers, and the conversation with Redis;
 * the work is split by concern into coord_jobs.c, coord_workers.c and
 * client_api.c. Stitching runs on the stitch pool's threads and reports
 * back through an inproc socket polled here.
 *
 * Redis is written at every state change so that dashboards and `rfarm
 * status` see the truth. When Redis is away, running work goes on: writes
 * fail fast (store.c spaces reconnects), new jobs are refused, and jobs
 * that end keep their final record in memory. When Redis answers again,
 * the loop writes every unfinished job, every worker, the kept final
 * records and the counters again: Redis catches up with what happened.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "coord_internal.h"
#include "http.h"
#include "rf_util.h"
#include "rf_wire.h"

#define EVENTS_ENDPOINT_FMT "inproc://stitch-events-%p"
#define COMMITS_ENDPOINT_FMT "inproc://commits-%p"
/* The client socket's second address: the HTTP server's way in. */
#define CLIENT_INPROC_FMT "inproc://clients-%p"
#define STATS_EVERY_MS 1000
#define STALL_MS 1000

void coord_store_warn(coord *c, int rc, const char *what) {
    if (rc != 0)
        rf_warn(LOG, "redis write failed what=%s error=\"%s\"", what, store_last_error(c->st));
}

int coord_send_to_worker(coord *c, const char *id, const Rfarm__CoordMsg *m) {
    if (rf_wire_send_bytes(c->wsock, id, strlen(id), 1) != 0 ||
        rf_wire_send_pb(c->wsock, &m->base, 0) != 0) {
        rf_warn(LOG, "send to worker failed worker=%s error=\"%s\"", id, zmq_strerror(errno));
        return -1;
    }
    return 0;
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
    if (ev.frames > j->frames_stitched)
        c->stats.frames_stitched += ev.frames - j->frames_stitched;
    j->frames_stitched = ev.frames;
    switch (ev.kind) {
    case STITCH_PROGRESS:
        coord_store_warn(c, store_job_progress(c->st, ev.job, j->segments_done, ev.frames),
                         "progress");
        break;
    case STITCH_DONE:
        rf_info(LOG, "video written job=%s path=%s frames=%u bytes=%llu", ev.job,
                j->spec->output_path, ev.frames, (unsigned long long)ev.bytes);
        coord_job_finish(c, j, "done", NULL, ev.bytes);
        break;
    case STITCH_FAILED:
        coord_job_finish(c, j, "failed", ev.msg, 0);
        break;
    }
}

/* One message of the commit thread: the outcomes of one group. */
static void on_commit_result(coord *c) {
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->commits_in, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;
    }
    size_t n = zmq_msg_size(&msg) / sizeof(commit_result);
    for (size_t i = 0; i < n; i++) {
        commit_result res;
        memcpy(&res, (const char *)zmq_msg_data(&msg) + i * sizeof res, sizeof res);
        res.job[sizeof res.job - 1] = '\0';
        res.msg[sizeof res.msg - 1] = '\0';
        coord_on_commit(c, &res);
    }
    zmq_msg_close(&msg);
}

/* ---- counters and Redis catch-up ---- */

static void write_stats(coord *c) {
    const store_stat st[] = {
        {"stale_frames", c->stats.stale_frames},
        {"stale_results", c->stats.stale_results},
        {"segments_rendered", c->stats.segments_rendered},
        {"segments_retried", c->stats.segments_retried},
        {"segments_lost", c->stats.segments_lost},
        {"jobs_recovered", c->stats.jobs_recovered},
    };
    if (store_stats(c->st, st, sizeof st / sizeof st[0]) == 0)
        c->stats_dirty = 0;
}

static void catch_up(coord *c) {
    rf_info(LOG, "redis is back; writing current state jobs=%zu workers=%zu",
            rf_map_len(c->jobs), rf_map_len(c->workers));
    coord_jobs_resync(c);
    coord_workers_resync(c);
    coord_batches_resync(c);
    write_stats(c);
    coord_store_warn(c, store_event(c->st, "redis_recovered", NULL, -1, NULL, NULL), "event");
    coord_store_warn(c, store_flush(c->st), "catch-up");
}

/* ---- life cycle ---- */

/* Workers that can open the spool under the same path (same machine, or a
 * shared volume) write frames into it themselves instead of sending them:
 * the spool is named by its absolute path, and a random key in its
 * .spool-key file, also sent in Welcome, proves it is the same spool and
 * not a look-alike path elsewhere. */
static int spool_key_write(coord *c, char *err, size_t errlen) {
    char abs[PATH_MAX];
    errno = 0;
    if (!realpath(c->spool, abs) || rf_fmt(c->spool, sizeof c->spool, "%s", abs) != 0) {
        snprintf(err, errlen, "spool: cannot resolve %s: %s", c->spool,
                 errno ? strerror(errno) : "path too long");
        return -1;
    }
    rf_new_id("spool", c->spool_key, sizeof c->spool_key);
    char tmp[RF_PATH_MAX + 32], path[RF_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/.spool-key.tmp", c->spool);
    snprintf(path, sizeof path, "%s/" COORD_SPOOL_KEY_FILE, c->spool);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%s\n", c->spool_key) > 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "spool: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

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
    if (spool_key_write(c, err, errlen) != 0 ||
        spool_packs_new(c->spool, &c->packs, err, errlen) != 0) {
        free(c);
        return -1;
    }
    /* Any value but 0 (what a message without the field carries). */
    while (!c->epoch)
        if (getentropy(&c->epoch, sizeof c->epoch) != 0)
            c->epoch = (uint32_t)rf_wall_ms() ^ (uint32_t)getpid();
    c->jobs = rf_map_new();
    c->workers = rf_map_new();
    c->health = rf_map_new();
    c->batches = rf_map_new();
    c->sched = sched_new();
    c->zctx = zmq_ctx_new();
    if (!c->jobs || !c->workers || !c->health || !c->batches || !c->sched || !c->zctx) {
        snprintf(err, errlen, "coordinator: out of memory");
        goto fail;
    }
    store_opts so = {.addr = cfg->redis, .prefix = cfg->prefix};
    if (store_new(&so, &c->st, err, errlen) != 0)
        goto fail;
    /* Writes of one turn of the loop go to Redis together (store.h). */
    store_set_deferred(c->st, 1);
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
    snprintf(ep, sizeof ep, COMMITS_ENDPOINT_FMT, (void *)c);
    if (!(c->commits_in = rf_wire_socket(c->zctx, ZMQ_PULL, 0, err, errlen)))
        goto fail;
    int no_limit = 0;
    zmq_setsockopt(c->commits_in, ZMQ_RCVHWM, &no_limit, sizeof no_limit);
    if (zmq_bind(c->commits_in, ep) != 0) {
        snprintf(err, errlen, "coordinator: bind %s: %s", ep, zmq_strerror(errno));
        goto fail;
    }
    if (commit_pool_new(c->zctx, ep, &c->commits, err, errlen) != 0)
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
    snprintf(ep, sizeof ep, CLIENT_INPROC_FMT, (void *)c);
    if (zmq_bind(c->csock, ep) != 0) {
        snprintf(err, errlen, "coordinator: bind %s: %s", ep, zmq_strerror(errno));
        goto fail;
    }
    if (coord_jobs_recover(c, err, errlen) != 0)
        goto fail;
    if (cfg->http_bind) {
        http_opts ho = {.bind = cfg->http_bind, .token = cfg->http_token,
                        .chart_js = cfg->chart_js, .redis = cfg->redis, .prefix = cfg->prefix,
                        .zctx = c->zctx, .client_ep = ep};
        if (http_new(&ho, &c->http, err, errlen) != 0)
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
    coord_job_free(value);
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
    http_free(c->http); /* first: it talks to the loop's sockets */
    if (c->jobs) {
        /* Jobs stay unfinished in Redis, their done segments in the spool:
         * a restarted coordinator is where they continue. */
        rf_map_each(c->jobs, free_job_entry, NULL);
        rf_map_free(c->jobs);
    }
    if (c->workers) {
        rf_map_each(c->workers, free_worker_entry, NULL);
        rf_map_free(c->workers);
    }
    coord_finals_free(c);
    commit_pool_free(c->commits);
    spool_packs_free(c->packs);
    coord_health_free_all(c);
    coord_batches_free(c);
    stitch_pool_free(c->pool);
    sched_free(c->sched);
    if (c->wsock)
        zmq_close(c->wsock);
    if (c->csock)
        zmq_close(c->csock);
    if (c->events)
        zmq_close(c->events);
    if (c->commits_in)
        zmq_close(c->commits_in);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    store_free(c->st);
    free(c);
}

/* Up to `max` messages of one socket: bounded batches keep one busy peer
 * from starving the others. */
static void drain(coord *c, void *sock, int max, void (*handle)(coord *)) {
    for (int i = 0; i < max; i++) {
        int ev = 0;
        size_t sz = sizeof ev;
        handle(c);
        zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz);
        if (!(ev & ZMQ_POLLIN))
            break;
    }
}

int coord_write_turn(coord *c) {
    coord_workers_flush(c);
    coord_batches_flush(c);
    coord_jobs_flush(c);
    int flushed = store_flush(c->st);
    coord_store_warn(c, flushed, "state");
    coord_finals_settle(c, flushed);
    return flushed;
}

int coord_run(coord *c, volatile sig_atomic_t *stop) {
    char http[64] = "off";
    if (c->http)
        snprintf(http, sizeof http, "%u", http_port(c->http));
    rf_info(LOG, "coordinator ready workers=%s clients=%s redis=%s prefix=%s spool=%s blend=%s "
                 "reason=\"%s\" jobs_recovered=%llu http_port=%s metrics=%s",
            c->cfg.worker_bind, c->cfg.client_bind, c->cfg.redis, c->cfg.prefix, c->spool,
            stitch_pool_backend(c->pool), stitch_pool_backend_reason(c->pool),
            (unsigned long long)c->stats.jobs_recovered, http, c->cfg.metrics ? "on" : "off");
    uint64_t next_lease_check = rf_mono_ms() + 250, next_stats = 0;
    while (!*stop) {
        zmq_pollitem_t items[4] = {
            {c->wsock, 0, ZMQ_POLLIN, 0},
            {c->csock, 0, ZMQ_POLLIN, 0},
            {c->events, 0, ZMQ_POLLIN, 0},
            {c->commits_in, 0, ZMQ_POLLIN, 0},
        };
        rf_log_flush(); /* the last turn's lines, in one write */
        int n = zmq_poll(items, 4, 100);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rf_error(LOG, "poll failed error=\"%s\"", zmq_strerror(errno));
            return -1;
        }
        uint64_t now = rf_mono_ms(), busy_from = now;
        if (now >= next_lease_check) {
            coord_check_leases(c);
            next_lease_check = now + 250;
        }
        if (items[0].revents & ZMQ_POLLIN)
            drain(c, c->wsock, 256, coord_on_worker_message);
        if (items[1].revents & ZMQ_POLLIN)
            coord_client_request(c);
        if (items[2].revents & ZMQ_POLLIN)
            drain(c, c->events, 64, on_stitch_event);
        if (items[3].revents & ZMQ_POLLIN)
            drain(c, c->commits_in, 256, on_commit_result);
        if (store_poll(c->st))
            catch_up(c);
        if (c->stats_dirty && now >= next_stats && store_available(c->st)) {
            write_stats(c);
            next_stats = now + STATS_EVERY_MS;
        }
        coord_jobs_release_retries(c);
        coord_dispatch(c);
        coord_metrics_tick(c, now);
        if (coord_write_turn(c) == 0 && store_available(c->st))
            coord_batches_reap(c);
        /* Heartbeats that waited in the socket while the loop was stuck
         * (a hung Redis answers each command after a timeout) must not
         * cost the workers their leases. */
        uint64_t busy = rf_mono_ms() - busy_from;
        if (busy > STALL_MS)
            coord_workers_forgive(c, busy);
    }
    /* Nothing new is taken from here on; what Redis should know is written
     * now, the spool keeps finished segments for the next start. Commits
     * under way finish first, so their segments are recorded done. */
    commit_pool_free(c->commits);
    c->commits = NULL;
    drain(c, c->commits_in, 1 << 30, on_commit_result);
    if (c->stats_dirty)
        write_stats(c);
    c->mx.next_flush_ms = 0; /* the last counts too */
    coord_metrics_tick(c, rf_mono_ms());
    coord_write_turn(c);
    rf_info(LOG, "coordinator stopping jobs_unfinished=%zu stale_frames=%llu stale_results=%llu",
            rf_map_len(c->jobs), (unsigned long long)c->stats.stale_frames,
            (unsigned long long)c->stats.stale_results);
    return 0;
}
