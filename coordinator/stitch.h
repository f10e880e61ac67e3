/* stitch — turns the segments workers rendered into one video.
 *
 * Workers' frames land in a spool directory, raw I420 frames, in whatever
 * order segments finish: a segment in a file of its own, or, a small one,
 * in the job's pack file (stitch_spool_place). The stitcher
 * walks a job's output frames in order; a frame is emitted as soon as every
 * segment covering it has finished: a frame covered by one segment is
 * copied, a frame in an overlap is blended with the planner's weights (the
 * blend kernel, C or CUDA). Frames go to the encoder as they are made, and
 * a segment's spool file is closed once every frame it covers has been
 * emitted. Memory therefore stays at a few frames per job however long the
 * video is. The spool files themselves stay until the job is over (the
 * coordinator deletes them), so that a restarted coordinator can stitch
 * the job again without rendering it again.
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

/* Attach a job. The spec and plan are copied. Segments' spool files are
 * spool_dir/seg-NNNNNN.yuv (stitch_spool_path). */
int stitch_job_new(stitch_pool *pool, const rf_spec *spec, const plan *p, const char *spool_dir,
                   stitch_job **out, char *err, size_t errlen);
/* Segment k's spool file is complete: frames it unblocks get stitched. */
void stitch_job_ready(stitch_job *sj, uint32_t k);
/* Detach and free a job: waits until no thread is working on it; a job
 * that has not finished is abandoned and its partial output deleted. */
void stitch_job_free(stitch_job *sj);

/* Path of segment k's own spool file (a segment bigger than
 * STITCH_PACK_SEGMENT_MAX). */
int stitch_spool_path(const char *spool_dir, uint32_t k, char *buf, size_t len);

/* A segment of at most this many bytes lives in the job's pack file,
 * spool_dir/pack, at k x STITCH_PACK_SEGMENT_MAX (a sparse file): one file
 * per job instead of one per segment. Creating and deleting a file per
 * tiny segment was the bound on ext4, its inode allocator scanning the
 * inodes it had just freed (bench/README.md). */
#define STITCH_PACK_SEGMENT_MAX (64u * 1024u)
/* Where segment k, of seg_bytes bytes, lives: its file in buf and the
 * offset of its first byte in *base. Returns 1 when that is the pack, 0
 * when it is its own file, -1 when the path does not fit. */
int stitch_spool_place(const char *spool_dir, uint32_t k, size_t seg_bytes, char *buf,
                       size_t len, int64_t *base);

#endif
