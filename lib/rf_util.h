/* rf_util — small helpers every rfarm program needs: clocks, ids, paths,
 * and the one-line key=value log format.
 *
 * Logs go to stderr, one line per event, a short message first and then
 * key=value pairs (`segment done job=hug-1 seg=3 attempt=1 ms=812`), so that
 * people read them and tools grep them. Debug lines appear only when the
 * environment has RFARM_DEBUG set; there is no other log state.
 */
#ifndef RF_UTIL_H
#define RF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds on a monotonic clock (for timeouts and durations). */
uint64_t rf_mono_ms(void);
/* Milliseconds since the Unix epoch (for records people read). */
uint64_t rf_wall_ms(void);
void rf_sleep_ms(unsigned ms);

/* A fresh job id: "job-" + 12 hex digits from the system's random source. */
void rf_new_id(const char *prefix, char *out, size_t outlen);

/* mkdir -p. Returns 0 or -1 with errno set. */
int rf_mkdirs(const char *path, unsigned mode);
/* rm -rf of a directory that holds only files (a spool directory). */
int rf_rmtree(const char *path);
/* Maps the pages of the len bytes at p (part of a read-only file mapping)
 * in one call, instead of a page fault per few pages: 0, or an errno.
 * EFAULT: a page is past the end of the file (it shrank since it was
 * mapped; touching that page raises SIGBUS). EINVAL: this kernel (before
 * Linux 5.14) or platform cannot populate a mapping; the faults do the
 * same work. */
int rf_populate_read(const void *p, size_t len);

/* Whether s is a valid job, batch or worker id: 1 to 64 characters of
 * A-Z a-z 0-9 . _ -, not starting with '.' (ids become Redis keys and
 * file names, so nothing else may appear in them). */
int rf_id_valid(const char *s);

/* Whether `item` is one of the entries of a list separated by commas (and
 * optional spaces), e.g. rf_list_has("synthetic, exec", "exec"). */
int rf_list_has(const char *list, const char *item);

/* Progress figures of work started at started_ms (wall ms; 0: not yet) with
 * `done` of `total` units by end_ms: units per second since it started, and
 * seconds left at that rate (-1 when unknown, 0 when done). */
void rf_rate_eta(uint64_t started_ms, uint64_t end_ms, uint64_t done, uint64_t total,
                 double *rate, double *eta);

/* snprintf that reports truncation as failure: 0 when it fit, -1 otherwise. */
int rf_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void rf_log(const char *level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define rf_info(comp, ...) rf_log("info", comp, __VA_ARGS__)
#define rf_warn(comp, ...) rf_log("warn", comp, __VA_ARGS__)
#define rf_error(comp, ...) rf_log("error", comp, __VA_ARGS__)
/* For a program whose event loop logs several lines per unit of work:
 * info lines are kept in stderr's buffer until rf_log_flush (which the
 * loop calls before it waits) instead of one write each; warnings and
 * errors are still written at once. A crash loses the info lines of the
 * turn it happens in (what a sanitizer or the kernel says is written
 * straight to the descriptor, and is kept). Call at the start of main,
 * before anything is written to stderr. */
void rf_log_buffered(void);
void rf_log_flush(void);
void rf_debug(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Bytes of one I420 frame of w x h (w and h even). */
static inline size_t rf_i420_bytes(uint32_t w, uint32_t h) {
    return (size_t)w * h + 2 * ((size_t)(w / 2) * (h / 2));
}

#endif
