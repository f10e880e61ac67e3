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
