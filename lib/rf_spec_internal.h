/* rf_spec_internal — what the parts of rf_spec share, and nothing else
 * includes: the list a spec's problems are gathered in, the helpers that
 * quote values in its messages, and the output section's reader.
 * rf_spec.c documents the ideas they rest on. */
#ifndef RF_SPEC_INTERNAL_H
#define RF_SPEC_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "rf_spec.h"

/* Every problem found in one spec, one line each (rf_spec_problems.c). */
typedef struct rf_spec_problems {
    char *buf;  /* lines, each ending in '\n' */
    size_t len; /* bytes used in buf */
    size_t cap;
    int count;
    int oom; /* a line could not be stored: report that instead */
} rf_spec_problems;

/* Appends one problem line (printf-style, no '\n'). */
void rf_spec_add(rf_spec_problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies the lines into errs, whole lines only; when they do not all fit,
 * as many as fit and a last line saying that more were left out. */
void rf_spec_emit(const rf_spec_problems *p, char *errs, size_t errlen);
/* `s` made safe to quote in a one-line message (control bytes become '?',
 * cut at a UTF-8 boundary to at most `max` bytes plus "..."), in buf. */
const char *rf_spec_clean(const char *s, size_t max, char *buf, size_t n);
/* Index of s in the NULL-ended names, or -1. */
int rf_spec_find_name(const char *const *names, const char *s);
/* "a, b, c": the NULL-ended names, for messages listing accepted values. */
void rf_spec_join(const char *const *names, char *buf, size_t n);
/* v must be a string naming one of names: its index, or -1 after
 * reporting why (`what` is the noun the message uses). */
int rf_spec_read_choice(rf_spec_problems *p, const json_t *v, const char *field, const char *what,
                        const char *const *names);
/* Reports each key of obj not in known, as prefix + key. */
void rf_spec_check_unknown_keys(rf_spec_problems *p, const json_t *obj, const char *prefix,
                                const char *const *known);

/* The "output" object: path (absolute, its directory checked as o says),
 * container, codec and preset into s (rf_spec_output.c). */
void rf_spec_read_output(rf_spec_problems *p, const json_t *out, const rf_spec_opts *o, rf_spec *s);

#endif
