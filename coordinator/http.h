/* http — the coordinator's HTTP face: the web dashboard, its JSON API and
 * Prometheus' /metrics, on one port.
 *
 * It runs on libmicrohttpd's own thread and never touches the loop's
 * state: everything it shows it reads from Redis (its own connection), and
 * what it changes (submit, pause, resume, cancel) it asks of the loop the
 * way the CLI does, over the client socket (an inproc endpoint of it). A
 * slow page therefore never slows the farm, and the dashboard shows what
 * any other Redis reader would see.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>

typedef struct http_opts {
    const char *bind;      /* "host:port" */
    const char *token;     /* bearer token for submit/control; NULL: none */
    const char *chart_js;  /* file served as /static/chart.min.js */
    const char *redis;     /* the farm's Redis, as the coordinator's --redis */
    const char *prefix;    /* Redis key prefix */
    void *zctx;            /* ZeroMQ context of the client endpoint */
    const char *client_ep; /* where the loop answers client requests */
} http_opts;

typedef struct http_server http_server;

/* Listen and serve on a thread of its own; fails naming the address. */
int http_new(const http_opts *o, http_server **out, char *err, size_t errlen);
/* The port it listens on (the one asked for, or the one given for 0). */
unsigned http_port(const http_server *h);
void http_free(http_server *h);

#endif
