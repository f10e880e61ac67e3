/* engine_impl — what each engine file provides to the table in engine.c.
 * Not for use outside worker/engine*.c. */
#ifndef ENGINE_IMPL_H
#define ENGINE_IMPL_H

#include <stddef.h>

#include "engine.h"

/* Shared by the engines' parameter checks (engine.c). */
/* Append a formatted line (and '\n') to errs, a C string already; a line
 * that does not fit whole is dropped. */
void engine_add_problem(char *errs, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A JSON key as it may appear in a one-line message: printable, bounded. */
void engine_printable_key(const char *key, char *out, size_t outlen);
/* "params.<key>: unknown parameter for engine <engine>" into errs; returns
 * 1, the number of problems it adds. */
int engine_unknown_param(char *errs, size_t errlen, const char *engine, const char *key);

int engine_synthetic_render(const engine_segment *seg, const engine_io *io, char *err, size_t errlen);
int engine_synthetic_check(const char *params_json, char *errs, size_t errlen);

int engine_exec_render(const engine_segment *seg, const engine_io *io, char *err, size_t errlen);
int engine_exec_check(const char *params_json, char *errs, size_t errlen);

/* What engine_cache holds, one member per engine that keeps something. */
struct dit_cache;
struct engine_cache {
    struct dit_cache *dit; /* loaded dit models (worker/dit/dit_cache.h) */
};

int engine_dit_render(const engine_segment *seg, const engine_io *io, char *err, size_t errlen);
int engine_dit_check(const char *params_json, char *errs, size_t errlen);
int engine_dit_cache_new(struct dit_cache **out, char *err, size_t errlen);
void engine_dit_cache_free(struct dit_cache *c);

#endif
