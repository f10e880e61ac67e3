/* stitch — turns the segments workers rendered into one video.
 *
 * Workers' frames land in the spool, raw I420 frames, in whatever order
 * segments finish: a segment in a file of its own, or, a small one, in a
 * pack file shared with other jobs (spool.h). The stitcher
 * walks a job's output frames in order; a frame is emitted as soon as every
 * segment covering it has finished: a frame covered by one segment is
 * copied, a frame in an overlap is blended with the planner's weights (the
 * blend kernel, C or CUDA). Frames go to the encoder as they are made. A
 * segment's own spool file is mapped, its frames read in place, and
 * unmapped once every frame it covers has been emitted; a packed segment's
 * frames are read into a buffer (a job keeps up to four pack files open
 * until it is over). Memory of its own therefore stays at a few frames
 * per job however long the video is; a mapped segment's pages are the
 * spool's page cache, which the kernel reclaims as it needs. The spool
 * files themselves stay until the job is over (the coordinator deletes
 * them), so that a restarted coordinator can stitch the job again without
 * rendering it again.
 *
 * Stitching runs on a small pool of threads so that encoding never stalls
 * the coordinator's message loop. Threads report progress, completion and
 * failure as stitch_event structs sent over an inproc ZeroMQ PUSH socket to
 * an endpoint the coordinator has bound (PULL), so the coordinator hears
 * about them in the same poll loop as everything else.
 *
 * Target design (DESIGN.md): workers will encode the cores of their
 * segments and the stitcher will encode only the bridges and join pieces by
 * stream copy. That change stays behind this interface: callers only say
 * which segments are ready and hear when the video is done.
 */
#ifndef STITCH_H
#define STITCH_H

#include <stddef.h>
#include <stdint.h>

#include "kn.h"
#include "planner.h"
#include "rf_spec.h"
#include "spool.h"

typedef enum { STITCH_PROGRESS = 1, STITCH_DONE, STITCH_FAILED } stitch_kind;

typedef struct stitch_event {
    stitch_kind kind;
    char job[RF_ID_MAX + 1];
    uint32_t frames; /* frames emitted so far */
    uint64_t bytes;  /* output size (STITCH_DONE) */
    char msg[512];   /* reason (STITCH_FAILED) */
} stitch_event;

typedef struct stitch_pool stitch_pool;
typedef struct stitch_job stitch_job;

/* Start `threads` stitching threads that report to `event_endpoint`
 * (an inproc endpoint the caller has already bound a PULL socket to, in
 * the ZeroMQ context zctx). */
int stitch_pool_new(void *zctx, const char *event_endpoint, unsigned threads, kn_pref pref,
                    stitch_pool **out, char *err, size_t errlen);
/* Stop the threads; jobs still attached are abandoned (their partial output
 * is deleted). Accepts NULL. */
void stitch_pool_free(stitch_pool *pool);
/* The blend backend in use ("c" or "cuda") and why. */
const char *stitch_pool_backend(const stitch_pool *pool);
const char *stitch_pool_backend_reason(const stitch_pool *pool);

/* Attach a job. The spec and plan are copied. Segments' own files are in
 * spool_dir (spool_seg_path), packs in packs_dir (spool_pack_path). */
int stitch_job_new(stitch_pool *pool, const rf_spec *spec, const plan *p, const char *spool_dir,
                   const char *packs_dir, stitch_job **out, char *err, size_t errlen);
/* Segment k is complete, at loc: frames it unblocks get stitched. */
void stitch_job_ready(stitch_job *sj, uint32_t k, spool_loc loc);
/* Detach and free a job: waits until no thread is working on it; a job
 * that has not finished is abandoned and its partial output deleted. */
void stitch_job_free(stitch_job *sj);

#endif
