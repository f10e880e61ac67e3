/* worker — a render worker: connects out to the coordinator, pulls
 * segments by granting credit, renders each on its own thread with an
 * engine, and streams frames back as they are made.
 *
 * Frames go to the coordinator over its socket, or, when the worker can
 * open the coordinator's spool (same machine or a shared volume: it finds
 * the key the Welcome names in the spool's .spool-key file), straight into
 * the segment's spool file, with only a small message per frame on the
 * socket: no copies through TCP and none by the coordinator.
 *
 * Threads: the main thread owns the coordinator socket (ZeroMQ sockets are
 * not shared between threads); each render thread pushes its frames over
 * an inproc socket to the main thread, which forwards them. Small queues
 * on both hops give back-pressure: a coordinator that reads slowly slows
 * the engine down instead of filling the worker's memory.
 *
 * Shutdown: the first SIGTERM/SIGINT starts a drain (no new credit; the
 * segments in hand are finished); past the drain deadline, or on a second
 * signal, the segments in hand are abandoned and handed back (Bye), and
 * the worker exits 0 either way, as a Kubernetes pod's grace period
 * expects.
 */
#ifndef WORKER_H
#define WORKER_H

#include <signal.h>
#include <stddef.h>

#include "kn.h"

typedef struct worker_config {
    const char *connect; /* coordinator's worker endpoint */
    const char *id;      /* [A-Za-z0-9._-]{1,64} */
    unsigned capacity;   /* segments rendered at once */
    const char *engines; /* comma separated; NULL: every engine this build has */
    kn_pref kernels;
    unsigned drain_ms; /* how long a drain may take before segments are handed back */
    int share_spool;   /* write frames into the coordinator's spool when it can (Welcome) */
} worker_config;

typedef struct worker worker;

int worker_new(const worker_config *cfg, worker **out, char *err, size_t errlen);
/* Serve until drained. *signals counts SIGTERM/SIGINT received (from the
 * handler in main). Returns 0 after a clean drain. */
int worker_run(worker *w, volatile sig_atomic_t *signals);
void worker_free(worker *w);

#endif
