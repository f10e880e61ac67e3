/* store_jobs — recording new jobs in Redis, one or thousands at a time.
 *
 * A job's id is claimed with HSETNX on its record, so two submissions of
 * one id cannot both win; then its record, its place in the indexes (and
 * its batch's list) and its segments' records are written. Everything goes
 * in pipelined chunks of STORE_PIPELINE_BATCH commands, so a 10,000-job
 * batch costs tens of round trips, not tens of thousands.
 *
 * A claim whose record never got its spec (the coordinator or Redis died
 * between claim and record) does not count as an existing job: it is
 * claimed again, so submitting the same batch again repairs it. When
 * recording fails, the claims and records of this call are deleted (best
 * effort: Redis may be the thing that failed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_map.h"
#include "rf_util.h"
#include "store_internal.h"

/* Commands queued with their own copies of their arguments, sent a chunk
 * at a time. */
typedef struct cmdq {
    store *s;
    store_argv cmd[STORE_PIPELINE_BATCH];
    char *mem[STORE_PIPELINE_BATCH];
    long long ints[STORE_PIPELINE_BATCH];
    size_t n;
    int failed;
} cmdq;

static int cmdq_send(cmdq *q) {
    if (q->n && !q->failed && store_run_pipelined(q->s, q->cmd, q->n) != 0)
        q->failed = 1;
    for (size_t i = 0; i < q->n; i++)
        free(q->mem[i]);
    q->n = 0;
    return q->failed ? -1 : 0;
}

static void cmdq_add(cmdq *q, int argc, const char *const *args) {
    if (q->failed)
        return;
    size_t total = 0;
    for (int i = 0; i < argc; i++)
        total += strlen(args[i]) + 1;
    char *m = malloc(total);
    if (!m || argc > STORE_MAX_ARGS) {
        free(m);
        snprintf(q->s->last_err, sizeof q->s->last_err, "out of memory queueing a command");
        q->failed = 1;
        return;
    }
    store_argv *a = &q->cmd[q->n];
    a->n = 0;
    char *p = m;
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(args[i]);
        memcpy(p, args[i], len + 1);
        a->v[a->n] = p;
        a->len[a->n] = len;
        a->n++;
        p += len + 1;
    }
    q->mem[q->n++] = m;
    if (q->n == STORE_PIPELINE_BATCH)
        cmdq_send(q);
}

/* One command per job, all with integer replies, into out[i]. */
static int ints_each(store *s, const store_new_job *jobs, size_t n, const char *verb,
                     const char *field, const char *value, long long *out) {
    store_argv *cmd = calloc(STORE_PIPELINE_BATCH, sizeof *cmd);
    char(*keys)[256] = malloc(STORE_PIPELINE_BATCH * sizeof *keys);
    int rc = cmd && keys ? 0 : -1;
    for (size_t i0 = 0; rc == 0 && i0 < n; i0 += STORE_PIPELINE_BATCH) {
        size_t m = n - i0 < STORE_PIPELINE_BATCH ? n - i0 : STORE_PIPELINE_BATCH;
        for (size_t i = 0; i < m; i++) {
            store_argv *c = &cmd[i];
            c->n = 0;
            store_key(s, keys[i], sizeof keys[i], "job:%s", jobs[i0 + i].spec->id, 0);
            store_arg(c, verb);
            store_arg(c, keys[i]);
            store_arg(c, field);
            if (value)
                store_arg(c, value[0] ? value : jobs[i0 + i].spec->id);
        }
        rc = store_run_pipelined_ints(s, cmd, m, out + i0);
    }
    if (!cmd || !keys)
        snprintf(s->last_err, sizeof s->last_err, "out of memory");
    free(cmd);
    free(keys);
    return rc;
}

/* has_spec[i] for the jobs whose claim was lost (won[i] == 0): whether
 * their record is whole. Only those are asked: a new batch asks nothing. */
static int taken_have_spec(store *s, const store_new_job *jobs, size_t n, const long long *won,
                           long long *has_spec) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += won[i] == 0;
    if (m == 0)
        return 0;
    store_new_job *taken = malloc(m * sizeof *taken);
    long long *got = malloc(m * sizeof *got);
    int rc = -1;
    if (taken && got) {
        for (size_t i = 0, t = 0; i < n; i++)
            if (won[i] == 0)
                taken[t++] = jobs[i];
        rc = ints_each(s, taken, m, "HEXISTS", "spec", NULL, got);
        for (size_t i = 0, t = 0; rc == 0 && i < n; i++)
            if (won[i] == 0)
                has_spec[i] = got[t++];
    } else {
        snprintf(s->last_err, sizeof s->last_err, "out of memory");
    }
    free(taken);
    free(got);
    return rc;
}

static void record(cmdq *q, const store_new_job *j, uint64_t now) {
    store *s = q->s;
    const rf_spec *spec = j->spec;
    const char *batch = j->meta.batch ? j->meta.batch : "";
    char jk[256], zk[256], ak[256], bk[256], nowb[24], frames[16], nseg[16], tr[24], prio[16],
        line[16];
    store_key(s, jk, sizeof jk, "job:%s", spec->id, 0);
    snprintf(zk, sizeof zk, "%sjobs", s->prefix);
    snprintf(ak, sizeof ak, "%sjobs:active", s->prefix);
    snprintf(nowb, sizeof nowb, "%llu", (unsigned long long)now);
    snprintf(frames, sizeof frames, "%u", spec->frames);
    snprintf(nseg, sizeof nseg, "%u", j->nseg);
    snprintf(tr, sizeof tr, "%llu", (unsigned long long)j->meta.frames_to_render);
    snprintf(prio, sizeof prio, "%d", spec->priority);
    snprintf(line, sizeof line, "%u", j->meta.line);
    char *json = rf_spec_to_json(spec);
    if (!json) {
        snprintf(s->last_err, sizeof s->last_err, "out of memory");
        q->failed = 1;
        return;
    }
    const char *h[] = {"HSET", jk, "state", "queued", "engine", spec->engine, "spec", json,
                       "frames", frames, "segments", nseg, "segments_done", "0",
                       "frames_stitched", "0", "frames_to_render", tr, "frames_rendered", "0",
                       "output", spec->output_path, "error", "", "priority", prio, "batch", batch,
                       "created_ms", nowb};
    cmdq_add(q, (int)(sizeof h / sizeof h[0]), h);
    free(json);
    const char *z[] = {"ZADD", zk, nowb, spec->id};
    cmdq_add(q, 4, z);
    const char *a[] = {"SADD", ak, spec->id};
    cmdq_add(q, 3, a);
    if (batch[0]) {
        store_key(s, bk, sizeof bk, "batch:%s:jobs", batch, 0);
        const char *b[] = {"ZADD", bk, line, spec->id};
        cmdq_add(q, 4, b);
    }
    for (uint32_t k = 0; k < j->nseg; k++) {
        char sk[256], first[16], fr[16];
        store_key(s, sk, sizeof sk, "job:%s:seg:%ld", spec->id, (long)k);
        snprintf(first, sizeof first, "%u", j->seg_first[k]);
        snprintf(fr, sizeof fr, "%u", j->seg_frames[k]);
        const char *g[] = {"HSET", sk, "state", "queued", "attempt", "0", "first", first,
                           "frames", fr};
        cmdq_add(q, 10, g);
    }
}

/* Best-effort removal of what this call claimed or wrote. */
static void undo(store *s, const store_new_job *jobs, size_t n) {
    cmdq *q = calloc(1, sizeof *q);
    if (!q)
        return;
    q->s = s;
    char zk[256], ak[256];
    snprintf(zk, sizeof zk, "%sjobs", s->prefix);
    snprintf(ak, sizeof ak, "%sjobs:active", s->prefix);
    for (size_t i = 0; i < n && !q->failed; i++) {
        if (*jobs[i].result != 0)
            continue;
        const char *id = jobs[i].spec->id;
        char jk[256];
        store_key(s, jk, sizeof jk, "job:%s", id, 0);
        const char *d[] = {"DEL", jk};
        cmdq_add(q, 2, d);
        const char *z[] = {"ZREM", zk, id};
        cmdq_add(q, 3, z);
        const char *a[] = {"SREM", ak, id};
        cmdq_add(q, 3, a);
        if (jobs[i].meta.batch && jobs[i].meta.batch[0]) {
            char bk[256];
            store_key(s, bk, sizeof bk, "batch:%s:jobs", jobs[i].meta.batch, 0);
            const char *b[] = {"ZREM", bk, id};
            cmdq_add(q, 3, b);
        }
        for (uint32_t k = 0; k < jobs[i].nseg; k++) {
            char sk[256];
            store_key(s, sk, sizeof sk, "job:%s:seg:%ld", id, (long)k);
            const char *g[] = {"DEL", sk};
            cmdq_add(q, 2, g);
        }
    }
    cmdq_send(q);
    free(q);
}

int store_jobs_create(store *s, store_new_job *jobs, size_t n, char *err, size_t errlen) {
    if (n == 0)
        return 0;
    long long *won = malloc(n * sizeof *won), *has_spec = malloc(n * sizeof *has_spec);
    cmdq *q = calloc(1, sizeof *q);
    rf_map *seen = rf_map_new(); /* ids recorded by this call: a repeat is a duplicate */
    int rc = -1;
    if (!won || !has_spec || !q || !seen) {
        snprintf(err, errlen, "store: out of memory recording %zu jobs", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        *jobs[i].result = 1;
    /* Claim every id; then look again at those that were taken. */
    if (ints_each(s, jobs, n, "HSETNX", "id", "", won) != 0) {
        snprintf(err, errlen, "store: claiming job ids failed: %s", s->last_err);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        has_spec[i] = 1;
    if (taken_have_spec(s, jobs, n, won, has_spec) != 0) {
        snprintf(err, errlen, "store: claiming job ids failed: %s", s->last_err);
        goto out;
    }
    q->s = s;
    uint64_t now = rf_wall_ms();
    for (size_t i = 0; i < n && !q->failed; i++) {
        /* Ours: we just claimed it, or an earlier claim never got its
         * record. An id twice in one call is recorded once. */
        int ours = won[i] == 1 || (won[i] == 0 && has_spec[i] == 0);
        if (!ours || rf_map_get(seen, jobs[i].spec->id))
            continue;
        if (rf_map_put(seen, jobs[i].spec->id, &jobs[i]) != 0) {
            snprintf(s->last_err, sizeof s->last_err, "out of memory");
            q->failed = 1;
            break;
        }
        *jobs[i].result = 0;
        record(q, &jobs[i], now);
    }
    if (cmdq_send(q) != 0) {
        snprintf(err, errlen, "store: recording jobs failed: %s", s->last_err);
        undo(s, jobs, n);
        for (size_t i = 0; i < n; i++)
            *jobs[i].result = -1;
        goto out;
    }
    rc = 0;
out:
    free(won);
    free(has_spec);
    free(q);
    rf_map_free(seen);
    return rc;
}

int store_job_create(store *s, const rf_spec *spec, const store_job_meta *meta, uint32_t nseg,
                     const uint32_t *seg_first, const uint32_t *seg_frames, char *err,
                     size_t errlen) {
    int result = -1;
    store_new_job j = {.spec = spec, .nseg = nseg, .seg_first = seg_first,
                       .seg_frames = seg_frames, .result = &result};
    if (meta)
        j.meta = *meta;
    if (store_jobs_create(s, &j, 1, err, errlen) != 0)
        return -1;
    if (result == 1) {
        snprintf(err, errlen, "id: job '%s' already exists", spec->id);
        return 1;
    }
    return 0;
}
