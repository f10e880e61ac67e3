/* store — job, segment and worker state in Redis: the farm's source of
 * truth (the coordinator's memory is a cache of it) and what dashboards and
 * operators' scripts read. Every key starts with a configurable prefix; the
 * layout is documented in README.md ("State in Redis") and must stay in
 * step with this file:
 *
 *   <p>job:<id>            hash  id state engine spec frames segments
 *                                segments_done frames_stitched output error
 *                                priority created_ms started_ms finished_ms
 *                                output_bytes batch frames_to_render
 *                                frames_rendered render_ms segment_workers
 *                                duration_s
 *   <p>job:<id>:seg:<k>    hash  state attempt worker first frames
 *                                started_ms finished_ms render_ms error
 *                                failures tried
 *   <p>jobs                zset  job ids scored by created_ms
 *   <p>jobs:active         set   ids of jobs not yet finished
 *   <p>worker:<id>         hash  id engines gpus capacity compute hostname pid
 *                                state last_seen_ms segments_done
 *                                fail_streak quarantined_until_ms
 *                                kept_from_jobs last_error current fps
 *                                frames_done failures
 *   <p>workers             set   worker ids ever seen
 *   <p>events              stream (capped) type job seg worker msg
 *   <p>stats               hash  counters (stale_frames, segments_retried...)
 *   <p>job:<id>:log        list  (capped) "<ts_ms> <text>": events, engine stderr
 *   <p>metrics             hash  counters since the farm's first start
 *   <p>gauges              hash  current values (queue depth, workers alive...)
 *   <p>ts:<series>         stream (capped) one sample `v` per interval
 *   <p>batch:<id>          hash  id name state created_ms jobs jobs_done
 *                                jobs_failed jobs_cancelled frames_to_render
 *                                frames_rendered
 *   <p>batch:<id>:jobs     zset  job ids scored by line
 *   <p>batches             zset  batch ids scored by created_ms
 *
 * The connection is synchronous (hiredis) with a 1 s timeout; a command
 * whose connection was closed (a restarted server) reconnects once and
 * retries, so a Redis restart costs a failed write at most, never a crashed
 * coordinator. A timeout is not retried. After any failure (also an error
 * reply such as LOADING or MISCONF) reconnects are spaced by a growing
 * backoff (0.1 s to 5 s) and commands while disconnected fail at once;
 * store_poll tells the caller when Redis answers again, so that it can
 * write again the state it could not write meanwhile.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#include "rf_spec.h"

typedef struct store store;

typedef struct store_opts {
    const char *addr;   /* "host:port" or "unix:/path/to/socket" */
    const char *prefix; /* e.g. "rfarm:" */
    unsigned events_max; /* events stream cap; 0: 10000 */
} store_opts;

int store_new(const store_opts *opts, store **out, char *err, size_t errlen);
void store_free(store *s);

/* Call often. Returns 1 exactly once after an outage, when Redis answers
 * again (the caller then rewrites its state); 0 otherwise. */
int store_poll(store *s);
/* Whether Redis is reachable as far as the last command knows. */
int store_available(const store *s);
/* How many commands have failed or been lost so far: a write queued while
 * this count was n is known written once store_flush succeeds with the
 * count still n (a flush in between may have read its reply). */
uint64_t store_failures(const store *s);

/* Deferred writes: with `on`, writes are queued and sent together by
 * store_flush, one round trip for all the writes of a turn of the
 * coordinator's loop instead of one each. Their return value then only
 * says the write was queued; a failure shows at store_flush (which also
 * starts an outage, so the state is written again once Redis is back).
 * Reads, job creation and store_flush itself are synchronous. */
void store_set_deferred(store *s, int on);
/* Send the queued writes and read their replies: 0 when all succeeded. */
int store_flush(store *s);

/* What a job's record holds besides its spec. */
typedef struct store_job_meta {
    const char *batch;         /* NULL or "": not part of a batch */
    uint32_t line;             /* its line in the batch file */
    uint64_t frames_to_render; /* sum of its segments' frames */
} store_job_meta;

/* Record a new job (state queued) and its segments (store_jobs.c).
 * Returns 0; 1 when a job with that id already exists ("id: job 'x'
 * already exists" in err, nothing written); -1 on failure (nothing left
 * half-written, as far as Redis lets that be undone). */
int store_job_create(store *s, const rf_spec *spec, const store_job_meta *meta, uint32_t nseg,
                     const uint32_t *seg_first, const uint32_t *seg_frames, char *err,
                     size_t errlen);

/* Many jobs at once, in pipelined chunks. *result of each: 0 recorded now,
 * 1 it existed already (left alone), -1 when the call failed. Returns 0,
 * or -1 with err set and nothing of this call left recorded. */
typedef struct store_new_job {
    const rf_spec *spec;
    store_job_meta meta;
    uint32_t nseg;
    const uint32_t *seg_first, *seg_frames;
    int *result;
} store_new_job;
int store_jobs_create(store *s, store_new_job *jobs, size_t n, char *err, size_t errlen);

/* Set a job's state; error may be NULL. Terminal states (done, failed,
 * cancelled) also set finished_ms and leave jobs:active. */
int store_job_state(store *s, const char *job, const char *state, const char *error);
/* The same, with the time of the change (wall ms; 0: now) in finished_ms
 * or started_ms: a record written late (after an outage) keeps the time
 * it happened. started_ms, when not 0, is written too (a job that started
 * and ended during one outage has no start in Redis yet). */
int store_job_state_at(store *s, const char *job, const char *state, const char *error,
                       uint64_t at_ms, uint64_t started_ms);
int store_job_progress(store *s, const char *job, uint32_t segments_done, uint32_t frames_stitched);
int store_job_output(store *s, const char *job, const char *path, uint64_t bytes);

/* A segment's state other than running and done (queued, failed...). */
int store_seg_state(store *s, const char *job, uint32_t seg, const char *state, uint32_t attempt,
                    const char *worker, const char *error);
/* A segment is running on worker since started_ms (wall clock; 0: now). */
int store_seg_running(store *s, const char *job, uint32_t seg, uint32_t attempt,
                      const char *worker, uint64_t started_ms);
/* A segment is done: its bytes are durable in the spool, in its own file,
 * or, when pack is not NULL, at "PACK:OFF" in a pack file (spool.h).
 * started_ms (0: not written) and finished_ms (0: now) are wall clock,
 * kept as they were when the record is written again after an outage. */
int store_seg_done(store *s, const char *job, uint32_t seg, uint32_t attempt, const char *worker,
                   uint64_t render_ms, uint64_t started_ms, uint64_t finished_ms,
                   const char *pack);

typedef struct store_worker {
    const char *id, *engines, *compute, *hostname, *state;
    uint32_t gpus, capacity, pid;
} store_worker;
int store_worker_hello(store *s, const store_worker *w);
/* A worker's state, last seen time and segments done; `current` (what it
 * renders, "job:seg,...") too unless NULL. */
int store_worker_seen(store *s, const char *id, const char *state, uint32_t segments_done,
                      const char *current);
/* A worker's failure record: blamed failures in a row, until when (wall ms;
 * 0: not) it is kept away from all work, the unfinished jobs it is kept
 * from (comma separated) and its last error (NULL: unchanged). */
int store_worker_health(store *s, const char *id, uint32_t fail_streak,
                        uint64_t quarantined_until_ms, const char *kept_from_jobs,
                        const char *last_error);
/* A segment's failures so far and the workers that failed it. */
int store_seg_retry(store *s, const char *job, uint32_t seg, uint32_t failures, const char *tried);

typedef struct store_stat {
    const char *name;
    uint64_t value;
} store_stat;
/* Overwrite the coordinator's counters in <p>stats. */
int store_stats(store *s, const store_stat *stats, size_t n);

/* Append an event (type, job, seg, worker, msg; NULLs omitted). */
int store_event(store *s, const char *type, const char *job, int seg, const char *worker,
                const char *msg);

/* Records as field/value pairs (store_read.c). The callback sees each
 * field; each returns 0 when the record exists, 1 when it does not, -1 on
 * error (err set). */
typedef void (*store_field_fn)(void *ctx, const char *name, const char *value);
int store_job_read(store *s, const char *job, store_field_fn field, void *ctx, char *err,
                   size_t errlen);
int store_seg_read(store *s, const char *job, uint32_t seg, store_field_fn field, void *ctx,
                   char *err, size_t errlen);
int store_worker_read(store *s, const char *id, store_field_fn field, void *ctx, char *err,
                      size_t errlen);
/* Every segment record of a job (pipelined), field by field with its
 * index; 0 or -1 (err set). */
int store_segs_read(store *s, const char *job, uint32_t nseg,
                    void (*field)(void *ctx, uint32_t k, const char *name, const char *value),
                    void *ctx, char *err, size_t errlen);
/* Members of <p>jobs:active / <p>workers, one callback each; returns how
 * many, or -1 (err set). */
int store_active_jobs(store *s, void (*id)(void *ctx, const char *job), void *ctx, char *err,
                      size_t errlen);
int store_worker_ids(store *s, void (*id)(void *ctx, const char *worker), void *ctx, char *err,
                     size_t errlen);

/* The ids of the most recent `max` jobs, newest first. Fills ids (each
 * RF_ID_MAX+1 bytes) and returns how many, or -1. */
int store_recent_jobs(store *s, size_t max, char (*ids)[RF_ID_MAX + 1], char *err, size_t errlen);

/* ---- batches, logs, single fields (store_batch.c) ---- */

/* Create a batch's record, or add to an existing one's totals. */
int store_batch_create(store *s, const char *id, const char *name, uint32_t jobs,
                       uint64_t frames_to_render);
int store_batch_incr(store *s, const char *id, const char *field, int64_t delta);
/* HSET / HINCRBY one field of <p><kind>:<id> (kind "job", "batch", "worker"). */
int store_hset(store *s, const char *kind, const char *id, const char *field, const char *value);
int store_hincr(store *s, const char *kind, const char *id, const char *field, int64_t delta);
/* Append n lines ("<ts_ms> <text>" each) to a job's log, capped at its
 * last STORE_JOB_LOG_MAX lines: with trim 0 the cap is not applied (the
 * caller knows the log is shorter, and saves Redis an LTRIM). */
#define STORE_JOB_LOG_MAX 1000
int store_job_log(store *s, const char *job, const char *const *lines, size_t n, int trim);
/* A job's progress sums (absolute: the coordinator holds them). */
int store_job_rendered(store *s, const char *job, uint64_t frames_rendered, uint64_t render_ms);
/* A job's log lines, oldest first; returns how many, or -1. */
int store_job_log_read(store *s, const char *job, void (*line)(void *ctx, const char *text),
                       void *ctx, char *err, size_t errlen);
int store_batch_read(store *s, const char *id, store_field_fn field, void *ctx, char *err,
                     size_t errlen);
/* Recent batches (newest first) / a batch's jobs (in line order): fills
 * ids, returns how many or -1. */
int store_recent_batches(store *s, size_t max, char (*ids)[RF_ID_MAX + 1], char *err,
                         size_t errlen);
int store_batch_jobs(store *s, const char *batch, size_t max, char (*ids)[RF_ID_MAX + 1],
                     char *err, size_t errlen);

/* A batch's totals recounted from its jobs' records and written as
 * absolute values, with its state (after an outage, when increments may
 * have been lost). */
typedef struct store_batch_totals {
    uint32_t jobs, jobs_done, jobs_failed, jobs_cancelled;
    uint64_t frames_rendered, frames_to_render;
} store_batch_totals;
int store_batch_recount(store *s, const char *id, const char *state, store_batch_totals *t);

/* ---- metrics (store_metrics.c) ---- */

/* HINCRBY each non-zero delta into <p>metrics. */
int store_metrics_add(store *s, const store_stat *deltas, size_t n);
/* HSET the gauges into <p>gauges. */
int store_gauges(store *s, const store_stat *gauges, size_t n);
/* A worker's rate and totals in its <p>worker:<id> record. */
int store_worker_figures(store *s, const char *id, double fps, uint64_t frames_done,
                         uint32_t failures);
/* Append a sample to the capped stream <p>ts:<series>. */
int store_series_add(store *s, const char *series, double value, unsigned maxlen);
/* HGETALL <p><which> ("metrics", "gauges", "stats"): as store_hash_read. */
int store_metrics_read(store *s, const char *which, store_field_fn field, void *ctx, char *err,
                       size_t errlen);
/* Samples of a series since since_ms (0: all), at most the newest `max`,
 * oldest first; returns how many or -1. */
int store_series_read(store *s, const char *series, uint64_t since_ms, size_t max,
                      void (*sample)(void *ctx, uint64_t ts_ms, double value), void *ctx,
                      char *err, size_t errlen);

/* Last Redis error, for logs. */
const char *store_last_error(const store *s);

#endif
