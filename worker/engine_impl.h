/* engine_impl — what each engine file provides to the table in engine.c.
 * Not for use outside worker/engine*.c. */
#ifndef ENGINE_IMPL_H
#define ENGINE_IMPL_H

#include "engine.h"

int engine_synthetic_render(const engine_segment *seg, const engine_io *io, char *err, size_t errlen);
int engine_synthetic_check(const char *params_json, char *errs, size_t errlen);

int engine_exec_render(const engine_segment *seg, const engine_io *io, char *err, size_t errlen);
int engine_exec_check(const char *params_json, char *errs, size_t errlen);

#endif
