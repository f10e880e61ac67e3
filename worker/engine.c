/* engine — the table of engines, and the one place that looks an engine up
 * by name.
 *
 * Everything above this file (the worker's segment loop, the coordinator's
 * job validation) knows engines only as names; everything below it (one
 * file per engine) knows nothing of names. The table is a constant array,
 * so adding an engine is one line here and one pair of functions in
 * engine_impl.h.
 *
 * engine_check_params does the checks every engine would otherwise repeat
 * (the engine exists, params is a JSON object) before handing the text to
 * the engine's own parser, which names each bad key. The coordinator calls
 * it at submission with the same code the worker runs, so a job that a
 * worker would refuse never gets queued.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"

typedef struct engine_entry {
    const char *name;
    int (*render)(const engine_segment *seg, const engine_io *io, char *err, size_t errlen);
    int (*check)(const char *params_json, char *errs, size_t errlen);
    uint32_t frame_step; /* see engine_frame_step */
} engine_entry;

static const engine_entry engines[] = {
    {"synthetic", engine_synthetic_render, engine_synthetic_check, 1},
    {"exec", engine_exec_render, engine_exec_check, 1},
    {"dit", engine_dit_render, engine_dit_check, 4},
};

#define N_ENGINES (sizeof engines / sizeof engines[0])

/* engine_names() hands out this list: the names of engines[], in order. */
static const char *const engine_name_list[] = {"synthetic", "exec", "dit", NULL};
_Static_assert(sizeof engine_name_list / sizeof engine_name_list[0] == N_ENGINES + 1,
               "engine_name_list must name every entry of engines[]");

static const engine_entry *find(const char *name) {
    if (!name)
        return NULL;
    for (size_t i = 0; i < N_ENGINES; i++)
        if (strcmp(engines[i].name, name) == 0)
            return &engines[i];
    return NULL;
}

/* "synthetic, exec", for messages that must list what would have worked. */
static void known_list(char *out, size_t outlen) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_ENGINES && used < outlen; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", engines[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Append one problem line to errs, which already holds a C string. */
static void append_line(char *errs, size_t errlen, const char *line) {
    if (!errs || errlen == 0)
        return;
    size_t used = strnlen(errs, errlen);
    if (used >= errlen - 1)
        return;
    snprintf(errs + used, errlen - used, "%s\n", line);
}

int engine_unknown_param(char *errs, size_t errlen, const char *engine, const char *key) {
    char k[80];
    engine_printable_key(key, k, sizeof k);
    engine_add_problem(errs, errlen, "params.%s: unknown parameter for engine %s", k, engine);
    return 1;
}

const char *const *engine_names(void) { return engine_name_list; }

uint32_t engine_frame_step(const char *engine) {
    const engine_entry *e = find(engine);
    return e ? e->frame_step : 0;
}

int engine_cache_new(engine_cache **out, char *err, size_t errlen) {
    *out = calloc(1, sizeof **out);
    if (!*out) {
        snprintf(err, errlen, "engine cache: out of memory");
        return -1;
    }
    if (engine_dit_cache_new(&(*out)->dit, err, errlen) != 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void engine_cache_free(engine_cache *c) {
    if (!c)
        return;
    engine_dit_cache_free(c->dit);
    free(c);
}

int engine_render(const char *engine, const engine_segment *seg, const engine_io *io, char *err,
                  size_t errlen) {
    const engine_entry *e = find(engine);
    if (!e) {
        char known[128];
        known_list(known, sizeof known);
        snprintf(err, errlen, "engine: unknown engine '%s' (known: %s)", engine ? engine : "(null)",
                 known);
        return -1;
    }
    if (errlen)
        err[0] = '\0';
    int rc = e->render(seg, io, err, errlen);
    if (rc != 0 && errlen && err[0] == '\0')
        snprintf(err, errlen, "%s: failed without a reason", e->name);
    return rc == 0 ? 0 : -1;
}

int engine_check_params(const char *engine, const char *params_json, char *errs, size_t errlen) {
    const engine_entry *e = find(engine);
    if (!e) {
        char known[128], line[256];
        known_list(known, sizeof known);
        snprintf(line, sizeof line, "engine: unknown engine '%s' (known: %s)",
                 engine ? engine : "(null)", known);
        append_line(errs, errlen, line);
        return 1;
    }
    json_error_t jerr;
    json_t *root = params_json ? json_loads(params_json, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    int is_object = json_is_object(root);
    json_decref(root);
    if (!is_object) {
        append_line(errs, errlen, "params: must be a JSON object");
        return 1;
    }
    return e->check(params_json, errs, errlen);
}

void engine_add_problem(char *errs, size_t errlen, const char *fmt, ...) {
    if (!errs || errlen == 0)
        return;
    size_t used = strnlen(errs, errlen);
    if (used + 1 >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errs + used, errlen - used, fmt, ap);
    va_end(ap);
    if (n >= 0 && used + (size_t)n + 1 < errlen) {
        errs[used + (size_t)n] = '\n';
        errs[used + (size_t)n + 1] = '\0';
    }
}

void engine_printable_key(const char *key, char *out, size_t outlen) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p && o + 2 < outlen; p++)
        out[o++] = (*p >= 0x20 && *p < 0x7f) ? (char)*p : '?';
    if (key[o] && o + 4 < outlen)
        o += (size_t)snprintf(out + o, outlen - o, "...");
    out[o] = '\0';
}
