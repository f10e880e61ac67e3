/* coord_internal — the coordinator's in-memory model, shared by coord.c
 * (workers, segments, stitching) and client_api.c (submit, status). */
#ifndef COORD_INTERNAL_H
#define COORD_INTERNAL_H

#include <stdint.h>

#include "coord.h"
#include "planner.h"
#include "rf_map.h"
#include "rf_spec.h"
#include "sched.h"
#include "stitch.h"
#include "store.h"

typedef enum { SEG_QUEUED = 0, SEG_RUNNING, SEG_DONE } coord_seg_state;

typedef struct coord_seg {
    coord_seg_state state;
    uint32_t attempt;      /* of the current or last assignment */
    char worker[RF_ID_MAX + 1]; /* who holds the current assignment */
    uint32_t frames_recv;  /* frames of the current attempt on disk */
    int fd;                /* spool file being written, -1 when none */
    uint64_t started_ms;
    unsigned failures;
    char tried[256]; /* workers that failed it, comma separated */
    char last_error[512];
} coord_seg;

typedef struct coord_job {
    rf_spec *spec;
    plan *plan;
    coord_seg *segs;
    stitch_job *stitch;
    char spool[RF_PATH_MAX];
    size_t frame_bytes;
    uint64_t seq;
    int started;
    uint32_t segments_done;
} coord_job;

typedef struct coord_slot {
    char job[RF_ID_MAX + 1];
    uint32_t seg, attempt;
} coord_slot;

#define COORD_MAX_CAPACITY 64

typedef struct coord_worker {
    char id[RF_ID_MAX + 1]; /* also its ZeroMQ routing id */
    char engines[256];      /* comma separated */
    uint32_t credits;
    uint32_t capacity;
    uint64_t last_seen_ms;
    uint32_t segments_done;
    unsigned nslots;
    coord_slot slots[COORD_MAX_CAPACITY]; /* segments it holds */
} coord_worker;

struct coord {
    coord_config cfg;
    char spool[RF_PATH_MAX];
    void *zctx;
    void *wsock, *csock, *events;
    store *st;
    stitch_pool *pool;
    sched *sched;
    rf_map *jobs;    /* id -> coord_job*, unfinished jobs only */
    rf_map *workers; /* id -> coord_worker* */
    uint64_t seq;
    uint64_t stale_frames; /* frames dropped as late or from a stale attempt */
};

/* client_api.c: handle one request from the client socket. */
void coord_client_request(coord *c);
/* coord.c: create a job from a validated spec; takes ownership of spec. */
int coord_job_add(coord *c, rf_spec *spec, char *err, size_t errlen);

#endif
