/* rf_spec_problems — how a spec's problems are gathered and quoted: a
 * growable list of lines, copied into the caller's buffer only at the end
 * (so that truncation cuts at a line and says that more were left out),
 * and the helpers that make an operator's values safe to quote in a
 * one-line message. Used by the parts of rf_spec (rf_spec_internal.h). */
#include "rf_spec_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MORE_LINE "...: more problems not shown"

void rf_spec_add(rf_spec_problems *p, const char *fmt, ...) {
    p->count++;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        p->oom = 1;
        return;
    }
    size_t need = p->len + (size_t)n + 2; /* '\n' and vsnprintf's NUL */
    if (need > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < need)
            cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (!nb) {
            p->oom = 1;
            return;
        }
        p->buf = nb;
        p->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    p->len += (size_t)n;
    p->buf[p->len++] = '\n';
}

/* Copy the lines into errs, whole lines only; when they do not all fit, as
 * many as fit together with a last line saying that more were left out. */
void rf_spec_emit(const rf_spec_problems *p, char *errs, size_t errlen) {
    if (!errs || errlen == 0)
        return;
    errs[0] = '\0';
    if (p->oom) {
        snprintf(errs, errlen, "spec: out of memory while checking the spec");
        return;
    }
    size_t total = p->len ? p->len - 1 : 0; /* without the last '\n' */
    if (total < errlen) {
        if (total)
            memcpy(errs, p->buf, total);
        errs[total] = '\0';
        return;
    }
    size_t keep = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (p->buf[i] != '\n')
            continue;
        if (i + 1 + strlen(MORE_LINE) >= errlen)
            break;
        keep = i + 1;
    }
    memcpy(errs, p->buf, keep);
    snprintf(errs + keep, errlen - keep, "%s", MORE_LINE);
}

/* ---- small helpers ------------------------------------------------------- */

/* `s` made safe to quote in a one-line message: control bytes become '?',
 * and it is cut (at a UTF-8 boundary) to at most `max` bytes plus "...". */
const char *rf_spec_clean(const char *s, size_t max, char *buf, size_t n) {
    size_t len = strlen(s), cut = len;
    if (cut > max) {
        cut = max;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    }
    if (cut + 4 > n)
        cut = n > 4 ? n - 4 : 0;
    size_t o = 0;
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut < len && o + 3 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

int rf_spec_find_name(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* "a, b, c" for messages that list the accepted values. */
void rf_spec_join(const char *const *names, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && o < n; i++) {
        int w = snprintf(buf + o, n - o, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* Checks that `v` is a string naming one of `names`; returns its index or -1
 * (after reporting why). `what` is the noun used in the message. */
int rf_spec_read_choice(rf_spec_problems *p, const json_t *v, const char *field, const char *what,
                        const char *const *names) {
    if (!json_is_string(v)) {
        rf_spec_add(p, "%s: must be a string", field);
        return -1;
    }
    int k = rf_spec_find_name(names, json_string_value(v));
    if (k < 0) {
        char known[256], shown[80];
        rf_spec_join(names, known, sizeof known);
        rf_spec_add(p, "%s: unknown %s '%s' (known: %s)", field, what,
                    rf_spec_clean(json_string_value(v), 64, shown, sizeof shown), known);
    }
    return k;
}

void rf_spec_check_unknown_keys(rf_spec_problems *p, const json_t *obj, const char *prefix,
                                const char *const *known) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        (void)v;
        if (rf_spec_find_name(known, key) < 0) {
            char shown[80];
            rf_spec_add(p, "%s%s: unknown field", prefix,
                        rf_spec_clean(key, 64, shown, sizeof shown));
        }
    }
}
