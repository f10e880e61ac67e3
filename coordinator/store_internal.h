/* store_internal — what store.c (connection, writes) and store_read.c
 * (reads) share: the handle's layout and the argv-building helpers. Not
 * for use outside the store module. */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct store {
    redisContext *rc;    /* NULL while disconnected */
    char addr[256];
    char prefix[64];
    unsigned events_max;
    char last_err[256];
    int outage;           /* a command failed for want of Redis; store_poll ends it */
    unsigned backoff_ms;  /* current reconnect backoff, 0 when connected */
    uint64_t retry_at_ms; /* no reconnect attempt before this (monotonic) */
    int deferred;         /* writes are queued and sent by store_flush */
    unsigned pending;     /* queued writes whose replies are not read yet */
    uint64_t failures;    /* commands that failed or were lost, ever */
};

/* A command as argv: each argument one string, so values with spaces need
 * no quoting. Numbers are formatted into the struct's own storage. */
#define STORE_MAX_ARGS 48
typedef struct store_argv {
    int n;
    const char *v[STORE_MAX_ARGS];
    size_t len[STORE_MAX_ARGS];
    char own[STORE_MAX_ARGS][64];
} store_argv;

void store_arg(store_argv *a, const char *s);
void store_arg_u64(store_argv *a, uint64_t v);
/* The reply (caller frees) or NULL with s->last_err set. */
redisReply *store_command(store *s, int argc, const char **argv, const size_t *argvlen);
int store_run(store *s, store_argv *a);
/* HSET two numeric fields of <p>job:<id> (queued like every write). */
int store_job_counts(store *s, const char *job, const char *f1, uint64_t v1, const char *f2,
                     uint64_t v2);
/* n commands in one round trip; 0 when every reply was a success. With
 * ints, each command's integer reply (-1 when not an integer). */
int store_run_pipelined(store *s, store_argv *cmds, size_t n);
int store_run_pipelined_ints(store *s, store_argv *cmds, size_t n, long long *ints);
/* The same, with each reply (error replies too) handed to each(ctx, i, r). */
int store_run_pipelined_each(store *s, store_argv *cmds, size_t n,
                             void (*each)(void *ctx, size_t i, const redisReply *r), void *ctx);
#define STORE_PIPELINE_BATCH 256
/* HGETALL key, one callback per field: 0 found, 1 no such key, -1 error. */
int store_hash_read(store *s, const char *key, store_field_fn field, void *ctx, char *err,
                    size_t errlen);
/* A command whose reply is an array of strings: one callback each; returns
 * how many, or -1 (err set). */
int store_each_string(store *s, store_argv *cmd, void (*each)(void *ctx, const char *value),
                      void *ctx, char *err, size_t errlen);
/* Z(REV)RANGE 0 max-1 of key into ids; returns how many, or -1. */
int store_zrange(store *s, const char *key, int rev, size_t max, char (*ids)[RF_ID_MAX + 1],
                 char *err, size_t errlen);
/* prefix + fmt(id, k) into buf. */
void store_key(const store *s, char *buf, size_t len, const char *fmt, const char *id, long k);

#endif
