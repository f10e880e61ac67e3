/* sync_crew — fsync many files at once.
 *
 * One fsync on ext4 waits for a journal commit (hundreds of microseconds
 * on the disks we run on); fsyncs that are in flight together share
 * commits. bench/bench_fsync.c (rf-bench-fsync DIR) on this project's
 * 2-core test machine, ext4, 256 files of 384 bytes: one after another
 * 125 us per file, this crew with 4 threads 55 us, with 16 threads 31 us
 * (a plain loop of threads measured 190-390 / 72 / 30 us on another
 * day). So a group of files is synced by a crew of
 * threads, each taking the next file, while the caller works along. Where
 * an fsync costs next to nothing (tmpfs, a cache that lies), waking the
 * crew would cost more than the syncs: the caller times the first one and
 * does the rest itself when it was fast.
 */
#ifndef SYNC_CREW_H
#define SYNC_CREW_H

#include <stddef.h>

typedef struct sync_crew sync_crew;

/* threads: the crew's size besides the caller (0: the caller alone).
 * cheap_us: a first fsync that took at most this long means the rest are
 * done by the caller alone (0: the crew always helps). */
int sync_crew_new(unsigned threads, unsigned cheap_us, sync_crew **out, char *err, size_t errlen);
/* fsync fds[0..n); errs[i] = 0 or the errno of fds[i]'s fsync. Returns
 * when every one is done. One caller at a time. */
void sync_crew_run(sync_crew *c, const int *fds, int *errs, size_t n);
/* Accepts NULL. Not while a run is under way. */
void sync_crew_free(sync_crew *c);

#endif
