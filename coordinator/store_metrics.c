/* store_metrics — the farm's figures in Redis, for the dashboard, the
 * Prometheus endpoint and anyone's scripts (layout in store.h / README):
 *
 *   <p>metrics       hash    counters since the farm's first start (HINCRBY)
 *   <p>gauges        hash    current values, rewritten about once a second
 *   <p>ts:<series>   stream  one sample `v` per interval, capped (MAXLEN)
 *   <p>worker:<id>   hash    + fps frames_done failures (per-worker figures)
 *
 * Counters only ever grow, so a reader can difference two reads; a
 * coordinator restart continues them instead of starting from zero.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_util.h"
#include "store_internal.h"

int store_metrics_add(store *s, const store_stat *deltas, size_t n) {
    char k[256];
    snprintf(k, sizeof k, "%smetrics", s->prefix);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (deltas[i].value == 0)
            continue;
        store_argv h = {0};
        store_arg(&h, "HINCRBY");
        store_arg(&h, k);
        store_arg(&h, deltas[i].name);
        store_arg_u64(&h, deltas[i].value);
        if (store_run(s, &h) != 0)
            rc = -1;
    }
    return rc;
}

int store_gauges(store *s, const store_stat *gauges, size_t n) {
    char k[256];
    snprintf(k, sizeof k, "%sgauges", s->prefix);
    int rc = 0;
    /* Chunks, so that any number of per-priority gauges fits the argv. */
    for (size_t i = 0; i < n;) {
        store_argv h = {0};
        store_arg(&h, "HSET");
        store_arg(&h, k);
        for (; i < n && h.n + 2 <= STORE_MAX_ARGS; i++) {
            store_arg(&h, gauges[i].name);
            store_arg_u64(&h, gauges[i].value);
        }
        if (store_run(s, &h) != 0)
            rc = -1;
    }
    return rc;
}

int store_worker_figures(store *s, const char *id, double fps, uint64_t frames_done,
                         uint32_t failures) {
    char wk[256], v[64];
    store_key(s, wk, sizeof wk, "worker:%s", id, 0);
    snprintf(v, sizeof v, "%.2f", fps);
    store_argv h = {0};
    store_arg(&h, "HSET");
    store_arg(&h, wk);
    store_arg(&h, "fps");
    store_arg(&h, v);
    store_arg(&h, "frames_done");
    store_arg_u64(&h, frames_done);
    store_arg(&h, "failures");
    store_arg_u64(&h, failures);
    return store_run(s, &h);
}

int store_series_add(store *s, const char *series, double value, unsigned maxlen) {
    char k[256], v[64];
    snprintf(k, sizeof k, "%sts:%s", s->prefix, series);
    snprintf(v, sizeof v, "%.6g", value);
    store_argv h = {0};
    /* Exact trimming: "~" would keep up to a whole stream node (100
     * entries) more, and retention is a promise to the operator. */
    store_arg(&h, "XADD");
    store_arg(&h, k);
    store_arg(&h, "MAXLEN");
    store_arg_u64(&h, maxlen ? maxlen : 1);
    store_arg(&h, "*");
    store_arg(&h, "v");
    store_arg(&h, v);
    return store_run(s, &h);
}

int store_metrics_read(store *s, const char *which, store_field_fn field, void *ctx, char *err,
                       size_t errlen) {
    char k[256];
    snprintf(k, sizeof k, "%s%s", s->prefix, which);
    return store_hash_read(s, k, field, ctx, err, errlen);
}

int store_series_read(store *s, const char *series, uint64_t since_ms, size_t max,
                      void (*sample)(void *ctx, uint64_t ts_ms, double value), void *ctx,
                      char *err, size_t errlen) {
    char k[256], from[32];
    snprintf(k, sizeof k, "%sts:%s", s->prefix, series);
    snprintf(from, sizeof from, "%llu", (unsigned long long)since_ms);
    /* Newest first, so that `max` keeps the most recent samples. */
    store_argv h = {0};
    store_arg(&h, "XREVRANGE");
    store_arg(&h, k);
    store_arg(&h, "+");
    store_arg(&h, since_ms ? from : "-");
    store_arg(&h, "COUNT");
    store_arg_u64(&h, max ? max : 1);
    redisReply *r = store_command(s, h.n, h.v, h.len);
    if (!r) {
        snprintf(err, errlen, "store: %s", s->last_err);
        return -1;
    }
    int n = 0;
    if (r->type == REDIS_REPLY_ARRAY) {
        /* Oldest first for the caller: walk the reply backwards. */
        for (size_t i = r->elements; i-- > 0;) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !e->element[0]->str)
                continue;
            const redisReply *f = e->element[1];
            double v = 0;
            for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2)
                if (f->element[j]->str && strcmp(f->element[j]->str, "v") == 0 &&
                    f->element[j + 1]->str)
                    v = strtod(f->element[j + 1]->str, NULL);
            sample(ctx, strtoull(e->element[0]->str, NULL, 10), v);
            n++;
        }
    }
    freeReplyObject(r);
    return n;
}
