/* store — Redis state through hiredis. See store.h for the key layout. */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_util.h"
#include "store_internal.h"

#define STORE_TIMEOUT_MS 1000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
/* Commands sent in one pipeline: one round trip each, and a bounded buffer. */

static int connect_redis(store *s) {
    if (s->rc) {
        redisFree(s->rc);
        s->rc = NULL;
    }
    /* Short: the coordinator's loop waits on every command. */
    struct timeval tv = {.tv_sec = STORE_TIMEOUT_MS / 1000,
                         .tv_usec = (STORE_TIMEOUT_MS % 1000) * 1000};
    if (strncmp(s->addr, "unix:", 5) == 0) {
        s->rc = redisConnectUnixWithTimeout(s->addr + 5, tv);
    } else {
        char host[200];
        int port = 6379;
        const char *colon = strrchr(s->addr, ':');
        if (colon) {
            size_t hl = (size_t)(colon - s->addr);
            if (hl >= sizeof host)
                hl = sizeof host - 1;
            memcpy(host, s->addr, hl);
            host[hl] = '\0';
            port = atoi(colon + 1);
        } else {
            snprintf(host, sizeof host, "%s", s->addr);
        }
        s->rc = redisConnectWithTimeout(host, port, tv);
    }
    if (!s->rc || s->rc->err) {
        snprintf(s->last_err, sizeof s->last_err, "cannot connect to Redis at %s: %s", s->addr,
                 s->rc ? s->rc->errstr : "out of memory");
        if (s->rc) {
            redisFree(s->rc);
            s->rc = NULL;
        }
        return -1;
    }
    redisSetTimeout(s->rc, tv);
    return 0;
}

/* Redis failed us: no new attempt before the backoff has passed, so that an
 * outage costs the coordinator's loop one failed try per period, not one
 * per write. With drop, the connection itself is gone. */
static void note_failure(store *s, int drop) {
    s->failures++;
    if (drop && s->rc) {
        redisFree(s->rc);
        s->rc = NULL;
    }
    s->outage = 1;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    s->retry_at_ms = rf_mono_ms() + s->backoff_ms;
}

/* Connected, or connect now if the backoff allows. */
static int ensure_connected(store *s) {
    if (s->rc)
        return 0;
    if (rf_mono_ms() < s->retry_at_ms) {
        snprintf(s->last_err, sizeof s->last_err, "Redis at %s is unavailable (reconnecting)",
                 s->addr);
        return -1;
    }
    if (connect_redis(s) != 0) {
        note_failure(s, 1);
        return -1;
    }
    return 0;
}

int store_poll(store *s) {
    store_flush(s);
    if (!s->outage || rf_mono_ms() < s->retry_at_ms)
        return 0;
    if (ensure_connected(s) != 0)
        return 0;
    /* A restarted Redis answers LOADING until its data is back: not yet. */
    redisReply *r = redisCommand(s->rc, "PING");
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    if (!ok) {
        note_failure(s, r == NULL);
        return 0;
    }
    s->outage = 0;
    s->backoff_ms = 0;
    return 1;
}

int store_available(const store *s) { return s->rc != NULL && !s->outage; }

uint64_t store_failures(const store *s) { return s->failures; }

int store_new(const store_opts *opts, store **out, char *err, size_t errlen) {
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "store: out of memory");
        return -1;
    }
    if (rf_fmt(s->addr, sizeof s->addr, "%s", opts->addr) != 0 ||
        rf_fmt(s->prefix, sizeof s->prefix, "%s", opts->prefix ? opts->prefix : "rfarm:") != 0) {
        snprintf(err, errlen, "store: Redis address or key prefix too long");
        free(s);
        return -1;
    }
    s->events_max = opts->events_max ? opts->events_max : 10000;
    if (connect_redis(s) != 0) {
        snprintf(err, errlen, "store: %s", s->last_err);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_free(store *s) {
    if (!s)
        return;
    store_flush(s); /* queued writes are not dropped */
    if (s->rc)
        redisFree(s->rc);
    free(s);
}

const char *store_last_error(const store *s) { return s->last_err; }

/* Run one command given as argv. On a broken connection, reconnect once
 * and retry (the server may have restarted between two commands): every
 * command here is idempotent or harmless to repeat. Any failure of the
 * connection, and a Redis still loading its data, count as an outage that
 * store_poll reports the end of, so the caller can write again what was
 * lost. */
/* The connection failed mid-command (s->last_err set): drop it. Returns 1
 * when it was closed by the server, which may be a restarted Redis that is
 * already back: worth one immediate retry. A timeout is not retried: a hung
 * Redis must not hold the loop twice. */
static int connection_broke(store *s) {
    int closed = s->rc->err == REDIS_ERR_EOF ||
                 (s->rc->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
    note_failure(s, 1);
    if (closed)
        s->retry_at_ms = 0;
    return closed;
}

redisReply *store_command(store *s, int argc, const char **argv, const size_t *argvlen) {
    /* Replies come back in order: queued writes' replies first. */
    store_flush(s);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ensure_connected(s) != 0)
            return NULL;
        redisReply *r = redisCommandArgv(s->rc, argc, argv, argvlen);
        if (r) {
            if (r->type == REDIS_REPLY_ERROR) {
                /* Our commands are well formed: an error reply (LOADING,
                 * MISCONF, READONLY, OOM...) means Redis cannot take writes
                 * now. Try again after the backoff. */
                snprintf(s->last_err, sizeof s->last_err, "Redis at %s: %s: %s", s->addr, argv[0],
                         r->str);
                note_failure(s, 0);
                freeReplyObject(r);
                return NULL;
            }
            return r;
        }
        snprintf(s->last_err, sizeof s->last_err, "Redis at %s: %s: %s", s->addr, argv[0],
                 s->rc->errstr);
        if (!connection_broke(s))
            break;
    }
    if (!s->rc)
        s->retry_at_ms = rf_mono_ms() + s->backoff_ms;
    return NULL;
}

/* Run n commands as one pipeline: all are sent, then every reply is read,
 * so n commands cost one round trip instead of n. Failures count as in
 * store_command: an error reply fails the batch (the remaining replies are
 * still read, so the connection stays in step with its replies) and a
 * broken connection is an outage, retried once at once when the server
 * closed it. Every command given here must therefore be harmless to repeat.
 * Returns 0 when every command succeeded, else -1 with s->last_err set. */
int store_run_pipelined(store *s, store_argv *cmds, size_t n) {
    return store_run_pipelined_each(s, cmds, n, NULL, NULL);
}

static void int_reply(void *ctx, size_t i, const redisReply *r) {
    ((long long *)ctx)[i] = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}

int store_run_pipelined_ints(store *s, store_argv *cmds, size_t n, long long *ints) {
    return store_run_pipelined_each(s, cmds, n, int_reply, ints);
}

int store_run_pipelined_each(store *s, store_argv *cmds, size_t n,
                             void (*each)(void *ctx, size_t i, const redisReply *r), void *ctx) {
    if (n == 0)
        return 0;
    store_flush(s);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ensure_connected(s) != 0)
            return -1;
        /* Appending only queues the command in hiredis' buffer; it fails
         * only when out of memory, which leaves the context unusable. */
        size_t sent = 0, got = 0;
        for (; sent < n; sent++) {
            store_argv *c = &cmds[sent];
            if (redisAppendCommandArgv(s->rc, c->n, c->v, c->len) != REDIS_OK)
                break;
        }
        const char *failed = NULL; /* the first command with an error reply */
        while (sent == n && got < n) {
            redisReply *r = NULL;
            if (redisGetReply(s->rc, (void **)&r) != REDIS_OK || !r)
                break;
            if (each)
                each(ctx, got, r);
            if (r->type == REDIS_REPLY_ERROR && !failed) {
                failed = cmds[got].v[0];
                snprintf(s->last_err, sizeof s->last_err, "Redis at %s: %s: %s", s->addr, failed,
                         r->str);
            }
            freeReplyObject(r);
            got++;
        }
        if (got == n) {
            if (!failed)
                return 0;
            note_failure(s, 0);
            return -1;
        }
        snprintf(s->last_err, sizeof s->last_err, "Redis at %s: %s: %s", s->addr,
                 cmds[sent < n ? sent : got].v[0],
                 s->rc->errstr[0] ? s->rc->errstr : "no reply");
        if (!connection_broke(s))
            break;
    }
    if (!s->rc)
        s->retry_at_ms = rf_mono_ms() + s->backoff_ms;
    return -1;
}

void store_arg(store_argv *a, const char *s) {
    if (a->n < STORE_MAX_ARGS) {
        a->v[a->n] = s ? s : "";
        a->len[a->n] = strlen(a->v[a->n]);
        a->n++;
    }
}

void store_arg_u64(store_argv *a, uint64_t v) {
    if (a->n < STORE_MAX_ARGS) {
        snprintf(a->own[a->n], sizeof a->own[a->n], "%llu", (unsigned long long)v);
        store_arg(a, a->own[a->n]);
    }
}

static void arg_i64(store_argv *a, int64_t v) {
    if (a->n < STORE_MAX_ARGS) {
        snprintf(a->own[a->n], sizeof a->own[a->n], "%lld", (long long)v);
        store_arg(a, a->own[a->n]);
    }
}

void store_set_deferred(store *s, int on) {
    if (!on)
        store_flush(s);
    s->deferred = on;
}

int store_flush(store *s) {
    int rc = 0;
    while (s->pending && s->rc) {
        redisReply *r = NULL;
        if (redisGetReply(s->rc, (void **)&r) != REDIS_OK || !r) {
            snprintf(s->last_err, sizeof s->last_err, "Redis at %s: %s", s->addr,
                     s->rc->errstr[0] ? s->rc->errstr : "no reply");
            note_failure(s, 1);
            rc = -1;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(s->last_err, sizeof s->last_err, "Redis at %s: %s", s->addr, r->str);
            note_failure(s, 0);
            rc = -1;
        }
        freeReplyObject(r);
        s->pending--;
    }
    if (s->pending) { /* the connection went away with them */
        s->pending = 0;
        s->failures++;
        rc = -1;
    }
    return rc;
}

int store_run(store *s, store_argv *a) {
    if (s->deferred) {
        /* Queued in hiredis' buffer; store_flush sends it with the others
         * and reads the replies, all in one round trip. */
        if (ensure_connected(s) != 0)
            return -1;
        if (redisAppendCommandArgv(s->rc, a->n, a->v, a->len) != REDIS_OK) {
            snprintf(s->last_err, sizeof s->last_err, "Redis at %s: %s: %s", s->addr, a->v[0],
                     s->rc->errstr);
            s->pending = 0;
            note_failure(s, 1);
            return -1;
        }
        s->pending++;
        return 0;
    }
    redisReply *r = store_command(s, a->n, a->v, a->len);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

void store_key(const store *s, char *buf, size_t len, const char *fmt, const char *id, long k) {
    char tail[256];
    snprintf(tail, sizeof tail, fmt, id, k);
    snprintf(buf, len, "%s%s", s->prefix, tail);
}

/* Writes the record of each of a job's nseg segments, or with seg_first
 * NULL deletes them, pipelined in batches: a job of thousands of segments
 * must not cost thousands of round trips. Writing stops at the first
 * failure; deleting is best effort and tries every batch. */
int store_job_state(store *s, const char *job, const char *state, const char *error) {
    return store_job_state_at(s, job, state, error, 0, 0);
}

int store_job_state_at(store *s, const char *job, const char *state, const char *error,
                       uint64_t at_ms, uint64_t started_ms) {
    char jk[256];
    store_key(s, jk, sizeof jk, "job:%s", job, 0);
    uint64_t now = at_ms ? at_ms : rf_wall_ms();
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, jk);
    store_arg(&h, "state");
    store_arg(&h, state);
    if (error) {
        store_arg(&h, "error");
        store_arg(&h, error);
    }
    int terminal = strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
                   strcmp(state, "cancelled") == 0;
    if (terminal) {
        store_arg(&h, "finished_ms");
        store_arg_u64(&h, now);
    } else if (strcmp(state, "running") == 0) {
        store_arg(&h, "started_ms");
        store_arg_u64(&h, now);
    }
    if (started_ms && strcmp(state, "running") != 0) {
        store_arg(&h, "started_ms");
        store_arg_u64(&h, started_ms);
    }
    int rc = store_run(s, &h);
    if (rc == 0 && terminal) {
        char ak[256];
        snprintf(ak, sizeof ak, "%sjobs:active", s->prefix);
        store_argv z = {0};
        store_arg(&z, "SREM");
        store_arg(&z, ak);
        store_arg(&z, job);
        rc = store_run(s, &z);
    }
    return rc;
}

int store_job_counts(store *s, const char *job, const char *f1, uint64_t v1, const char *f2,
                     uint64_t v2) {
    char jk[256];
    store_key(s, jk, sizeof jk, "job:%s", job, 0);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, jk);
    store_arg(&h, f1);
    store_arg_u64(&h, v1);
    store_arg(&h, f2);
    store_arg_u64(&h, v2);
    return store_run(s, &h);
}

int store_job_progress(store *s, const char *job, uint32_t segments_done, uint32_t frames_stitched) {
    return store_job_counts(s, job, "segments_done", segments_done, "frames_stitched",
                            frames_stitched);
}

int store_job_output(store *s, const char *job, const char *path, uint64_t bytes) {
    char jk[256];
    store_key(s, jk, sizeof jk, "job:%s", job, 0);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, jk);
    store_arg(&h, "output");
    store_arg(&h, path);
    store_arg(&h, "output_bytes");
    store_arg_u64(&h, bytes);
    return store_run(s, &h);
}

/* HSET of a segment's record: the fields every state change writes. The
 * key goes in sk (h points into it). */
static void seg_hset(store *s, store_argv *h, char *sk, size_t sklen, const char *job,
                     uint32_t seg, const char *state, uint32_t attempt, const char *worker) {
    store_key(s, sk, sklen, "job:%s:seg:%ld", job, (long)seg);
    store_arg(h, "HSET");
    store_arg(h, sk);
    store_arg(h, "state");
    store_arg(h, state);
    store_arg(h, "attempt");
    store_arg_u64(h, attempt);
    if (worker) {
        store_arg(h, "worker");
        store_arg(h, worker);
    }
}

int store_seg_state(store *s, const char *job, uint32_t seg, const char *state, uint32_t attempt,
                    const char *worker, const char *error) {
    store_argv h = {0};
    char sk[256];
    seg_hset(s, &h, sk, sizeof sk, job, seg, state, attempt, worker);
    if (error) {
        store_arg(&h, "error");
        store_arg(&h, error);
    }
    return store_run(s, &h);
}

int store_seg_running(store *s, const char *job, uint32_t seg, uint32_t attempt,
                      const char *worker, uint64_t started_ms) {
    store_argv h = {0};
    char sk[256];
    seg_hset(s, &h, sk, sizeof sk, job, seg, "running", attempt, worker);
    store_arg(&h, "started_ms");
    store_arg_u64(&h, started_ms ? started_ms : rf_wall_ms());
    return store_run(s, &h);
}

int store_seg_done(store *s, const char *job, uint32_t seg, uint32_t attempt, const char *worker,
                   uint64_t render_ms, uint64_t started_ms, uint64_t finished_ms,
                   const char *pack) {
    store_argv h = {0};
    char sk[256];
    seg_hset(s, &h, sk, sizeof sk, job, seg, "done", attempt, worker);
    if (started_ms) {
        store_arg(&h, "started_ms");
        store_arg_u64(&h, started_ms);
    }
    store_arg(&h, "finished_ms");
    store_arg_u64(&h, finished_ms ? finished_ms : rf_wall_ms());
    store_arg(&h, "render_ms");
    store_arg_u64(&h, render_ms);
    /* Always written: a record from an earlier attempt must not point
     * into a pack this segment is not in. */
    store_arg(&h, "pack");
    store_arg(&h, pack ? pack : "");
    return store_run(s, &h);
}

int store_worker_hello(store *s, const store_worker *w) {
    char wk[256];
    store_key(s, wk, sizeof wk, "worker:%s", w->id, 0);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, wk);
    store_arg(&h, "id");
    store_arg(&h, w->id);
    store_arg(&h, "engines");
    store_arg(&h, w->engines);
    store_arg(&h, "gpus");
    store_arg_u64(&h, w->gpus);
    store_arg(&h, "capacity");
    store_arg_u64(&h, w->capacity);
    store_arg(&h, "compute");
    store_arg(&h, w->compute);
    store_arg(&h, "hostname");
    store_arg(&h, w->hostname);
    store_arg(&h, "pid");
    store_arg_u64(&h, w->pid);
    store_arg(&h, "state");
    store_arg(&h, w->state);
    store_arg(&h, "last_seen_ms");
    store_arg_u64(&h, rf_wall_ms());
    if (store_run(s, &h) != 0)
        return -1;
    char sk[256];
    snprintf(sk, sizeof sk, "%sworkers", s->prefix);
    store_argv z = {0};
    store_arg(&z, "SADD");
    store_arg(&z, sk);
    store_arg(&z, w->id);
    return store_run(s, &z);
}

int store_worker_seen(store *s, const char *id, const char *state, uint32_t segments_done,
                      const char *current) {
    char wk[256];
    store_key(s, wk, sizeof wk, "worker:%s", id, 0);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, wk);
    store_arg(&h, "state");
    store_arg(&h, state);
    store_arg(&h, "last_seen_ms");
    store_arg_u64(&h, rf_wall_ms());
    store_arg(&h, "segments_done");
    store_arg_u64(&h, segments_done);
    if (current) {
        store_arg(&h, "current");
        store_arg(&h, current);
    }
    return store_run(s, &h);
}

int store_event(store *s, const char *type, const char *job, int seg, const char *worker,
                const char *msg) {
    char ek[256];
    snprintf(ek, sizeof ek, "%sevents", s->prefix);
    store_argv h = {0};
    store_arg(&h, "XADD");
    store_arg(&h, ek);
    store_arg(&h, "MAXLEN");
    store_arg(&h, "~");
    store_arg_u64(&h, s->events_max);
    store_arg(&h, "*");
    store_arg(&h, "type");
    store_arg(&h, type);
    store_arg(&h, "ts_ms");
    store_arg_u64(&h, rf_wall_ms());
    if (job) {
        store_arg(&h, "job");
        store_arg(&h, job);
    }
    if (seg >= 0) {
        store_arg(&h, "seg");
        arg_i64(&h, seg);
    }
    if (worker) {
        store_arg(&h, "worker");
        store_arg(&h, worker);
    }
    if (msg) {
        store_arg(&h, "msg");
        store_arg(&h, msg);
    }
    return store_run(s, &h);
}

int store_seg_retry(store *s, const char *job, uint32_t seg, uint32_t failures, const char *tried) {
    char sk[256];
    store_key(s, sk, sizeof sk, "job:%s:seg:%ld", job, (long)seg);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, sk);
    store_arg(&h, "failures");
    store_arg_u64(&h, failures);
    store_arg(&h, "tried");
    store_arg(&h, tried);
    return store_run(s, &h);
}

int store_worker_health(store *s, const char *id, uint32_t fail_streak,
                        uint64_t quarantined_until_ms, const char *kept_from_jobs,
                        const char *last_error) {
    char wk[256];
    store_key(s, wk, sizeof wk, "worker:%s", id, 0);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, wk);
    store_arg(&h, "fail_streak");
    store_arg_u64(&h, fail_streak);
    store_arg(&h, "quarantined_until_ms");
    store_arg_u64(&h, quarantined_until_ms);
    store_arg(&h, "kept_from_jobs");
    store_arg(&h, kept_from_jobs);
    if (last_error) {
        store_arg(&h, "last_error");
        store_arg(&h, last_error);
    }
    return store_run(s, &h);
}

int store_stats(store *s, const store_stat *stats, size_t n) {
    char k[256];
    snprintf(k, sizeof k, "%sstats", s->prefix);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, k);
    for (size_t i = 0; i < n && h.n + 2 <= STORE_MAX_ARGS; i++) {
        store_arg(&h, stats[i].name);
        store_arg_u64(&h, stats[i].value);
    }
    return store_run(s, &h);
}
