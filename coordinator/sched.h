/* sched — which segment goes to a worker next.
 *
 * Pending segments are kept per job; jobs are ordered by priority (higher
 * first) and then by submission order. A worker with credit takes the first
 * pending segment of the first job it can run (its engines). Retried
 * segments go to the front of their job's queue, so a retry is not starved
 * behind the rest of its job. The scheduler holds job handles but never
 * looks inside them: what a worker can run is the caller's `accept`.
 */
#ifndef SCHED_H
#define SCHED_H

#include <stddef.h>
#include <stdint.h>

typedef struct sched sched;

sched *sched_new(void); /* NULL when out of memory */
void sched_free(sched *s);

/* Register a job with room for `nseg` pending segments. */
int sched_add_job(sched *s, void *job, int priority, uint64_t seq, uint32_t nseg);
/* Forget a job and its pending segments. */
void sched_remove_job(sched *s, void *job);

/* Make segment `seg` of `job` pending: at the back of the job's queue, or
 * at the front when `front` (a retry). */
int sched_push(sched *s, void *job, uint32_t seg, int front);

/* Take the next segment for a worker: the first job (in priority order)
 * with a pending segment for which accept(ctx, job) is non-zero.
 * Returns 1 and fills *job and *seg, or 0 when there is nothing for it. */
int sched_pop(sched *s, int (*accept)(void *ctx, void *job), void *ctx, void **job, uint32_t *seg);

size_t sched_pending(const sched *s);

#endif
