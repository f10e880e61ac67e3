/* worker_internal — what the worker's main thread (worker.c) and its
 * render threads (worker_render.c) share: the slots and the worker. */
#ifndef WORKER_INTERNAL_H
#define WORKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"
#include "fpool.h"
#include "kn.h"
#include "worker.h"

#define LOG "worker"
#define MAX_SLOTS 64

/* What travels from a render thread to the main thread: a tag part, then
 * the WorkerMsg (and pixels) to forward as they are. */
enum { TAG_FRAME = 'F', TAG_LOG = 'L', TAG_END = 'E' };
/* Engine stderr lines sent to the job's log per segment; the rest stays in
 * the worker's own log (the failure reason carries the tail anyway). */
#define LOG_LINES_FORWARDED 100

/* A slot's render thread is started the first time the slot is used and
 * kept until the worker stops: starting a thread and its inproc socket for
 * every segment cost more than rendering a small one. The main thread
 * hands a slot its next segment only after the thread's end message, so
 * the two never touch the assignment at the same time. */
typedef struct slot {
    int in_use;
    int finished; /* the thread sent its end message */
    int started;  /* its thread runs */
    int credited; /* its end message granted the slot's credit back */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go, quit; /* under mu: a segment to render; the thread must end */
    atomic_int stop;
    struct worker *w;
    unsigned index;
    /* the assignment (strings owned) */
    char *job_id, *prompt, *engine, *params;
    char *spool_part; /* NULL: frames go over the socket */
    atomic_uint frames_in_spool; /* of this segment, written there by the thread */
    engine_segment seg;
    uint32_t epoch; /* the coordinator's, from the Assign */
    uint64_t started_ms;
    unsigned log_lines; /* engine lines forwarded for this segment */
} slot;

struct worker {
    worker_config cfg;
    char id[65];
    char engines[256];
    char endpoint[64];
    void *zctx, *dealer, *pull;
    kn_ctx *kn;
    engine_cache *cache; /* what engines keep between segments (loaded models) */
    fpool *frames;       /* buffers lent to engines, sent without a copy (fpool.h) */
    unsigned heartbeat_ms;
    slot slots[MAX_SLOTS];
    unsigned busy;
    uint64_t segments_done;
    int draining; /* stopping: no new work is taken */
    /* Control messages that could not be sent yet (the coordinator is away
     * and the socket's queue is full): retried by flush_control. */
    int hello_owed;
    unsigned credit_owed;
    int spool_shared; /* it found the coordinator's spool key (Welcome.spool) */
    int spool_checked; /* a Welcome has been seen: say what it found once */
    int beat_now;     /* send a heartbeat on this turn */
};

/* worker_render.c */
/* Give slot s its segment (filled in by the caller), starting its thread
 * the first time. 0, or -1 when the thread cannot be started. */
int worker_slot_start(slot *s);
/* Stop slot s's thread for good (it has no segment, or has been told to
 * stop and sent its end message). */
void worker_slot_quit(slot *s);

#endif
