/* coll_internal — what coll.c shares with its backends.
 *
 * coll.c owns the public functions: it checks arguments once and forwards
 * each operation through the group's ops table, so the NCCL backend will
 * slot in beside coll_cpu.c without any caller changing. A backend sees
 * only validated calls (known type, peer and root in range).
 */
#ifndef COLL_INTERNAL_H
#define COLL_INTERNAL_H

#include "coll.h"

typedef struct {
    const char *name;
    int (*allreduce_sum)(coll *c, const void *send, void *recv, size_t count, coll_type t);
    int (*allgather)(coll *c, const void *send, void *recv, size_t count, coll_type t);
    int (*broadcast)(coll *c, void *buf, size_t count, coll_type t, int root);
    int (*send)(coll *c, const void *buf, size_t count, coll_type t, int peer);
    int (*recv)(coll *c, void *buf, size_t count, coll_type t, int peer);
    int (*barrier)(coll *c);
    /* Rank `rank` has returned from its work (coll_run) and will call no
     * more operations: collectives that need it fail instead of waiting
     * forever, and a receive from it fails once its queue is empty. With
     * failed set, every blocked and every later operation of every rank
     * fails: a rank that gave up must not leave the others hanging. */
    void (*left)(coll_group *g, int rank, int failed);
    void (*free)(coll_group *g);
} coll_ops;

struct coll {
    coll_group *group;
    int rank;
};

struct coll_group {
    const coll_ops *ops;
    int nranks;
    coll *ranks;   /* nranks handles */
    void *backend; /* the backend's shared state */
};

size_t coll_type_size(coll_type t);

/* The CPU backend: fills g->ops and g->backend. */
int coll_cpu_init(coll_group *g, char *err, size_t errlen);

#endif
