/* coord_internal — the coordinator's in-memory model, shared by its files:
 *   coord.c          the event loop, life cycle, leases, stats, Redis catch-up
 *   coord_jobs.c     jobs: create, recover after a restart, retry, finish, cancel
 *   coord_workers.c  workers: their messages, dispatch, health (bans, quarantine)
 *   coord_batch.c    batches: submission, pause / resume / cancel, totals
 *   client_api.c     the CLI's requests: routing, single submissions
 *   client_status.c  status, workers and logs replies
 *   coord_metrics.c  counters, gauges and time series for the dashboards
 * Everything here is touched by the loop's thread only. */
#ifndef COORD_INTERNAL_H
#define COORD_INTERNAL_H

#include <stdint.h>

#include "commit.h"
#include "coord.h"
#include "planner.h"
#include "rf_map.h"
#include "rf_spec.h"
#include "rfarm.pb-c.h"
#include "sched.h"
#include "spool.h"
#include "stitch.h"
#include "store.h"

#define LOG "coordinator"

/* COMMITTING: the worker delivered it; its file is being made durable
 * (commit.h) before it counts as done. */
typedef enum { SEG_QUEUED = 0, SEG_RUNNING, SEG_COMMITTING, SEG_DONE } coord_seg_state;

typedef struct coord_seg {
    coord_seg_state state;
    uint32_t attempt;      /* of the current or last assignment */
    char worker[RF_ID_MAX + 1]; /* who holds the current assignment */
    uint32_t frames_recv;  /* frames of the current attempt on disk */
    int in_spool;          /* the current attempt's worker writes the spool file itself */
    int fd;                /* spool file being written, -1 when none */
    uint8_t *mem;          /* or, for a small segment, its frames in memory (COORD_MEM_SEGMENT_MAX) */
    spool_loc loc;         /* where it is (or goes) in the spool; a pack's is referenced */
    uint64_t started_ms;   /* monotonic, for its lease */
    uint64_t started_wall_ms; /* wall clock, for its record */
    uint64_t retry_at_ms;  /* queued after a failure: not handed out before (monotonic) */
    uint64_t render_ms;    /* the worker's, for the done record */
    uint64_t finished_ms;  /* wall clock when it was done, for the done record */
    unsigned failures;
    char tried[256]; /* workers that failed it, comma separated */
    char last_error[512];
} coord_seg;

/* A segment of at most this many bytes is gathered in memory and written
 * by the commit thread into a pack file when it is done (spool.h),
 * instead of into a part file the loop creates when assigning it:
 * creating a file per tiny segment was most of the loop's time on ext4
 * (bench/README.md). The bound keeps what in-flight segments hold small
 * (64 slots x 1,000 workers x 64 KiB = 4 GiB at the very worst; 16x16
 * frames are 384 B). */
#define COORD_MEM_SEGMENT_MAX SPOOL_PACK_SEGMENT_MAX

typedef struct coord_job {
    rf_spec *spec;
    plan *plan;
    coord_seg *segs;
    stitch_job *stitch;
    char spool[RF_PATH_MAX];
    size_t frame_bytes;
    uint64_t seq;
    int started;
    uint32_t segments_done;
    uint32_t frames_stitched;
    uint64_t started_wall_ms; /* when its first segment was assigned, kept from its
                               * record across a restart; 0: not yet */
    uint32_t delayed;        /* segments waiting out a retry backoff */
    rf_map *worker_failures; /* worker id -> failures of this job (as uintptr_t) */
    char batch[RF_ID_MAX + 1]; /* "" when submitted on its own */
    int paused;
    uint64_t frames_to_render, frames_rendered; /* sums of segment frames */
    uint64_t render_ms;      /* sum of its done segments' render times */
    uint32_t log_lines;      /* lines added to its Redis log (see coord_job_log) */
    /* What this turn changed, sent at its end (coord_jobs_flush): log
     * lines ('\0' after each) and whether its progress moved; and its
     * place in the coordinator's list of jobs with something to send. A
     * job whose segments finish together gets one progress write. */
    char *log_buf;
    size_t log_len, log_cap;
    uint32_t log_n;
    int progress_dirty;
    struct coord_job *log_prev, *log_next;
    int log_listed;
} coord_job;

/* A batch with unfinished jobs in memory. */
typedef struct coord_batch {
    char id[RF_ID_MAX + 1];
    uint32_t open_jobs; /* unfinished jobs of it in memory */
    int paused;
    int cancelled;
    int ended; /* no open job left; kept until Redis is known to have its end */
    uint64_t frames_unsent; /* rendered frames not yet added to its record */
} coord_batch;

typedef struct coord_slot {
    char job[RF_ID_MAX + 1];
    uint32_t seg, attempt;
    uint64_t assigned_ms; /* monotonic */
} coord_slot;

#define COORD_MAX_CAPACITY 64

typedef struct coord_worker {
    char id[RF_ID_MAX + 1]; /* also its ZeroMQ routing id */
    char engines[256];      /* comma separated */
    uint32_t credits;
    uint32_t capacity;
    uint32_t pid;           /* of the process behind the id: a new one is a restart */
    int draining;           /* said so in a heartbeat: no new work */
    uint64_t last_seen_ms;
    uint32_t segments_done;
    uint64_t frames_received; /* frames it delivered, all attempts */
    uint64_t frames_at_flush; /* frames_received when its rate was last figured */
    double fps;               /* its recent rate, smoothed */
    int dirty;                /* its Redis record is behind (coord_workers_flush) */
    int spool_shared;         /* it writes frames into the spool itself (Welcome.spool) */
    unsigned nslots;
    coord_slot slots[COORD_MAX_CAPACITY]; /* segments it holds */
} coord_worker;

/* What the farm remembers of a worker across its connections: failures
 * are held against an id even if the process reconnects. */
typedef struct coord_health {
    uint32_t fail_streak;              /* blamed failures in a row, distinct jobs */
    char last_blamed_job[RF_ID_MAX + 1];
    uint64_t quarantined_until_ms;     /* monotonic; 0: not quarantined */
    uint64_t quarantined_until_wall;   /* the same instant, wall clock, for Redis */
    uint32_t failures;                 /* failed attempts, all jobs, blamed or not */
} coord_health;

typedef struct coord_stats {
    uint64_t stale_frames;     /* frames dropped: late, or from a stale attempt */
    uint64_t stale_results;    /* done/failed results dropped for the same reason */
    uint64_t segments_rendered;
    uint64_t segments_retried; /* failed segments queued again */
    uint64_t segments_lost;    /* segments re-queued because their worker was lost */
    uint64_t jobs_recovered;   /* unfinished jobs reloaded at start-up */
    /* For <p>metrics (coord_metrics.c), not in <p>stats: */
    uint64_t jobs_submitted, jobs_done, jobs_failed, jobs_cancelled;
    uint64_t frames_stitched;  /* frames written to outputs */
    uint64_t frames_received, bytes_received; /* frames (and their pixels) workers delivered */
} coord_stats;

/* What coord_metrics.c remembers between its writes. */
#define COORD_MX_PRIOS 32
typedef struct coord_mx {
    coord_stats added;        /* counters as last added to <p>metrics */
    coord_stats sampled;      /* counters at the last time-series sample */
    uint64_t next_flush_ms, flushed_ms, next_sample_ms, sampled_ms; /* monotonic */
    int prio[COORD_MX_PRIOS]; /* priorities that had queued work: their gauge */
    unsigned nprio;           /* goes to 0 rather than vanishing */
} coord_mx;

/* In the spool: the key that workers sharing it read (coord.c). */
#define COORD_SPOOL_KEY_FILE ".spool-key"

struct coord {
    coord_config cfg;
    char spool[RF_PATH_MAX]; /* absolute */
    char spool_key[32];
    void *zctx;
    void *wsock, *csock, *events, *commits_in;
    commit_pool *commits;
    spool_packs *packs;
    store *st;
    stitch_pool *pool;
    sched *sched;
    rf_map *jobs;    /* id -> coord_job*, unfinished jobs only */
    rf_map *workers; /* id -> coord_worker*, connected workers */
    rf_map *health;  /* id -> coord_health*, every worker seen */
    rf_map *batches; /* id -> coord_batch*, batches with unfinished jobs */
    uint64_t seq;
    uint32_t epoch;    /* random per process; see Assign.epoch in the proto */
    uint32_t delayed;  /* segments waiting out a retry backoff, all jobs */
    coord_stats stats;
    int stats_dirty;
    int workers_dirty, batches_dirty; /* records to write at the end of the turn */
    coord_job *log_jobs; /* jobs with log lines to write at the end of the turn */
    struct coord_final_q *finals; /* final records of this turn (coord_final.c) */
    size_t nfinals, capfinals;
    coord_mx mx;
    struct http_server *http; /* NULL unless --http */
};

/* coord.c */
void coord_store_warn(coord *c, int rc, const char *what);
/* Send what this turn of the loop changed in one round trip (the records
 * written once per turn, the jobs' log lines, everything queued) and
 * settle the final records of the jobs that ended in it. Returns
 * store_flush's result. */
int coord_write_turn(coord *c);
int coord_send_to_worker(coord *c, const char *id, const Rfarm__CoordMsg *m);

/* coord_final.c */
/* A finished job's final record (what coord_job_finish has queued). */
typedef struct coord_final {
    const char *job, *state, *error, *output;
    const char *spool; /* the job's spool directory, removed once settled */
    const uint32_t *packs; /* the packs its segments are in (one per segment) */
    size_t npacks;
    uint64_t output_bytes;
    uint32_t segments_done, frames_stitched;
    uint64_t frames_rendered, render_ms;
    /* A done job's results ("k:worker,...", the video's seconds); NULL. */
    const char *segment_workers;
    double duration_s;
    uint64_t started_ms, finished_ms; /* when the job started (0: never) and ended, wall clock */
} coord_final;
/* Queue f's writes to the job's Redis record (progress, output, results,
 * then the state). Returns the first failure's code, or 0. */
int coord_final_store(coord *c, const coord_final *f);
/* <spool>/.final/<job>: where a record Redis did not take is kept. */
void coord_final_path(const coord *c, const char *job, char *buf, size_t len);
/* f's writes were queued (queued 1) or could not be (0): it is settled by
 * coord_finals_settle after the turn's flush, or now. Copies f. */
void coord_finals_add(coord *c, const coord_final *f, int queued);
/* After the turn's store_flush (its result `flushed`): keep the records
 * that may not have been written, remove the jobs' spool directories. */
void coord_finals_settle(coord *c, int flushed);
void coord_finals_free(coord *c);
/* Write the final records of jobs that ended while Redis was away (kept in
 * the spool as .final/<id> files, so a restart does not lose them either). */
void coord_finals_write_kept(coord *c);

/* coord_jobs.c */
/* Create a job from a validated spec; takes ownership of spec. batch may
 * be NULL. Returns 0; 1 when a job with that id exists already (nothing
 * done); -1 with err set. */
int coord_job_add(coord *c, rf_spec *spec, const char *batch, uint32_t line, char *err,
                  size_t errlen);
/* The in-memory side of a job already recorded in Redis (coord_job_add's
 * second half; batches record their jobs together first). Takes spec. */
int coord_job_admit(coord *c, rf_spec *spec, const char *batch, char *err, size_t errlen);
/* Pause or resume a job (Redis state "paused", or back to queued/running). */
void coord_job_pause(coord *c, coord_job *j, int paused);
/* A job's log line (Redis list <p>job:<id>:log), written with the job's
 * other lines of this turn by coord_jobs_flush. */
void coord_job_log(coord *c, coord_job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Its progress (frames rendered, render time) moved: written once at the
 * end of the turn by coord_jobs_flush. */
void coord_job_progressed(coord *c, coord_job *j);
/* Write what the turn changed in jobs: one RPUSH of log lines per job
 * instead of one per line (a segment adds two), and one progress write
 * per job instead of one per segment. */
void coord_jobs_flush(coord *c);
/* Reload every unfinished job from Redis (start-up). */
int coord_jobs_recover(coord *c, char *err, size_t errlen);
/* End a job: state done | failed | cancelled (output_bytes: the video's
 * size when done); workers still rendering its segments are told to stop.
 * Frees j. */
void coord_job_finish(coord *c, coord_job *j, const char *state, const char *error,
                      uint64_t output_bytes);
/* A segment attempt failed (worker's report, or a broken delivery). */
void coord_job_fail_segment(coord *c, coord_job *j, uint32_t k, const char *worker,
                            const char *error);
/* Segments whose retry backoff has passed go back to the queue. */
void coord_jobs_release_retries(coord *c);
/* Write every unfinished job's state again (after a Redis outage). */
void coord_jobs_resync(coord *c);
void coord_job_free(coord_job *j);
void coord_seg_close(coord_job *j, uint32_t k, int remove_part);
/* Segment k's done record (with where it is in the spool), queued. */
int coord_seg_store_done(coord *c, const coord_job *j, uint32_t k);
void coord_seg_part_path(const coord_job *j, uint32_t k, uint32_t attempt, char *buf, size_t len);

/* coord_workers.c */
void coord_on_worker_message(coord *c);
/* A segment's commit finished (commit.h). */
void coord_on_commit(coord *c, const commit_result *res);
void coord_dispatch(coord *c);
void coord_check_leases(coord *c);
/* The loop itself was stuck (a slow Redis): workers' silence meanwhile is
 * not theirs, so their leases are extended by as much. */
void coord_workers_forgive(coord *c, uint64_t stall_ms);
void coord_worker_drop_slot(coord_worker *w, const char *job, uint32_t seg);
/* Tell worker w to stop segment k of j (its current attempt). */
void coord_cancel_attempt(coord *c, coord_worker *w, const coord_job *j, uint32_t k);
void coord_workers_resync(coord *c);
/* Write the records of workers that changed this turn. */
void coord_workers_flush(coord *c);

/* coord_health.c */
/* Failure bookkeeping: a failed attempt by `worker` of job j; a segment
 * rendered by `worker` after others had failed it. */
void coord_health_failed(coord *c, coord_job *j, const char *worker, const char *error);
void coord_health_rendered(coord *c, coord_job *j, uint32_t k, const char *worker);
/* Whether a worker may take segments of j now (not quarantined, not kept
 * from j unless no one else can run it). */
int coord_worker_may_run(coord *c, const coord_worker *w, const coord_job *j);
void coord_health_free_all(coord *c);
/* The comma-separated unfinished jobs a worker is kept from. */
void coord_worker_kept_from(coord *c, const char *worker, char *buf, size_t len);

/* coord_batch.c */
/* A job of batch `id` was created / ended (state done | failed | cancelled). */
int coord_batch_job_added(coord *c, const char *id); /* 1: the batch is paused */
void coord_batch_job_ended(coord *c, const coord_job *j, const char *state);
coord_batch *coord_batch_get(coord *c, const char *id);
/* Frames of batch `id` rendered: added to its record by coord_batches_flush,
 * once per turn of the loop. */
void coord_batch_rendered(coord *c, const char *id, uint32_t frames);
void coord_batches_flush(coord *c);
void coord_batches_free(coord *c);
/* After an outage: every batch in memory gets its totals recounted from its
 * jobs' records (increments may have been lost) and its state written. */
void coord_batches_resync(coord *c);
/* Forget ended batches, once a flush has put their end in Redis. */
void coord_batches_reap(coord *c);
/* Requests from the CLI (client_api.c routes them here). The reply is
 * built into *reply; strings it points to live in *scratch, freed by
 * coord_reply_scratch_free after the reply is sent. */
typedef struct coord_scratch {
    void **ptrs;
    size_t n, cap;
} coord_scratch;
void *coord_scratch_add(coord_scratch *sc, void *p);
void coord_scratch_free(coord_scratch *sc);
void coord_batch_submit(coord *c, const Rfarm__SubmitBatchRequest *q, Rfarm__ClientReply *reply,
                        coord_scratch *sc);
void coord_control(coord *c, const Rfarm__ControlRequest *q, Rfarm__ClientReply *reply,
                   coord_scratch *sc);

/* client_status.c */
void coord_status(coord *c, const Rfarm__StatusRequest *q, Rfarm__ClientReply *reply,
                  coord_scratch *sc);
void coord_workers_status(coord *c, Rfarm__ClientReply *reply, coord_scratch *sc);
void coord_logs(coord *c, const Rfarm__LogsRequest *q, Rfarm__ClientReply *reply,
                coord_scratch *sc);

/* coord_metrics.c: write counters, gauges and per-worker figures about
 * once a second, and a time-series sample every metrics interval (both
 * only when metrics are on and Redis is there). */
void coord_metrics_tick(coord *c, uint64_t now_ms);

/* client_api.c: handle one request from the client socket. */
void coord_client_request(coord *c);

#endif
