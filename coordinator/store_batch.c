/* store_batch — batches, job logs and the smaller records in Redis: a
 * batch's record and its jobs, a job's log list, single fields of a job or
 * a worker. Key layout in store.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_util.h"
#include "store_internal.h"


int store_batch_create(store *s, const char *id, const char *name, uint32_t jobs,
                       uint64_t frames_to_render) {
    char bk[256], zk[256];
    store_key(s, bk, sizeof bk, "batch:%s", id, 0);
    snprintf(zk, sizeof zk, "%sbatches", s->prefix);
    uint64_t now = rf_wall_ms();
    /* HSETNX id first: a batch submitted again keeps its record and
     * counters; only its totals grow by the jobs added now. */
    store_argv c[4];
    memset(c, 0, sizeof c);
    store_arg(&c[0], "HSETNX");
    store_arg(&c[0], bk);
    store_arg(&c[0], "created_ms");
    store_arg_u64(&c[0], now);
    store_arg(&c[1], "HSET");
    store_arg(&c[1], bk);
    store_arg(&c[1], "id");
    store_arg(&c[1], id);
    store_arg(&c[1], "name");
    store_arg(&c[1], name);
    store_arg(&c[2], "HINCRBY");
    store_arg(&c[2], bk);
    store_arg(&c[2], "jobs");
    store_arg_u64(&c[2], jobs);
    store_arg(&c[3], "HINCRBY");
    store_arg(&c[3], bk);
    store_arg(&c[3], "frames_to_render");
    store_arg_u64(&c[3], frames_to_render);
    if (store_run_pipelined(s, c, 4) != 0)
        return -1;
    store_argv z = {0};
    store_arg(&z, "ZADD");
    store_arg(&z, zk);
    store_arg(&z, "NX");
    store_arg_u64(&z, now);
    store_arg(&z, id);
    return store_run(s, &z);
}

int store_batch_incr(store *s, const char *id, const char *field, int64_t delta) {
    char bk[256], d[32];
    store_key(s, bk, sizeof bk, "batch:%s", id, 0);
    snprintf(d, sizeof d, "%lld", (long long)delta);
    store_argv h = {0};
    store_arg(&h, "HINCRBY");
    store_arg(&h, bk);
    store_arg(&h, field);
    store_arg(&h, d);
    return store_run(s, &h);
}

int store_hset(store *s, const char *kind, const char *id, const char *field, const char *value) {
    char k[256];
    char fmt[32];
    snprintf(fmt, sizeof fmt, "%s:%%s", kind);
    store_key(s, k, sizeof k, fmt, id, 0);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, k);
    store_arg(&h, field);
    store_arg(&h, value);
    return store_run(s, &h);
}

int store_hincr(store *s, const char *kind, const char *id, const char *field, int64_t delta) {
    char k[256], fmt[32], d[32];
    snprintf(fmt, sizeof fmt, "%s:%%s", kind);
    store_key(s, k, sizeof k, fmt, id, 0);
    snprintf(d, sizeof d, "%lld", (long long)delta);
    store_argv h = {0};
    store_arg(&h, "HINCRBY");
    store_arg(&h, k);
    store_arg(&h, field);
    store_arg(&h, d);
    return store_run(s, &h);
}

int store_job_log(store *s, const char *job, const char *const *lines, size_t n, int trim) {
    char k[256], keep[16];
    store_key(s, k, sizeof k, "job:%s:log", job, 0);
    snprintf(keep, sizeof keep, "-%d", STORE_JOB_LOG_MAX);
    int rc = 0;
    /* One RPUSH for as many lines as a command holds; queued with the
     * loop's other writes (store_run defers). */
    for (size_t i = 0; i < n && rc == 0;) {
        store_argv c = {0};
        store_arg(&c, "RPUSH");
        store_arg(&c, k);
        while (i < n && c.n < STORE_MAX_ARGS)
            store_arg(&c, lines[i++]);
        rc = store_run(s, &c);
    }
    if (rc == 0 && trim) {
        store_argv t = {0};
        store_arg(&t, "LTRIM");
        store_arg(&t, k);
        store_arg(&t, keep);
        store_arg(&t, "-1");
        rc = store_run(s, &t);
    }
    return rc;
}

int store_job_rendered(store *s, const char *job, uint64_t frames_rendered, uint64_t render_ms) {
    return store_job_counts(s, job, "frames_rendered", frames_rendered, "render_ms", render_ms);
}

int store_job_log_read(store *s, const char *job, void (*line)(void *ctx, const char *text),
                       void *ctx, char *err, size_t errlen) {
    char k[256];
    store_key(s, k, sizeof k, "job:%s:log", job, 0);
    store_argv h = {0};
    store_arg(&h, "LRANGE");
    store_arg(&h, k);
    store_arg(&h, "0");
    store_arg(&h, "-1");
    return store_each_string(s, &h, line, ctx, err, errlen);
}

int store_batch_read(store *s, const char *id, store_field_fn field, void *ctx, char *err,
                     size_t errlen) {
    char bk[256];
    store_key(s, bk, sizeof bk, "batch:%s", id, 0);
    return store_hash_read(s, bk, field, ctx, err, errlen);
}

int store_recent_batches(store *s, size_t max, char (*ids)[RF_ID_MAX + 1], char *err,
                         size_t errlen) {
    char zk[256];
    snprintf(zk, sizeof zk, "%sbatches", s->prefix);
    return store_zrange(s, zk, 1, max, ids, err, errlen);
}

int store_batch_jobs(store *s, const char *batch, size_t max, char (*ids)[RF_ID_MAX + 1],
                     char *err, size_t errlen) {
    char k[256];
    store_key(s, k, sizeof k, "batch:%s:jobs", batch, 0);
    return store_zrange(s, k, 0, max, ids, err, errlen);
}

/* ---- totals recounted from the jobs' records ---- */

typedef struct tally {
    store_batch_totals *t;
} tally;

static void count_job(void *ctx, size_t i, const redisReply *r) {
    (void)i;
    store_batch_totals *t = ((tally *)ctx)->t;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return;
    const redisReply *st = r->element[0];
    const char *state = st->type == REDIS_REPLY_STRING ? st->str : "";
    t->jobs_done += strcmp(state, "done") == 0;
    t->jobs_failed += strcmp(state, "failed") == 0;
    t->jobs_cancelled += strcmp(state, "cancelled") == 0;
    for (int f = 1; f <= 2; f++) {
        const redisReply *v = r->element[f];
        uint64_t x = v->type == REDIS_REPLY_STRING ? strtoull(v->str, NULL, 10) : 0;
        if (f == 1)
            t->frames_rendered += x;
        else
            t->frames_to_render += x;
    }
}

int store_batch_recount(store *s, const char *id, const char *state, store_batch_totals *t) {
    memset(t, 0, sizeof *t);
    char bk[256], zk[256];
    store_key(s, bk, sizeof bk, "batch:%s", id, 0);
    store_key(s, zk, sizeof zk, "batch:%s:jobs", id, 0);
    store_argv zc = {0};
    store_arg(&zc, "ZCARD");
    store_arg(&zc, zk);
    long long n = 0;
    if (store_run_pipelined_ints(s, &zc, 1, &n) != 0 || n < 0)
        return -1;
    char(*ids)[RF_ID_MAX + 1] = n ? malloc((size_t)n * sizeof *ids) : NULL;
    store_argv *cmd = calloc(STORE_PIPELINE_BATCH, sizeof *cmd);
    char(*keys)[256] = malloc(STORE_PIPELINE_BATCH * sizeof *keys);
    char err[256];
    int rc = (n && !ids) || !cmd || !keys ? -1 : 0;
    if (rc == 0 && n && store_zrange(s, zk, 0, (size_t)n, ids, err, sizeof err) != n)
        rc = -1;
    tally ty = {t};
    for (long long i0 = 0; rc == 0 && i0 < n; i0 += STORE_PIPELINE_BATCH) {
        size_t m = (size_t)(n - i0 < STORE_PIPELINE_BATCH ? n - i0 : STORE_PIPELINE_BATCH);
        for (size_t i = 0; i < m; i++) {
            cmd[i].n = 0;
            store_key(s, keys[i], sizeof keys[i], "job:%s", ids[i0 + (long long)i], 0);
            store_arg(&cmd[i], "HMGET");
            store_arg(&cmd[i], keys[i]);
            store_arg(&cmd[i], "state");
            store_arg(&cmd[i], "frames_rendered");
            store_arg(&cmd[i], "frames_to_render");
        }
        rc = store_run_pipelined_each(s, cmd, m, count_job, &ty);
    }
    free(ids);
    free(cmd);
    free(keys);
    if (rc != 0)
        return -1;
    t->jobs = (uint32_t)n;
    /* Absolute values: a write lost in an outage, or sent twice, is
     * repaired, not compounded. */
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, bk);
    store_arg(&h, "jobs");
    store_arg_u64(&h, t->jobs);
    store_arg(&h, "jobs_done");
    store_arg_u64(&h, t->jobs_done);
    store_arg(&h, "jobs_failed");
    store_arg_u64(&h, t->jobs_failed);
    store_arg(&h, "jobs_cancelled");
    store_arg_u64(&h, t->jobs_cancelled);
    store_arg(&h, "frames_rendered");
    store_arg_u64(&h, t->frames_rendered);
    store_arg(&h, "frames_to_render");
    store_arg_u64(&h, t->frames_to_render);
    store_arg(&h, "state");
    store_arg(&h, state);
    return store_run(s, &h);
}
