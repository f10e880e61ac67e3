/* coll — the collectives the ranks of one worker group use.
 *
 * A model split into tensor-parallel shards runs as R ranks; each holds
 * its share of the weights and they combine partial results with these
 * operations. The interface follows NCCL's: operations on counted buffers
 * of one element type, in place allowed (send == recv), every rank of the
 * group calls the same collectives in the same order. Two backends sit
 * behind it: ranks as threads of one process with shared memory (the CPU
 * path, always built and tested) and NCCL (a later change; one rank per
 * GPU, buffers in device memory, a stream per communicator).
 */
#ifndef COLL_H
#define COLL_H

#include <stddef.h>

typedef enum { COLL_F32 = 0 } coll_type;

typedef struct coll_group coll_group; /* what the ranks share */
typedef struct coll coll;             /* one rank's handle */

/* A group of `nranks` thread ranks (1..64). */
int coll_group_new(int nranks, coll_group **out, char *err, size_t errlen);
void coll_group_free(coll_group *g);
/* Rank r's handle; owned by the group. */
coll *coll_get(coll_group *g, int rank);

int coll_rank(const coll *c);
int coll_size(const coll *c);

/* Element-wise sum over all ranks; every rank ends with the sum. */
int coll_allreduce_sum(coll *c, const void *send, void *recv, size_t count, coll_type t);
/* recv holds size*count elements: rank 0's count elements, then rank 1's... */
int coll_allgather(coll *c, const void *send, void *recv, size_t count, coll_type t);
/* root's buf is copied to every rank's buf. */
int coll_broadcast(coll *c, void *buf, size_t count, coll_type t, int root);
/* Point-to-point; a send must be matched by the peer's recv. */
int coll_send(coll *c, const void *buf, size_t count, coll_type t, int peer);
int coll_recv(coll *c, void *buf, size_t count, coll_type t, int peer);
/* Every rank waits for every other. */
int coll_barrier(coll *c);

/* Run fn(rank handle, arg) on `nranks` threads of a new group and wait for
 * all; returns the first non-zero value a rank returned, or 0. */
int coll_run(int nranks, int (*fn)(coll *c, void *arg), void *arg, char *err, size_t errlen);

#endif
