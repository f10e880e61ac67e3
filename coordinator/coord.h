/* coord — the coordinator: one event loop that owns the sockets, the
 * in-memory cache of jobs and workers, and the conversation with Redis.
 *
 * Everything that touches shared state happens on the loop's thread;
 * stitching runs on the stitch pool's threads and reports back through an
 * inproc socket the loop polls. The loop never blocks on a worker: frames
 * go straight from ZeroMQ's buffers to the spool files.
 */
#ifndef COORD_H
#define COORD_H

#include <signal.h>
#include <stddef.h>

#include "kn.h"

typedef struct coord_config {
    const char *worker_bind; /* e.g. tcp://127.0.0.1:5555 */
    const char *client_bind; /* e.g. tcp://127.0.0.1:5556 */
    const char *redis;       /* host:port or unix:/path */
    const char *prefix;      /* Redis key prefix */
    const char *spool;       /* spool directory for finished segments */
    unsigned stitch_threads;
    kn_pref kernels;
    unsigned heartbeat_ms;  /* how often workers send heartbeats */
    unsigned lease_ms;      /* a worker silent this long is lost */
    unsigned max_attempts;  /* tries per segment before the job fails */
    unsigned retry_backoff_ms; /* wait before a failed segment's first retry; doubles */
    unsigned quarantine_ms;    /* how long a repeatedly failing worker gets no work */
    int metrics;               /* write <p>metrics, <p>gauges, <p>ts:* (coord_metrics.c) */
    unsigned metrics_interval_ms; /* one time-series sample per series this often */
    unsigned metrics_retention_s; /* how much time series is kept */
    const char *http_bind;     /* "host:port" of the dashboard and API; NULL: none */
    const char *http_token;    /* bearer token submit/cancel need; NULL: none */
    const char *chart_js;      /* Chart.js file the dashboard serves */
} coord_config;

typedef struct coord coord;

/* Bind sockets, connect to Redis, start the stitch pool and reload every
 * unfinished job from Redis and the spool. *out is owned by the caller
 * (coord_free). */
int coord_new(const coord_config *cfg, coord **out, char *err, size_t errlen);
/* Serve until *stop becomes non-zero (set from a signal handler). */
int coord_run(coord *c, volatile sig_atomic_t *stop);
void coord_free(coord *c);

#endif
