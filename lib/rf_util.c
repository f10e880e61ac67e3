/* rf_util — clocks, ids, paths and the key=value log line. See rf_util.h. */
#include "rf_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t rf_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t rf_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void rf_sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

void rf_new_id(const char *prefix, char *out, size_t outlen) {
    unsigned char rnd[6] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd) {
        /* No random source: fall back to time and pid, still unique enough
         * for ids that Redis also checks for collisions. */
        uint64_t t = rf_wall_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(rnd, &t, sizeof rnd);
    }
    if (fd >= 0)
        close(fd);
    snprintf(out, outlen, "%s-%02x%02x%02x%02x%02x%02x", prefix, rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5]);
}

int rf_mkdirs(const char *path, unsigned mode) {
    char buf[4096];
    if (rf_fmt(buf, sizeof buf, "%s", path) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int rf_rmtree(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *de;
    int rc = 0;
    char child[4096];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (rf_fmt(child, sizeof child, "%s/%s", path, de->d_name) != 0) {
            rc = -1;
            continue;
        }
        struct stat st;
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            rc |= rf_rmtree(child);
        else if (unlink(child) != 0)
            rc = -1;
    }
    closedir(d);
    if (rmdir(path) != 0)
        rc = -1;
    return rc;
}

int rf_fmt(char *buf, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

static void log_line(const char *level, const char *component, const char *fmt, va_list ap) {
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    /* One fprintf per line so that lines from threads never interleave. */
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
            level, component, msg);
}

void rf_log(const char *level, const char *component, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line(level, component, fmt, ap);
    va_end(ap);
}

void rf_debug(const char *component, const char *fmt, ...) {
    if (!getenv("RFARM_DEBUG"))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line("debug", component, fmt, ap);
    va_end(ap);
}

int rf_list_has(const char *list, const char *item) {
    size_t il = strlen(item);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len == il && strncmp(p, item, il) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int rf_id_valid(const char *s) {
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && s[0] != '.' &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

void rf_rate_eta(uint64_t started_ms, uint64_t end_ms, uint64_t done, uint64_t total,
                 double *rate, double *eta) {
    *rate = 0;
    *eta = -1;
    if (!started_ms || end_ms <= started_ms)
        return;
    *rate = (double)done * 1000.0 / (double)(end_ms - started_ms);
    if (done >= total)
        *eta = 0;
    else if (*rate > 0)
        *eta = (double)(total - done) / *rate;
}
