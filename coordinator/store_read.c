/* store_read — reading the farm's state back from Redis: a job's or a
 * segment's or a worker's record, recent jobs, unfinished jobs, known
 * workers. Used by status replies and by a restarting coordinator. Key
 * layout in store.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

int store_hash_read(store *s, const char *k, store_field_fn field, void *ctx, char *err,
                    size_t errlen) {
    const char *argv[2] = {"HGETALL", k};
    size_t lens[2] = {7, strlen(k)};
    redisReply *r = store_command(s, 2, argv, lens);
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

int store_each_string(store *s, store_argv *cmd, void (*each)(void *ctx, const char *value),
                      void *ctx, char *err, size_t errlen) {
    redisReply *r = store_command(s, cmd->n, cmd->v, cmd->len);
    if (!r) {
        snprintf(err, errlen, "store: %s", s->last_err);
        return -1;
    }
    int n = 0;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++, n++)
            each(ctx, r->element[i]->str);
    freeReplyObject(r);
    return n;
}

/* SMEMBERS of prefix+name, one callback per member. */
static int set_read(store *s, const char *name, void (*member)(void *ctx, const char *value),
                    void *ctx, char *err, size_t errlen) {
    char k[256];
    snprintf(k, sizeof k, "%s%s", s->prefix, name);
    store_argv cmd = {0};
    store_arg(&cmd, "SMEMBERS");
    store_arg(&cmd, k);
    return store_each_string(s, &cmd, member, ctx, err, errlen);
}

int store_job_read(store *s, const char *job, store_field_fn field, void *ctx, char *err,
                   size_t errlen) {
    char jk[256];
    store_key(s, jk, sizeof jk, "job:%s", job, 0);
    return store_hash_read(s, jk, field, ctx, err, errlen);
}

int store_seg_read(store *s, const char *job, uint32_t seg, store_field_fn field, void *ctx,
                   char *err, size_t errlen) {
    char sk[256];
    store_key(s, sk, sizeof sk, "job:%s:seg:%ld", job, (long)seg);
    return store_hash_read(s, sk, field, ctx, err, errlen);
}

int store_worker_read(store *s, const char *id, store_field_fn field, void *ctx, char *err,
                      size_t errlen) {
    char wk[256];
    store_key(s, wk, sizeof wk, "worker:%s", id, 0);
    return store_hash_read(s, wk, field, ctx, err, errlen);
}

int store_active_jobs(store *s, void (*id)(void *ctx, const char *job), void *ctx, char *err,
                      size_t errlen) {
    return set_read(s, "jobs:active", id, ctx, err, errlen);
}

int store_worker_ids(store *s, void (*id)(void *ctx, const char *worker), void *ctx, char *err,
                     size_t errlen) {
    return set_read(s, "workers", id, ctx, err, errlen);
}

int store_zrange(store *s, const char *k, int rev, size_t max, char (*ids)[RF_ID_MAX + 1],
                 char *err, size_t errlen) {
    if (max == 0)
        return 0;
    store_argv h = {0};
    store_arg(&h, rev ? "ZREVRANGE" : "ZRANGE");
    store_arg(&h, k);
    store_arg(&h, "0");
    store_arg_u64(&h, max - 1);
    redisReply *r = store_command(s, h.n, h.v, h.len);
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

int store_recent_jobs(store *s, size_t max, char (*ids)[RF_ID_MAX + 1], char *err, size_t errlen) {
    char zk[256];
    snprintf(zk, sizeof zk, "%sjobs", s->prefix);
    return store_zrange(s, zk, 1, max, ids, err, errlen);
}

typedef struct segs_read {
    uint32_t first;
    void (*field)(void *ctx, uint32_t k, const char *name, const char *value);
    void *ctx;
} segs_read;

static void seg_reply(void *ctx, size_t i, const redisReply *r) {
    const segs_read *sr = ctx;
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t f = 0; f + 1 < r->elements; f += 2)
        sr->field(sr->ctx, sr->first + (uint32_t)i, r->element[f]->str, r->element[f + 1]->str);
}

int store_segs_read(store *s, const char *job, uint32_t nseg,
                    void (*field)(void *ctx, uint32_t k, const char *name, const char *value),
                    void *ctx, char *err, size_t errlen) {
    store_argv *cmds = malloc(STORE_PIPELINE_BATCH * sizeof *cmds);
    char(*keys)[256] = malloc(STORE_PIPELINE_BATCH * sizeof *keys); /* argv points into it */
    if (!cmds || !keys) {
        free(cmds);
        free(keys);
        snprintf(err, errlen, "store: out of memory");
        return -1;
    }
    int rc = 0;
    for (uint32_t first = 0; first < nseg && rc == 0; first += STORE_PIPELINE_BATCH) {
        size_t n = nseg - first < STORE_PIPELINE_BATCH ? nseg - first : STORE_PIPELINE_BATCH;
        for (size_t i = 0; i < n; i++) {
            store_key(s, keys[i], sizeof keys[i], "job:%s:seg:%ld", job, (long)(first + i));
            cmds[i].n = 0;
            store_arg(&cmds[i], "HGETALL");
            store_arg(&cmds[i], keys[i]);
        }
        segs_read sr = {.first = first, .field = field, .ctx = ctx};
        if (store_run_pipelined_each(s, cmds, n, seg_reply, &sr) != 0) {
            snprintf(err, errlen, "store: %s", s->last_err);
            rc = -1;
        }
    }
    free(cmds);
    free(keys);
    return rc;
}
