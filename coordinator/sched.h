/* sched — which segment goes to a worker next.
 *
 * Order. Higher priority first. Within one priority, groups (a batch, or a
 * job submitted on its own, which is a group of one) share the farm fairly
 * by rendered frames: each group has a virtual time that grows by the
 * frames of every segment handed out from it, and the group with the least
 * virtual time goes next, so two batches submitted together progress
 * together, whatever their sizes. A group that arrives (or has pending work
 * again after a pause) starts at the smallest virtual time of the groups
 * already waiting at its priority, so it neither jumps ahead nor waits
 * behind work queued before it. Within a group, jobs go in submission
 * order (seq); within a job, segments in queue order, a retried segment at
 * the front.
 *
 * Limits. A job may cap how many of its segments run at once (max_running;
 * 0: no cap): the caller reports every segment that stops running
 * (sched_stopped). A paused job hands out nothing until resumed; its
 * pending segments stay queued.
 *
 * Cost. A pop must not scan jobs that have nothing to give: groups and jobs
 * with no eligible pending segment (empty, paused, at their cap) are kept
 * out of the lists a pop walks, so a farm with tens of thousands of queued
 * jobs pops in time independent of the number of jobs (only the workers'
 * accept callback can make a pop look further).
 *
 * The scheduler holds job handles but never looks inside them: what a
 * worker can run is the caller's `accept`.
 */
#ifndef SCHED_H
#define SCHED_H

#include <stddef.h>
#include <stdint.h>

typedef struct sched sched;

sched *sched_new(void); /* NULL when out of memory */
void sched_free(sched *s);

typedef struct sched_job_opts {
    const char *group;     /* batch id; NULL or "": the job is its own group */
    int priority;          /* higher first */
    uint64_t seq;          /* submission order, increasing */
    uint32_t nseg;         /* segments of the job (queue room) */
    uint32_t max_running;  /* segments of the job running at once; 0: no cap */
} sched_job_opts;

/* Register a job (with nothing pending yet). Returns 0, or -1 when out of
 * memory or when the job is already registered. */
int sched_add_job(sched *s, void *job, const sched_job_opts *o);
/* Forget a job, its pending segments and its running count. Segments of
 * it that are running are simply forgotten: nothing is handed out for them
 * again and a later sched_stopped for the job is a no-op, so the caller must
 * not report them once the same handle is registered for another job.
 * Unknown job: nothing happens. */
void sched_remove_job(sched *s, void *job);

/* Make segment `seg` of `job` pending: at the back of the job's queue, or
 * at the front when `front` (a retry). `frames` is what the segment costs
 * its group in fair share when handed out. Returns 0, or -1 (unknown job,
 * queue full). */
int sched_push(sched *s, void *job, uint32_t seg, uint32_t frames, int front);

/* Take the next segment for a worker: the first eligible job in the order
 * above for which accept(ctx, job) is non-zero. The segment counts as
 * running for the job's cap until sched_stopped. Returns 1 and fills *job
 * and *seg, or 0 when there is nothing for this worker. `accept` must not
 * call back into the scheduler. */
int sched_pop(sched *s, int (*accept)(void *ctx, void *job), void *ctx, void **job, uint32_t *seg);

/* A segment of `job` that sched_pop handed out stopped running (done,
 * failed, lost, cancelled): it no longer counts against the job's cap.
 * Unknown job, or one with nothing running: nothing happens. */
void sched_stopped(sched *s, void *job);

/* Pause or resume a job (unknown job: nothing happens). */
void sched_pause(sched *s, void *job, int paused);

/* Segments pending (paused jobs' included), for all jobs. */
size_t sched_pending(const sched *s);
/* Segments pending that a pop could hand out now (not paused, not capped). */
size_t sched_ready(const sched *s);

#endif
