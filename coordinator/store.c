/* store — Redis state through hiredis. See store.h for the key layout. */
#include "store.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_util.h"

struct store {
    redisContext *rc;
    char addr[256];
    char prefix[64];
    unsigned events_max;
    char last_err[256];
};

static int connect_redis(store *s) {
    if (s->rc) {
        redisFree(s->rc);
        s->rc = NULL;
    }
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
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
    if (s->rc)
        redisFree(s->rc);
    free(s);
}

const char *store_last_error(const store *s) { return s->last_err; }

/* Run one command given as argv. On a broken connection, reconnect once
 * and retry: every command here is idempotent or harmless to repeat. */
static redisReply *command(store *s, int argc, const char **argv, const size_t *argvlen) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!s->rc && connect_redis(s) != 0)
            return NULL;
        redisReply *r = redisCommandArgv(s->rc, argc, argv, argvlen);
        if (r) {
            if (r->type == REDIS_REPLY_ERROR) {
                snprintf(s->last_err, sizeof s->last_err, "%s: %s", argv[0], r->str);
                freeReplyObject(r);
                return NULL;
            }
            return r;
        }
        snprintf(s->last_err, sizeof s->last_err, "%s: %s", argv[0], s->rc->errstr);
        redisFree(s->rc);
        s->rc = NULL;
    }
    return NULL;
}

/* A command built from printf-formatted words: each variadic string is one
 * argument, so values with spaces need no quoting. */
#define MAX_ARGS 48
typedef struct argv_buf {
    int n;
    const char *v[MAX_ARGS];
    size_t len[MAX_ARGS];
    char own[MAX_ARGS][64]; /* storage for formatted numbers */
} argv_buf;

static void arg(argv_buf *a, const char *s) {
    if (a->n < MAX_ARGS) {
        a->v[a->n] = s ? s : "";
        a->len[a->n] = strlen(a->v[a->n]);
        a->n++;
    }
}

static void arg_u64(argv_buf *a, uint64_t v) {
    if (a->n < MAX_ARGS) {
        snprintf(a->own[a->n], sizeof a->own[a->n], "%llu", (unsigned long long)v);
        arg(a, a->own[a->n]);
    }
}

static void arg_i64(argv_buf *a, int64_t v) {
    if (a->n < MAX_ARGS) {
        snprintf(a->own[a->n], sizeof a->own[a->n], "%lld", (long long)v);
        arg(a, a->own[a->n]);
    }
}

static int run(store *s, argv_buf *a) {
    redisReply *r = command(s, a->n, a->v, a->len);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

static void key(const store *s, char *buf, size_t len, const char *fmt, const char *id, long k) {
    char tail[256];
    snprintf(tail, sizeof tail, fmt, id, k);
    snprintf(buf, len, "%s%s", s->prefix, tail);
}

int store_job_create(store *s, const rf_spec *spec, uint32_t nseg, const uint32_t *seg_first,
                     const uint32_t *seg_frames, char *err, size_t errlen) {
    char jk[256];
    key(s, jk, sizeof jk, "job:%s", spec->id, 0);
    char *json = rf_spec_to_json(spec);
    if (!json) {
        snprintf(err, errlen, "store: out of memory");
        return -1;
    }
    /* HSETNX on the id field claims the id atomically: two submissions of
     * the same id cannot both win. */
    argv_buf a = {0};
    arg(&a, "HSETNX");
    arg(&a, jk);
    arg(&a, "id");
    arg(&a, spec->id);
    redisReply *r = command(s, a.n, a.v, a.len);
    if (!r) {
        snprintf(err, errlen, "store: %s", s->last_err);
        free(json);
        return -1;
    }
    int created = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (!created) {
        snprintf(err, errlen, "id: job '%s' already exists", spec->id);
        free(json);
        return -1;
    }
    uint64_t now = rf_wall_ms();
    argv_buf h = {0};
    arg(&h, "HSET");
    arg(&h, jk);
    arg(&h, "state");
    arg(&h, "queued");
    arg(&h, "engine");
    arg(&h, spec->engine);
    arg(&h, "spec");
    arg(&h, json);
    arg(&h, "frames");
    arg_u64(&h, spec->frames);
    arg(&h, "segments");
    arg_u64(&h, nseg);
    arg(&h, "segments_done");
    arg(&h, "0");
    arg(&h, "frames_stitched");
    arg(&h, "0");
    arg(&h, "output");
    arg(&h, spec->output_path);
    arg(&h, "error");
    arg(&h, "");
    arg(&h, "priority");
    arg_i64(&h, spec->priority);
    arg(&h, "created_ms");
    arg_u64(&h, now);
    int rc = run(s, &h);
    free(json);
    for (uint32_t k = 0; rc == 0 && k < nseg; k++) {
        char sk[256];
        key(s, sk, sizeof sk, "job:%s:seg:%ld", spec->id, (long)k);
        argv_buf g = {0};
        arg(&g, "HSET");
        arg(&g, sk);
        arg(&g, "state");
        arg(&g, "queued");
        arg(&g, "attempt");
        arg(&g, "0");
        arg(&g, "first");
        arg_u64(&g, seg_first[k]);
        arg(&g, "frames");
        arg_u64(&g, seg_frames[k]);
        rc = run(s, &g);
    }
    if (rc == 0) {
        char zk[256];
        snprintf(zk, sizeof zk, "%sjobs", s->prefix);
        argv_buf z = {0};
        arg(&z, "ZADD");
        arg(&z, zk);
        arg_u64(&z, now);
        arg(&z, spec->id);
        rc = run(s, &z);
    }
    if (rc == 0) {
        char ak[256];
        snprintf(ak, sizeof ak, "%sjobs:active", s->prefix);
        argv_buf z = {0};
        arg(&z, "SADD");
        arg(&z, ak);
        arg(&z, spec->id);
        rc = run(s, &z);
    }
    if (rc != 0) {
        snprintf(err, errlen, "store: recording job '%s' failed: %s", spec->id, s->last_err);
        /* Leave nothing half-recorded behind. */
        char sk[256];
        for (uint32_t k = 0; k < nseg; k++) {
            key(s, sk, sizeof sk, "job:%s:seg:%ld", spec->id, (long)k);
            argv_buf d = {0};
            arg(&d, "DEL");
            arg(&d, sk);
            run(s, &d);
        }
        argv_buf d = {0};
        arg(&d, "DEL");
        arg(&d, jk);
        run(s, &d);
        const char *sets[2][2] = {{"ZREM", "jobs"}, {"SREM", "jobs:active"}};
        for (int i = 0; i < 2; i++) {
            char zk[256];
            snprintf(zk, sizeof zk, "%s%s", s->prefix, sets[i][1]);
            argv_buf z = {0};
            arg(&z, sets[i][0]);
            arg(&z, zk);
            arg(&z, spec->id);
            run(s, &z);
        }
        return -1;
    }
    return 0;
}

int store_job_state(store *s, const char *job, const char *state, const char *error) {
    char jk[256];
    key(s, jk, sizeof jk, "job:%s", job, 0);
    uint64_t now = rf_wall_ms();
    argv_buf h = {0};
    arg(&h, "HSET");
    arg(&h, jk);
    arg(&h, "state");
    arg(&h, state);
    if (error) {
        arg(&h, "error");
        arg(&h, error);
    }
    int terminal = strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
                   strcmp(state, "cancelled") == 0;
    if (terminal) {
        arg(&h, "finished_ms");
        arg_u64(&h, now);
    } else if (strcmp(state, "running") == 0) {
        arg(&h, "started_ms");
        arg_u64(&h, now);
    }
    int rc = run(s, &h);
    if (rc == 0 && terminal) {
        char ak[256];
        snprintf(ak, sizeof ak, "%sjobs:active", s->prefix);
        argv_buf z = {0};
        arg(&z, "SREM");
        arg(&z, ak);
        arg(&z, job);
        rc = run(s, &z);
    }
    return rc;
}

int store_job_progress(store *s, const char *job, uint32_t segments_done, uint32_t frames_stitched) {
    char jk[256];
    key(s, jk, sizeof jk, "job:%s", job, 0);
    argv_buf h = {0};
    arg(&h, "HSET");
    arg(&h, jk);
    arg(&h, "segments_done");
    arg_u64(&h, segments_done);
    arg(&h, "frames_stitched");
    arg_u64(&h, frames_stitched);
    return run(s, &h);
}

int store_job_output(store *s, const char *job, const char *path, uint64_t bytes) {
    char jk[256];
    key(s, jk, sizeof jk, "job:%s", job, 0);
    argv_buf h = {0};
    arg(&h, "HSET");
    arg(&h, jk);
    arg(&h, "output");
    arg(&h, path);
    arg(&h, "output_bytes");
    arg_u64(&h, bytes);
    return run(s, &h);
}

int store_seg_state(store *s, const char *job, uint32_t seg, const char *state, uint32_t attempt,
                    const char *worker, const char *error, uint64_t render_ms) {
    char sk[256];
    key(s, sk, sizeof sk, "job:%s:seg:%ld", job, (long)seg);
    argv_buf h = {0};
    arg(&h, "HSET");
    arg(&h, sk);
    arg(&h, "state");
    arg(&h, state);
    arg(&h, "attempt");
    arg_u64(&h, attempt);
    if (worker) {
        arg(&h, "worker");
        arg(&h, worker);
    }
    if (error) {
        arg(&h, "error");
        arg(&h, error);
    }
    uint64_t now = rf_wall_ms();
    if (strcmp(state, "running") == 0) {
        arg(&h, "started_ms");
        arg_u64(&h, now);
    } else if (strcmp(state, "done") == 0) {
        arg(&h, "finished_ms");
        arg_u64(&h, now);
        arg(&h, "render_ms");
        arg_u64(&h, render_ms);
    }
    return run(s, &h);
}

int store_worker_hello(store *s, const store_worker *w) {
    char wk[256];
    key(s, wk, sizeof wk, "worker:%s", w->id, 0);
    argv_buf h = {0};
    arg(&h, "HSET");
    arg(&h, wk);
    arg(&h, "id");
    arg(&h, w->id);
    arg(&h, "engines");
    arg(&h, w->engines);
    arg(&h, "gpus");
    arg_u64(&h, w->gpus);
    arg(&h, "capacity");
    arg_u64(&h, w->capacity);
    arg(&h, "compute");
    arg(&h, w->compute);
    arg(&h, "hostname");
    arg(&h, w->hostname);
    arg(&h, "pid");
    arg_u64(&h, w->pid);
    arg(&h, "state");
    arg(&h, w->state);
    arg(&h, "last_seen_ms");
    arg_u64(&h, rf_wall_ms());
    if (run(s, &h) != 0)
        return -1;
    char sk[256];
    snprintf(sk, sizeof sk, "%sworkers", s->prefix);
    argv_buf z = {0};
    arg(&z, "SADD");
    arg(&z, sk);
    arg(&z, w->id);
    return run(s, &z);
}

int store_worker_seen(store *s, const char *id, const char *state, uint32_t segments_done) {
    char wk[256];
    key(s, wk, sizeof wk, "worker:%s", id, 0);
    argv_buf h = {0};
    arg(&h, "HSET");
    arg(&h, wk);
    arg(&h, "state");
    arg(&h, state);
    arg(&h, "last_seen_ms");
    arg_u64(&h, rf_wall_ms());
    arg(&h, "segments_done");
    arg_u64(&h, segments_done);
    return run(s, &h);
}

int store_event(store *s, const char *type, const char *job, int seg, const char *worker,
                const char *msg) {
    char ek[256];
    snprintf(ek, sizeof ek, "%sevents", s->prefix);
    argv_buf h = {0};
    arg(&h, "XADD");
    arg(&h, ek);
    arg(&h, "MAXLEN");
    arg(&h, "~");
    arg_u64(&h, s->events_max);
    arg(&h, "*");
    arg(&h, "type");
    arg(&h, type);
    arg(&h, "ts_ms");
    arg_u64(&h, rf_wall_ms());
    if (job) {
        arg(&h, "job");
        arg(&h, job);
    }
    if (seg >= 0) {
        arg(&h, "seg");
        arg_i64(&h, seg);
    }
    if (worker) {
        arg(&h, "worker");
        arg(&h, worker);
    }
    if (msg) {
        arg(&h, "msg");
        arg(&h, msg);
    }
    return run(s, &h);
}

int store_job_read(store *s, const char *job,
                   void (*field)(void *ctx, const char *name, const char *value), void *ctx,
                   char *err, size_t errlen) {
    char jk[256];
    key(s, jk, sizeof jk, "job:%s", job, 0);
    argv_buf h = {0};
    arg(&h, "HGETALL");
    arg(&h, jk);
    redisReply *r = command(s, h.n, h.v, h.len);
    if (!r) {
        snprintf(err, errlen, "store: %s", s->last_err);
        return -1;
    }
    int rc = 1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        rc = 0;
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            field(ctx, r->element[i]->str, r->element[i + 1]->str);
    }
    freeReplyObject(r);
    return rc;
}

int store_recent_jobs(store *s, size_t max, char (*ids)[RF_ID_MAX + 1], char *err, size_t errlen) {
    if (max == 0)
        return 0;
    char zk[256];
    snprintf(zk, sizeof zk, "%sjobs", s->prefix);
    argv_buf h = {0};
    arg(&h, "ZREVRANGE");
    arg(&h, zk);
    arg(&h, "0");
    arg_u64(&h, max - 1);
    redisReply *r = command(s, h.n, h.v, h.len);
    if (!r) {
        snprintf(err, errlen, "store: %s", s->last_err);
        return -1;
    }
    int n = 0;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements && (size_t)n < max; i++)
            snprintf(ids[n++], RF_ID_MAX + 1, "%s", r->element[i]->str);
    freeReplyObject(r);
    return n;
}
