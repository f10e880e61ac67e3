/* commit — makes finished segments durable without stopping the loop.
 *
 * A segment the worker says is done has its frames in a spool file named
 * for its attempt. Before Redis may call it done, the file must be on disk
 * under its final name: fsync, rename, fsync of the directory (a restarted
 * coordinator trusts a done segment's file, also after a power loss). That
 * costs a disk flush, hundreds of microseconds or more, which the
 * coordinator's event loop must not wait for: it would cap the farm's rate.
 * So commits run on a thread of their own, in order, and their outcomes
 * come back to the loop as commit_results on an inproc socket the loop
 * polls, like the stitch events.
 *
 * The thread commits in groups: every request queued when it wakes is
 * synced (the files together, by a crew of threads: sync_crew.h) and
 * renamed, then each directory among them is synced once, and the
 * outcomes go back in one message. Under load that is one wake-up, one
 * round of journal commits and one directory flush for many segments
 * instead of one of each per segment.
 *
 * Small segments are appended to a pack file shared by many jobs
 * (spool.h): the requests of a group that go into one pack share its
 * descriptor and its fsync, and its directory is synced only when the
 * group created the pack (appending changes nothing in the directory).
 *
 * The thread also removes finished jobs' spool directories and packs
 * nothing needs any more, in queue order: unlinking a job's files costs
 * the loop as much as a Redis round trip per segment.
 */
#ifndef COMMIT_H
#define COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "rf_spec.h"

typedef struct commit_result {
    char job[RF_ID_MAX + 1];
    uint32_t seg, attempt;
    int ok;
    char msg[512]; /* why, when not ok */
} commit_result;

typedef struct commit_pool commit_pool;

/* Start the commit thread; results go to `endpoint` (an inproc endpoint
 * the caller has bound a PULL socket to, in zctx), as messages of one or
 * more whole commit_result structs. */
int commit_pool_new(void *zctx, const char *endpoint, commit_pool **out, char *err,
                    size_t errlen);
/* What a commit makes durable: the segment's part file, open (fd >= 0),
 * or its bytes in memory (mem, len), which the pool first writes to the
 * part file, creating it (and `dir` if need be). Either is taken by the
 * pool: fd closed, mem freed. With `packed`, mem goes at pack_off into
 * `final` (a pack file in `dir`, spool.h), which is created if need be but
 * never truncated, renamed or removed here: it holds other segments too. */
typedef struct commit_data {
    int fd;
    uint8_t *mem;
    size_t len;
    int packed;
    int64_t pack_off;
} commit_data;

/* Commit d from `part` to `final` in `dir`. Returns 0, or -1 when out of
 * memory (d not taken). */
int commit_submit(commit_pool *p, const char *job, uint32_t seg, uint32_t attempt,
                  const commit_data *d, const char *part, const char *final, const char *dir);
/* Remove `path` (a finished job's spool directory with its files, or a
 * pack) on the commit thread, after every commit queued before it, so that
 * none of those recreates it. Returns 0, or -1 when out of memory (nothing
 * queued). */
int commit_remove(commit_pool *p, const char *path);
/* Do one commit here and now, directory sync included; takes d, fills *res. */
void commit_now(const char *job, uint32_t seg, uint32_t attempt, const commit_data *d,
                const char *part, const char *final, const char *dir, commit_result *res);
/* Finish the queued commits, stop the thread. Accepts NULL. */
void commit_pool_free(commit_pool *p);

#endif
